"""Which kind of classification data ``--data`` names, from the name and the files present only: ``train classify``
asks this before it imports the training stack (Lightning, torchvision), so a mistyped path answers at once."""
from __future__ import annotations

from pathlib import Path

from backbonekit.classification import idx
from backbonekit.errors import DataError

CIFAR10_TRAIN = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR10_FILES = CIFAR10_TRAIN + ("test_batch", "batches.meta")


def detect_format(data: str) -> str:
    """``"digits"`` (the built-in set; ``./digits`` is a folder of that name), ``"idx"`` (``fashion-mnist``, ``mnist``,
    ``kmnist`` or a folder of IDX files), ``"cifar10"`` or ``"imagefolder"``."""
    if data == "digits":
        return "digits"
    if idx.is_named(data):
        return "idx"
    root = Path(data)
    if not root.is_dir():
        what = "a file, not a folder" if root.exists() else "no such folder"
        raise DataError(f"{data}: {what} (expected an ImageFolder tree, a CIFAR-10 folder, a folder of IDX files, "
                        "'digits' or 'fashion-mnist')")
    if idx.is_idx_folder(root):
        return "idx"
    return "cifar10" if cifar_root(root) is not None else "imagefolder"


def cifar_root(root: Path) -> Path | None:
    """The folder holding the CIFAR-10 batch files: ``root`` or its ``cifar-10-batches-py``, if either has any."""
    for candidate in (root, root / "cifar-10-batches-py"):
        if any((candidate / name).is_file() for name in CIFAR10_FILES):
            return candidate
    return None
