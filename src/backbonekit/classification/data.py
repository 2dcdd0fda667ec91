"""Classification data: the built-in ``digits``, CIFAR-10 in its python-pickle format, the MNIST family's IDX files
(Fashion-MNIST, MNIST, KMNIST: ``idx.py``) and ImageFolder trees.

Every problem with the user's files raises ``DataError`` naming the file or folder. Images are decoded when an item
is read; a file that fails to decode stops the run with its path, or with ``skip_bad_images`` every file is decoded
once up front and the bad ones are left out and listed in ``ClassificationData.skipped``.
"""
from __future__ import annotations

import pickle
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset, Subset
from torchvision.transforms import v2

from backbonekit.classification import idx
from backbonekit.classification.data_format import CIFAR10_FILES, CIFAR10_TRAIN, detect_format
from backbonekit.classification.data_format import cifar_root as _cifar_root
from backbonekit.classification.transforms import build_transforms
from backbonekit.errors import ConfigError, DataError
from backbonekit.io.images import images_under, load_image, unreadable_images

VAL_FOLDERS = ("val", "valid", "validation", "test")  # first found is the validation split


@dataclass
class ClassificationData:
    """Train and validation sets whose items are (uint8 image C×H×W, int label)."""

    train: Dataset
    val: Dataset
    class_names: list[str]
    source: str                                                    # "digits" | "cifar10" | "idx" | "imagefolder"
    skipped: list[tuple[str, str]] = field(default_factory=list)   # (path, reason) of bad images left out
    test: Dataset | None = None  # a test split apart from the validation data (IDX: the official t10k files)
    split: str = ""              # where validation (and test) come from, in words, for the run's record


class TensorImages(Dataset):
    """Images held in memory as a uint8 tensor N×C×H×W (digits, CIFAR-10)."""

    def __init__(self, images: torch.Tensor, labels: Sequence[int], transform: Callable):
        self.images, self.labels, self.transform = images, [int(y) for y in labels], transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.transform(self.images[i]), self.labels[i]

    def raw(self, i: int) -> tuple[torch.Tensor, int]:
        """The image before any transform, and its label (for other views of it: semi-supervised learning)."""
        return self.images[i], self.labels[i]


class ImageFiles(Dataset):
    """Images decoded from files when read; ``samples`` holds (path, label)."""

    def __init__(self, samples: list[tuple[Path, int]], transform: Callable):
        self.samples, self.transform = samples, transform
        self.labels = [label for _, label in samples]

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        path, label = self.samples[i]
        return self.transform(load_image(path)), label

    def raw(self, i: int):
        """The decoded image before any transform, and its label."""
        path, label = self.samples[i]
        return load_image(path), label


# ----------------------------------------------------------------------------------------------- entry points

def build_classification_data(data: str, *, image_size: int, augment: str = "basic", val_ratio: float = 0.2,
                              seed: int = 0, skip_bad_images: bool = False, crop_padding: int | None = None,
                              random_erasing: float = 0.0) -> ClassificationData:
    """Read ``data`` (see ``detect_format``) into train and validation sets with their transforms."""
    if not 0 < val_ratio < 1:
        raise ConfigError(f"--val-ratio must be between 0 and 1, got {val_ratio}")
    source = detect_format(data)
    flip = flips_keep_class(data, source)
    train_tf = build_transforms(image_size, train=True, augment=augment, flip=flip, crop_padding=crop_padding,
                                random_erasing=random_erasing)
    val_tf = build_eval_transform(image_size)
    if source == "digits":
        built = _digits(train_tf, val_tf, val_ratio, seed)
    elif source == "idx":
        built = _idx(data, train_tf, val_tf, val_ratio, seed)
    elif source == "cifar10":
        built = _cifar10(_cifar_root(Path(data)), train_tf, val_tf)
    else:
        built = _image_folder(Path(data), train_tf, val_tf, val_ratio, seed, skip_bad_images)
    check_trainable(built, data, val_ratio)
    return built


def check_trainable(built: ClassificationData, data: str, val_ratio: float) -> None:
    """Data a classifier can train on, said in one line: at least two classes (one has nothing to tell apart, and
    the accuracy metrics refuse it), and at least two training images. The last-batch rule (``training.loaders``)
    drops a final batch of one image, but a training split of one image is the only batch there is, and BatchNorm
    cannot normalise a batch of one."""
    if len(built.class_names) < 2:
        found = f"1 class ({built.class_names[0]})" if built.class_names else "no class"
        raise DataError(f"{data}: {found}; a classifier needs at least 2 classes (an ImageFolder tree: one "
                        "sub-folder of images per class)")
    if len(built.train) < 2:
        raise DataError(f"{data}: {len(built.train)} training image(s) after holding out {len(built.val)} for "
                        f"validation (--val-ratio {val_ratio:g}); training needs at least 2 (BatchNorm cannot "
                        "normalise a batch of one): add images")


def flips_keep_class(data: str, source: str | None = None) -> bool:
    """Whether a mirrored image keeps its class: not for digits or characters (digits, MNIST, KMNIST)."""
    source = source or detect_format(data)
    return source != "digits" and (source != "idx" or idx.flip_ok(data))


def channel_stats(dataset: Dataset, max_files: int = 1000, seed: int = 0) -> tuple[list[float], list[float]]:
    """Per-channel mean and standard deviation (0-1 scale) of a training set's images as stored, before any
    transform: every image of an in-memory set, a seeded sample of ``max_files`` of a set decoded from files."""
    indices = None
    if isinstance(dataset, Subset):
        dataset, indices = dataset.dataset, list(dataset.indices)
    if not hasattr(dataset, "raw"):
        raise ConfigError(f"--normalize data: cannot read the images of a {type(dataset).__name__}")
    indices = list(range(len(dataset))) if indices is None else indices
    channels = None
    if isinstance(dataset, TensorImages):
        images = dataset.images
        if images.shape[1] > 1 and images.stride(1) == 0:  # grey bytes viewed as 3 channels (IDX): count them once
            channels, images = images.shape[1], images[:, :1]
        chunks = (images[indices[i:i + 8192]] for i in range(0, len(indices), 8192))
    else:
        if len(indices) > max_files:
            indices = np.random.default_rng(seed).choice(indices, max_files, replace=False).tolist()
        chunks = (v2.functional.to_image(dataset.raw(i)[0])[None] for i in indices)
    # A histogram of the 256 byte values per channel: exact, and ~10× faster than summing 47M floats (Fashion-MNIST).
    counts = None
    for x in chunks:
        x = x.to(torch.uint8) if x.dtype != torch.uint8 else x
        h = torch.stack([torch.bincount(x[:, c].reshape(-1), minlength=256) for c in range(x.shape[1])])
        counts = h if counts is None else counts + h
    if counts is None:
        raise ConfigError("--normalize data: no training images to measure")
    values = torch.arange(256, dtype=torch.float64) / 255
    n = counts.sum(1).double()
    mean = (counts * values).sum(1) / n
    std = ((counts * values ** 2).sum(1) / n - mean ** 2).clamp_min(0).sqrt()
    if channels is not None:
        mean, std = mean.expand(channels), std.expand(channels)
    if (std <= 0).any():
        raise ConfigError("--normalize data: the training images are one flat colour (std 0)")
    return mean.tolist(), std.tolist()


def build_eval_transform(image_size: int) -> Callable:
    """The validation / prediction pipeline: resize and centre crop, uint8 out."""
    return build_transforms(image_size, train=False)


# ----------------------------------------------------------------------------------------------- digits

def _digits(train_tf: Callable, val_tf: Callable, val_ratio: float, seed: int) -> ClassificationData:
    from sklearn.datasets import load_digits

    digits = load_digits()  # 1,797 real scanned 8×8 digits that ship with scikit-learn, values 0..16
    gray = torch.from_numpy((digits.images * (255.0 / 16.0)).round().astype(np.uint8))
    images = gray[:, None].expand(-1, 3, -1, -1).contiguous()  # 3 channels, as every backbone expects
    train_idx, val_idx = _stratified_split(digits.target, val_ratio, seed)
    return ClassificationData(TensorImages(images[train_idx], digits.target[train_idx], train_tf),
                              TensorImages(images[val_idx], digits.target[val_idx], val_tf),
                              [str(d) for d in range(10)], "digits")


# ----------------------------------------------------------------------------------------------- IDX

def _idx(data: str, train_tf: Callable, val_tf: Callable, val_ratio: float, seed: int) -> ClassificationData:
    """The official split kept: validation is a seeded stratified share of the training files, the test files are
    the test split."""
    d = idx.load_idx(data)
    train_idx, val_idx = _stratified_split(d.train_labels, val_ratio, seed)

    def three_channels(images: torch.Tensor) -> torch.Tensor:
        # A view (every backbone takes 3 channels): the grey bytes are held once, indexed before expanding.
        return images.expand(-1, 3, -1, -1)
    name = d.dataset or "IDX"
    split = (f"{name}: validation = {len(val_idx):,} of the {len(d.train_labels):,} training images (stratified, "
             f"val-ratio {val_ratio}, seed {seed}); test = the {len(d.test_labels):,} test images ({d.root})")
    return ClassificationData(
        TensorImages(three_channels(d.train_images[train_idx]), d.train_labels[train_idx], train_tf),
        TensorImages(three_channels(d.train_images[val_idx]), d.train_labels[val_idx], val_tf),
        d.class_names, "idx", test=TensorImages(three_channels(d.test_images), d.test_labels, val_tf), split=split)


# ----------------------------------------------------------------------------------------------- CIFAR-10

def _cifar10(root: Path, train_tf: Callable, val_tf: Callable) -> ClassificationData:
    for name in CIFAR10_FILES:
        if not (root / name).is_file():
            raise DataError(f"{root / name}: missing (a CIFAR-10 folder has {', '.join(CIFAR10_FILES)})")
    meta = _unpickle(root / "batches.meta")
    names = [n.decode() if isinstance(n, bytes) else str(n) for n in _field(meta, "label_names", root / "batches.meta")]
    train_x, train_y = zip(*(_cifar_batch(root / name, len(names)) for name in CIFAR10_TRAIN))
    test_x, test_y = _cifar_batch(root / "test_batch", len(names))
    return ClassificationData(TensorImages(torch.cat(train_x), [y for ys in train_y for y in ys], train_tf),
                              TensorImages(test_x, test_y, val_tf), names, "cifar10")


def _cifar_batch(path: Path, num_classes: int) -> tuple[torch.Tensor, list[int]]:
    """One batch file: uint8 rows of 1024 red, 1024 green, 1024 blue values (row-major 32×32) and their labels."""
    batch = _unpickle(path)
    data, labels = np.asarray(_field(batch, "data", path)), [int(y) for y in _field(batch, "labels", path)]
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072 or len(data) != len(labels):
        raise DataError(f"{path}: expected uint8 data N×3072 and N labels, found {data.dtype} {data.shape} "
                        f"and {len(labels)} labels")
    bad = [y for y in labels if not 0 <= y < num_classes]
    if bad:
        raise DataError(f"{path}: label {bad[0]} is outside the {num_classes} classes of batches.meta")
    return torch.from_numpy(data.reshape(-1, 3, 32, 32).copy()), labels


def _unpickle(path: Path) -> dict:
    # The official CIFAR-10 format is a pickle. Unpickling can run code, so only files the user chose to train on
    # are read this way (never anything downloaded); encoding="bytes" as the format's own Python 2 origin needs.
    try:
        with open(path, "rb") as f:
            obj = pickle.load(f, encoding="bytes")
    except (pickle.UnpicklingError, EOFError, OSError, ValueError, AttributeError, ImportError, IndexError) as e:
        raise DataError(f"{path}: not a CIFAR-10 batch file ({e or type(e).__name__})") from None
    if not isinstance(obj, dict):
        raise DataError(f"{path}: not a CIFAR-10 batch file (found {type(obj).__name__})")
    return obj


def _field(batch: dict, key: str, path: Path):
    for k in (key.encode(), key):
        if k in batch:
            return batch[k]
    raise DataError(f"{path}: no field {key!r}")


# ----------------------------------------------------------------------------------------------- ImageFolder

def _image_folder(root: Path, train_tf: Callable, val_tf: Callable, val_ratio: float, seed: int,
                  skip_bad: bool) -> ClassificationData:
    """``root/train`` + ``root/val`` (or valid, validation, test), or one class tree (``root`` or ``root/train``)
    split by a seeded stratified ratio."""
    skipped: list[tuple[str, str]] = []
    train_dir = root / "train" if (root / "train").is_dir() else root
    val_dir = next((root / d for d in VAL_FOLDERS if (root / d).is_dir()), None) if train_dir != root else None
    names = _class_folders(train_dir)
    if val_dir is not None:
        _check_same_classes(names, _class_folders(val_dir), train_dir, val_dir)
        train, val = _scan(train_dir, names), _scan(val_dir, names)
        if skip_bad:
            train, val = _drop_bad(train, skipped), _drop_bad(val, skipped)
    else:
        samples = _scan(train_dir, names)
        if skip_bad:  # before the split, so it stratifies over the images that will be used
            samples = _drop_bad(samples, skipped)
        train_idx, val_idx = _stratified_split([label for _, label in samples], val_ratio, seed)
        train, val = [samples[i] for i in train_idx], [samples[i] for i in val_idx]
    for split, items in (("train", train), ("val", val)):
        if not items:
            raise DataError(f"{root}: no readable images left for {split}")
    return ClassificationData(ImageFiles(train, train_tf), ImageFiles(val, val_tf), names, "imagefolder", skipped)


def _class_folders(root: Path) -> list[str]:
    names = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not names:
        what = "images but no class folders" if images_under(root) else "no images"
        raise DataError(f"{root}: {what} (expected {root}/<class>/<image>)")
    return names


def _check_same_classes(train: list[str], val: list[str], train_dir: Path, val_dir: Path) -> None:
    if train != val:
        only_train, only_val = sorted(set(train) - set(val)), sorted(set(val) - set(train))
        raise DataError(f"{val_dir}: classes differ from {train_dir} (only in train: {', '.join(only_train) or '-'}; "
                        f"only in {val_dir.name}: {', '.join(only_val) or '-'})")


def _scan(root: Path, names: list[str]) -> list[tuple[Path, int]]:
    samples = []
    for label, name in enumerate(names):
        files = images_under(root / name)
        if not files:
            raise DataError(f"{root / name}: class folder has no images")
        samples += [(f, label) for f in files]
    return samples


def _drop_bad(samples: list[tuple[Path, int]], skipped: list[tuple[str, str]]) -> list[tuple[Path, int]]:
    """Decode every image once; keep the readable ones, record the others in ``skipped``."""
    bad = unreadable_images([path for path, _ in samples])
    skipped += [(str(path), reason) for path, reason in bad.items()]
    return [sample for sample in samples if sample[0] not in bad]


def _stratified_split(labels: Sequence[int], val_ratio: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Sorted train and validation indices; stratified by class where every class has at least two items."""
    from sklearn.model_selection import train_test_split

    labels = np.asarray(labels)
    if len(labels) < 2:
        raise DataError(f"cannot split {len(labels)} image(s) into train and validation")
    counts = np.bincount(labels)
    n_classes, n_val = int((counts > 0).sum()), int(np.ceil(len(labels) * val_ratio))
    # sklearn refuses to stratify a class of one image, or a split with fewer images than classes.
    can_stratify = counts[counts > 0].min() >= 2 and min(n_val, len(labels) - n_val) >= n_classes
    train_idx, val_idx = train_test_split(np.arange(len(labels)), test_size=val_ratio, random_state=seed,
                                          stratify=labels if can_stratify else None)
    return np.sort(train_idx), np.sort(val_idx)
