"""Image files, the one implementation every task uses: which files are images, decoding, and the error naming the
file when one cannot be read."""
from __future__ import annotations

import os
import struct
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from backbonekit.errors import DataError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
# What a broken file can make PIL raise while decoding (UnidentifiedImageError is an OSError).
DECODE_ERRORS = (OSError, ValueError, SyntaxError, EOFError, struct.error, Image.DecompressionBombError)


def decode_image(path: str | Path) -> tuple[str, Image.Image | None]:
    """(reason, None) when ``path`` cannot be read, else ("", the RGB image fully decoded)."""
    # PIL decodes lazily: Image.open reads only the header, so a truncated file would fail later, inside a
    # DataLoader worker. load() and convert() decode every pixel here, where the error can name the file.
    try:
        with Image.open(path) as image:
            image.load()
            return "", image.convert("RGB")
    except FileNotFoundError:
        return "no such file", None
    except UnidentifiedImageError:
        return "not an image in a known format", None
    except DECODE_ERRORS as e:
        return str(e) or type(e).__name__, None


def load_image(path: str | Path, where: str | None = None) -> Image.Image:
    """The image at ``path`` as RGB; ``DataError`` naming the path (and ``where``: "train.csv line 4") if unreadable."""
    reason, image = decode_image(path)
    if image is None:
        raise DataError(f"{where + ': ' if where else ''}{path}: cannot read image ({reason})")
    return image


def load_image_tensor(path: str | Path, where: str | None = None) -> torch.Tensor:
    """The image at ``path`` as a uint8 (3, H, W) tensor."""
    return image_to_tensor(load_image(path, where))


def image_to_tensor(image: Image.Image) -> torch.Tensor:
    """An RGB PIL image as a uint8 (3, H, W) tensor."""
    return torch.from_numpy(np.asarray(image).copy()).permute(2, 0, 1)


def is_image_file(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS


def find_images(paths: Sequence[str | Path]) -> list[Path]:
    """Image files among ``paths``: files as given, folders searched recursively (sorted, hidden files left out)."""
    found: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found += images_under(p)
        elif p.is_file():
            found.append(p)
        else:
            raise DataError(f"{p}: no such file or folder")
    if not found:
        raise DataError(f"no images found in {', '.join(map(str, paths))} (extensions: {' '.join(IMAGE_EXTENSIONS)})")
    return list(dict.fromkeys(found))  # a file named twice is read once


def images_under(folder: Path) -> list[Path]:
    # Dot-files are left out: macOS "._x.jpg" resource forks have an image extension but are not images.
    return sorted(f for f in folder.rglob("*")
                  if is_image_file(f) and f.is_file()
                  and not any(part.startswith(".") for part in f.relative_to(folder).parts))


def unreadable_images(paths: Sequence[str | Path]) -> dict[Path, str]:
    """Each of ``paths`` that cannot be decoded → why; every file is decoded once."""
    # PIL releases the GIL while decoding, so threads make this pass faster on large folders.
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        reasons = list(pool.map(lambda p: decode_image(p)[0], paths))
    return {Path(p): reason for p, reason in zip(paths, reasons) if reason}


def report_skip(path: str | Path, reason: str) -> None:
    """The line (on stderr) that names a left-out image, the same for every command."""
    print(f"skipped {path}: {reason}", file=sys.stderr, flush=True)


def report_skipped(skipped: Sequence[tuple[str | Path, str]], what: str = "image") -> None:
    """Every left-out file named, then their count."""
    for path, reason in skipped:
        report_skip(path, f"cannot read image ({reason})")
    if skipped:
        print(f"skipped {len(skipped)} unreadable {what}(s) (--skip-bad-images)", file=sys.stderr, flush=True)


def read_in_batches(files: Iterable[Path], batch_size: int, skip_bad: bool = False,
                    skipped: list[tuple[Path, str]] | None = None) -> Iterator[list[tuple[Path, Image.Image]]]:
    """``files`` decoded, ``batch_size`` at a time, as (path, RGB image) pairs. An unreadable file stops with a
    ``DataError`` naming it, or with ``skip_bad`` is named on stderr at once, added to ``skipped`` and left out, so
    one bad file does not cost the results of every other."""
    batch: list[tuple[Path, Image.Image]] = []
    for path in files:
        reason, image = decode_image(path)
        if image is None:
            if not skip_bad:
                raise DataError(f"{path}: cannot read image ({reason}); --skip-bad-images leaves such files out")
            report_skip(path, f"cannot read image ({reason})")
            if skipped is not None:
                skipped.append((path, reason))
            continue
        batch.append((path, image))
        if len(batch) == batch_size:
            yield batch
            batch = []
    if batch:
        yield batch
