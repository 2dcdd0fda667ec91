"""The MNIST family's IDX files: Fashion-MNIST, MNIST and KMNIST ship the same four files, gzipped or raw.

``--data fashion-mnist`` (or ``mnist``, ``kmnist``) looks in ``$BACKBONEKIT_DATA/<name>``, then in the folder of the
Debian package (``/usr/share/datasets/<name>``); ``--data FOLDER`` reads any folder holding the four files. Nothing
is downloaded. IDX is big-endian: a magic number (2051 images, 2049 labels), the count, for images rows and columns,
then uint8 values. Every file is checked against its header, and a wrong one is one ``DataError`` naming it.
"""
from __future__ import annotations

import gzip
import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from backbonekit.errors import DataError

ENV_DATA = "BACKBONEKIT_DATA"
SYSTEM_DATA = Path("/usr/share/datasets")  # where Debian's dataset-* packages put their files
IMAGES_MAGIC, LABELS_MAGIC = 2051, 2049     # 0x0803: uint8, 3 dimensions; 0x0801: uint8, 1 dimension
# The four files by role; the original MNIST site spells them with '-', some mirrors with '.' before "idx".
FILES = {"train images": "train-images-idx3-ubyte", "train labels": "train-labels-idx1-ubyte",
         "test images": "t10k-images-idx3-ubyte", "test labels": "t10k-labels-idx1-ubyte"}

FASHION_MNIST = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                 "Ankle boot")
# KMNIST's classes are ten hiragana (Clanuwat et al. 2018, kmnist_classmap.csv), written here in their romanisation.
KMNIST = ("o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo")
MNIST = tuple(str(d) for d in range(10))
NAMED = {"fashion-mnist": FASHION_MNIST, "mnist": MNIST, "kmnist": KMNIST}
APT_PACKAGES = {"fashion-mnist": "dataset-fashion-mnist"}
# Mirroring changes a digit or a character into another symbol (or none); a mirrored shoe is a shoe.
MIRROR_SAFE = {"fashion-mnist": True, "mnist": False, "kmnist": False}


@dataclass
class IdxData:
    train_images: torch.Tensor  # uint8 N×1×H×W
    train_labels: np.ndarray
    test_images: torch.Tensor
    test_labels: np.ndarray
    class_names: list[str]
    dataset: str | None         # "fashion-mnist", "mnist", "kmnist", or None for a folder of another name
    root: Path


def is_named(data: str) -> bool:
    return data in NAMED


def is_idx_folder(root: Path) -> bool:
    """Whether ``root`` holds any of the four files (then it is read as IDX, and a missing one is named)."""
    return any(_find_file(root, base) is not None for base in FILES.values())


def which_dataset(data: str) -> str | None:
    """The family member ``data`` names: by name, or by a folder whose path names one (``…/fashion-mnist``,
    ``…/FashionMNIST/raw``, as torchvision lays it out)."""
    if data in NAMED:
        return data
    parts = [p.lower().replace("_", "").replace("-", "") for p in Path(data).resolve().parts]
    for name in ("fashion-mnist", "kmnist", "mnist"):  # "mnist" last: it is part of the other two
        if name.replace("-", "") in parts:
            return name
    return None


def flip_ok(data: str) -> bool:
    return MIRROR_SAFE.get(which_dataset(data) or "", True)


def find_named(name: str) -> Path:
    """The folder of a named data set: ``$BACKBONEKIT_DATA/<name>``, then the Debian package's."""
    tried = []
    env = os.environ.get(ENV_DATA)
    candidates = ([Path(env) / name] if env else []) + [SYSTEM_DATA / name]
    for folder in candidates:
        if folder.is_dir() and is_idx_folder(folder):
            return folder
        tried.append(str(folder))
    apt = APT_PACKAGES.get(name)
    ways = ([f"install the Debian package (apt-get install {apt})"] if apt else []) + [
        f"give --data FOLDER, a folder holding the four files ({', '.join(f + '.gz' for f in FILES.values())})",
        f"or put them in ${ENV_DATA}/{name}"]
    raise DataError(f"{name}: not found (looked in {', '.join(tried)}); nothing is downloaded: " + "; ".join(ways))


def load_idx(data: str) -> IdxData:
    """The four files of ``data`` (a name or a folder), checked against each other."""
    root = find_named(data) if data in NAMED else Path(data)
    paths = {}
    for role, base in FILES.items():
        path = _find_file(root, base)
        if path is None:
            raise DataError(f"{root / (base + '.gz')}: missing (the {role}; an IDX folder holds "
                            f"{', '.join(FILES.values())}, each .gz or raw)")
        paths[role] = path
    train_x, test_x = read_images(paths["train images"]), read_images(paths["test images"])
    train_y, test_y = read_labels(paths["train labels"]), read_labels(paths["test labels"])
    for split, x, y in (("train", train_x, train_y), ("test", test_x, test_y)):
        if len(x) != len(y):
            raise DataError(f"{paths[split + ' labels']}: {len(y):,} labels for the {len(x):,} images of "
                            f"{paths[split + ' images'].name}")
    if test_x.shape[2:] != train_x.shape[2:]:
        raise DataError(f"{paths['test images']}: {test_x.shape[2]}×{test_x.shape[3]} images, the training images "
                        f"are {train_x.shape[2]}×{train_x.shape[3]}")
    dataset = which_dataset(data)
    n_classes = len(NAMED[dataset]) if dataset else int(max(train_y.max(initial=0), test_y.max(initial=0))) + 1
    for role, y in (("train labels", train_y), ("test labels", test_y)):
        if len(y) and y.max() >= n_classes:
            raise DataError(f"{paths[role]}: label {int(y.max())} is outside the {n_classes} classes of {dataset}")
    names = list(NAMED[dataset]) if dataset else [str(i) for i in range(n_classes)]
    return IdxData(train_x, train_y, test_x, test_y, names, dataset, root)


def read_images(path: Path) -> torch.Tensor:
    """uint8 N×1×rows×cols."""
    buf = _read_bytes(path)
    dims = _header(path, buf, IMAGES_MAGIC, 3, "image")
    n, rows, cols = dims
    _check_length(path, buf, 16, n * rows * cols, f"{n:,} images of {rows}×{cols}")
    # A copy: the bytes read are immutable, a tensor over them would be a read-only tensor torch warns about.
    return torch.from_numpy(np.frombuffer(buf, np.uint8, offset=16).reshape(n, 1, rows, cols).copy())


def read_labels(path: Path) -> np.ndarray:
    buf = _read_bytes(path)
    (n,) = _header(path, buf, LABELS_MAGIC, 1, "label")
    _check_length(path, buf, 8, n, f"{n:,} labels")
    return np.frombuffer(buf, np.uint8, offset=8).astype(np.int64)


def _find_file(root: Path, base: str) -> Path | None:
    stem, _, tail = base.partition("-idx")
    for name in (base, f"{stem}.idx{tail}"):
        for suffix in (".gz", ""):
            if (root / (name + suffix)).is_file():
                return root / (name + suffix)
    return None


def _read_bytes(path: Path) -> bytes:
    try:
        raw = path.read_bytes()
        # Gzip by content, not name: a decompressed file often keeps its ".gz" (and the other way round).
        return gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw
    except (EOFError, gzip.BadGzipFile, zlib.error) as e:
        raise DataError(f"{path}: truncated or damaged gzip file ({e or type(e).__name__})") from None
    except OSError as e:
        raise DataError(f"{path}: cannot be read ({e.strerror or e})") from None


def _header(path: Path, buf: bytes, magic: int, ndim: int, kind: str) -> tuple[int, ...]:
    size = 4 + 4 * ndim
    if len(buf) < size:
        raise DataError(f"{path}: {len(buf)} bytes, shorter than an IDX {kind} header ({size} bytes)")
    found = struct.unpack(">I", buf[:4])[0]
    if found != magic:
        other = {IMAGES_MAGIC: "an image file", LABELS_MAGIC: "a label file"}.get(found, "not an IDX file")
        raise DataError(f"{path}: magic number {found}, expected {magic} for IDX {kind}s ({other})")
    return struct.unpack(f">{ndim}I", buf[4:size])


def _check_length(path: Path, buf: bytes, offset: int, expected: int, what: str) -> None:
    found = len(buf) - offset
    if found != expected:
        state = "truncated" if found < expected else "longer than its header says"
        raise DataError(f"{path}: {state}: the header announces {what} ({expected:,} bytes), the file holds "
                        f"{found:,}")
