"""Checkpoints that are never half-written and never unpickle code.

Saving writes a temporary file beside the target, fsyncs it and renames it over the target (atomic on POSIX), so a
crash or a full disk leaves the previous checkpoint intact. Loading uses ``weights_only=True``: a checkpoint is data.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from backbonekit.errors import WeightsError


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def atomic_link(source: str | os.PathLike, path: str | os.PathLike) -> None:
    """``path`` becomes a second name of the file ``source`` (a copy where the file system has no hard links), swapped
    in atomically. Later atomic saves over either name give it a new file, so the other keeps its contents."""
    path = Path(path)
    tmp = path.parent / f".{path.name}.{os.getpid()}.link"
    try:
        if tmp.exists():
            tmp.unlink()
        try:
            os.link(source, tmp)
        except OSError:
            shutil.copyfile(source, tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def load_checkpoint_file(path: str | os.PathLike, map_location: Any = "cpu") -> dict:
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{path}: no such checkpoint")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # noqa: BLE001 - any failure to deserialise means the file is unusable
        first = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
        raise WeightsError(f"{path}: cannot read checkpoint ({first})") from None


class AtomicCheckpointIO(TorchCheckpointIO):
    def save_checkpoint(self, checkpoint: dict, path, storage_options=None) -> None:
        atomic_torch_save(checkpoint, path)

    def load_checkpoint(self, path, map_location=None, weights_only=None) -> dict:
        return load_checkpoint_file(path, map_location or "cpu")
