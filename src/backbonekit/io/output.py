"""Folders a command writes into."""
from __future__ import annotations

from pathlib import Path

from backbonekit.errors import ConfigError


def output_folder(path: str | Path, flag: str = "--out", create: bool = True) -> Path:
    """``path`` as a folder to write into (made, with its parents, when ``create``); a file there is an error
    naming ``flag``, before anything is computed."""
    path = Path(path)
    blocker = next((p for p in (path, *path.parents) if p.exists() and not p.is_dir()), None)
    if blocker is not None:
        raise ConfigError(f"{flag} {path}: {blocker} is a file, not a folder")
    if create:
        path.mkdir(parents=True, exist_ok=True)
    return path
