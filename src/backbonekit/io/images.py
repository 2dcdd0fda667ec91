"""Image files, the one implementation every task uses: which files are images, decoding, and the error naming the
file when one cannot be read."""
from __future__ import annotations

import struct
from pathlib import Path
from typing import Sequence

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
    array = np.asarray(load_image(path, where))
    return torch.from_numpy(array.copy()).permute(2, 0, 1)


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
