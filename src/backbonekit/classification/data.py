"""Classification data: the built-in ``digits``, CIFAR-10 in its python-pickle format, and ImageFolder trees.

Every problem with the user's files raises ``DataError`` naming the file or folder. Images are decoded lazily; a
file that fails to decode stops the run with its path, or with ``skip_bad_images`` every file is decoded once up
front and the bad ones are left out and counted.
"""
from __future__ import annotations

import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from backbonekit.classification.transforms import build_transforms
from backbonekit.errors import DataError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
CIFAR10_TRAIN = tuple(f"data_batch_{i}" for i in range(1, 6))


@dataclass
class ClassificationData:
    train: Dataset
    val: Dataset
    class_names: list[str]
    source: str                                   # "digits" | "cifar10" | "imagefolder"
    skipped: list[tuple[str, str]] = field(default_factory=list)   # (path, reason) of bad images left out


class TensorImages(Dataset):
    """Images held in memory as a uint8 tensor N×C×H×W (digits, CIFAR-10)."""

    def __init__(self, images: torch.Tensor, labels: Sequence[int], transform: Callable):
        self.images, self.labels, self.transform = images, list(map(int, labels)), transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        return self.transform(self.images[i]), self.labels[i]


class ImageFiles(Dataset):
    """Images decoded from files on demand."""

    def __init__(self, samples: list[tuple[Path, int]], transform: Callable):
        self.samples, self.transform = samples, transform
        self.labels = [label for _, label in samples]

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int):
        path, label = self.samples[i]
        return self.transform(load_image(path)), label


def load_image(path: str | Path) -> Image.Image:
    """Fully decode an image as RGB (PIL decodes lazily, which would hide a truncated file until later)."""
    try:
        with Image.open(path) as image:
            image.load()
            return image.convert("RGB")
    except FileNotFoundError:
        raise DataError(f"{path}: no such image") from None
    except (OSError, ValueError, Image.DecompressionBombError, SyntaxError) as e:
        raise DataError(f"{path}: cannot read image ({e})") from None


def find_images(paths: Sequence[str | Path]) -> list[Path]:
    """Image files among ``paths`` (files, or folders searched recursively), sorted."""
    found: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found += sorted(f for f in p.rglob("*") if f.suffix.lower() in IMAGE_EXTENSIONS and f.is_file())
        elif p.is_file():
            found.append(p)
        else:
            raise DataError(f"{p}: no such file or folder")
    if not found:
        raise DataError(f"no images found in {', '.join(map(str, paths))}")
    return found


def detect_format(data: str) -> str:
    if data == "digits":
        return "digits"
    root = Path(data)
    if not root.is_dir():
        raise DataError(f"{data}: no such folder (expected an ImageFolder tree, a CIFAR-10 folder or 'digits')")
    if _cifar_root(root) is not None:
        return "cifar10"
    return "imagefolder"


def build_classification_data(data: str, *, image_size: int, augment: str = "basic", val_ratio: float = 0.2,
                              seed: int = 0, skip_bad_images: bool = False,
                              mean: Sequence[float] = (0.485, 0.456, 0.406),
                              std: Sequence[float] = (0.229, 0.224, 0.225)) -> ClassificationData:
    source = detect_format(data)
    flip = source != "digits"  # a mirrored digit is another symbol
    train_tf = build_transforms(image_size, train=True, augment=augment, mean=mean, std=std, flip=flip)
    val_tf = build_transforms(image_size, train=False, mean=mean, std=std)
    if source == "digits":
        return _digits(train_tf, val_tf, val_ratio, seed)
    if source == "cifar10":
        return _cifar10(_cifar_root(Path(data)), train_tf, val_tf)
    return _image_folder(Path(data), train_tf, val_tf, val_ratio, seed, skip_bad_images)


def build_eval_transform(image_size: int, mean: Sequence[float], std: Sequence[float]):
    return build_transforms(image_size, train=False, mean=mean, std=std)


# ----------------------------------------------------------------------------------------------- sources

def _digits(train_tf, val_tf, val_ratio: float, seed: int) -> ClassificationData:
    from sklearn.datasets import load_digits

    digits = load_digits()  # 1,797 real scanned 8×8 digits that ship with scikit-learn
    images = torch.from_numpy((digits.images * (255.0 / 16.0)).round().astype(np.uint8))
    images = images[:, None].expand(-1, 3, -1, -1).contiguous()
    train_idx, val_idx = _stratified_split(digits.target, val_ratio, seed)
    names = [str(d) for d in range(10)]
    return ClassificationData(TensorImages(images[train_idx], digits.target[train_idx], train_tf),
                              TensorImages(images[val_idx], digits.target[val_idx], val_tf), names, "digits")


def _cifar_root(root: Path) -> Path | None:
    for candidate in (root, root / "cifar-10-batches-py"):
        if (candidate / "batches.meta").is_file() or (candidate / "data_batch_1").is_file():
            return candidate
    return None


def _cifar10(root: Path, train_tf, val_tf) -> ClassificationData:
    for name in CIFAR10_TRAIN + ("test_batch", "batches.meta"):
        if not (root / name).is_file():
            raise DataError(f"{root / name}: missing (a CIFAR-10 folder has data_batch_1..5, test_batch, batches.meta)")
    meta = _unpickle(root / "batches.meta")
    names = [n.decode() if isinstance(n, bytes) else str(n) for n in _field(meta, "label_names", root / "batches.meta")]
    train_x, train_y = zip(*(_cifar_batch(root / name) for name in CIFAR10_TRAIN))
    test_x, test_y = _cifar_batch(root / "test_batch")
    return ClassificationData(TensorImages(torch.cat(train_x), sum(map(list, train_y), []), train_tf),
                              TensorImages(test_x, test_y, val_tf), names, "cifar10")


def _cifar_batch(path: Path) -> tuple[torch.Tensor, list[int]]:
    batch = _unpickle(path)
    data, labels = np.asarray(_field(batch, "data", path)), list(_field(batch, "labels", path))
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072 or len(data) != len(labels):
        raise DataError(f"{path}: expected uint8 data N×3072 and N labels, found {data.dtype} {data.shape} "
                        f"and {len(labels)} labels")
    return torch.from_numpy(data.reshape(-1, 3, 32, 32).copy()), labels


def _unpickle(path: Path) -> dict:
    # The official CIFAR-10 format is a pickle; these are files the user chose to train on, read as data.
    try:
        with open(path, "rb") as f:
            obj = pickle.load(f, encoding="bytes")
    except (pickle.UnpicklingError, EOFError, OSError, ValueError) as e:
        raise DataError(f"{path}: not a CIFAR-10 batch file ({e})") from None
    if not isinstance(obj, dict):
        raise DataError(f"{path}: not a CIFAR-10 batch file (found {type(obj).__name__})")
    return obj


def _field(batch: dict, key: str, path: Path):
    for k in (key.encode(), key):
        if k in batch:
            return batch[k]
    raise DataError(f"{path}: no field {key!r}")


def _image_folder(root: Path, train_tf, val_tf, val_ratio: float, seed: int,
                  skip_bad: bool) -> ClassificationData:
    val_dir = next((root / d for d in ("val", "valid", "validation", "test") if (root / d).is_dir()), None)
    skipped: list[tuple[str, str]] = []
    if (root / "train").is_dir() and val_dir is not None:
        names = _class_folders(root / "train")
        val_names = _class_folders(val_dir)
        if val_names != names:
            diff = sorted(set(names) ^ set(val_names))
            raise DataError(f"{val_dir}: classes differ from {root / 'train'} ({', '.join(diff)})")
        train, val = _scan(root / "train", names), _scan(val_dir, names)
    else:
        names = _class_folders(root)
        samples = _scan(root, names)
        train_idx, val_idx = _stratified_split([label for _, label in samples], val_ratio, seed)
        train, val = [samples[i] for i in train_idx], [samples[i] for i in val_idx]
    if skip_bad:
        train, val = _drop_bad(train, skipped), _drop_bad(val, skipped)
    return ClassificationData(ImageFiles(train, train_tf), ImageFiles(val, val_tf), names, "imagefolder", skipped)


def _class_folders(root: Path) -> list[str]:
    names = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not names:
        raise DataError(f"{root}: no class folders (expected {root}/<class>/<image>)")
    return names


def _scan(root: Path, names: list[str]) -> list[tuple[Path, int]]:
    samples = []
    for label, name in enumerate(names):
        files = sorted(f for f in (root / name).rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_EXTENSIONS)
        if not files:
            raise DataError(f"{root / name}: class folder has no images")
        samples += [(f, label) for f in files]
    return samples


def _drop_bad(samples: list[tuple[Path, int]], skipped: list[tuple[str, str]]) -> list[tuple[Path, int]]:
    good = []
    for path, label in samples:
        try:
            load_image(path)
            good.append((path, label))
        except DataError as e:
            skipped.append((str(path), str(e).split(": ", 1)[-1]))
    return good


def _stratified_split(labels, val_ratio: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.model_selection import train_test_split

    if not 0 < val_ratio < 1:
        raise DataError(f"val ratio must be between 0 and 1, got {val_ratio}")
    labels = np.asarray(labels)
    idx = np.arange(len(labels))
    counts = np.bincount(labels)
    stratify = labels if counts[counts > 0].min() >= 2 and len(labels) * val_ratio >= len(counts) else None
    train_idx, val_idx = train_test_split(idx, test_size=val_ratio, random_state=seed, stratify=stratify)
    return np.sort(train_idx), np.sort(val_idx)
