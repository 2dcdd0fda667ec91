"""Data for learning from few labels: a seeded, balanced labelled subset (``--labels-per-class``), unlabelled images
(a folder, or the training images left out of that subset, whose hidden labels only measure pseudo-label accuracy),
the FixMatch / pseudo-label stream and pseudo-labelled sets for Noisy Student.

Unlabelled images are held raw (decoded, untransformed) so each stream applies its own views to them.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from backbonekit.errors import ConfigError, DataError
from backbonekit.io.images import find_images, load_image

UNKNOWN = -1                         # the true label of an image from an unlabelled folder
REST = ("rest", "digits-rest")       # --unlabeled: the training images not chosen by --labels-per-class


class RawImages(Dataset):
    """Untransformed images and their true labels (``UNKNOWN`` for a folder's), for ``raw(i)``."""

    def __init__(self, get: Callable[[int], tuple], n: int, labels: Sequence[int]):
        self._get, self._n, self.labels = get, n, [int(y) for y in labels]

    @classmethod
    def folder(cls, folder: str | Path) -> "RawImages":
        if not Path(folder).is_dir():
            what = "a file, not a folder" if Path(folder).exists() else "no such folder"
            raise DataError(f"{folder}: {what} (--unlabeled takes a folder of images or 'digits-rest')")
        paths = find_images([folder])
        return cls(lambda i: (load_image(paths[i]), UNKNOWN), len(paths), [UNKNOWN] * len(paths))

    @classmethod
    def subset(cls, dataset: Dataset, indices: Sequence[int]) -> "RawImages":
        """Items ``indices`` of a ``TensorImages``/``ImageFiles`` set, before its transform, labels kept."""
        indices = [int(i) for i in indices]
        return cls(lambda i: dataset.raw(indices[i]), len(indices), [dataset.labels[i] for i in indices])

    def __len__(self) -> int:
        return self._n

    def raw(self, i: int) -> tuple:
        return self._get(i)

    def __getitem__(self, i: int) -> tuple:
        return self._get(i)


def select_labelled(labels: Sequence[int], per_class: int, num_classes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Sorted indices of ``per_class`` items of each class (seeded), and of the rest."""
    labels = np.asarray(labels)
    if per_class < 1:
        raise ConfigError(f"--labels-per-class must be at least 1, got {per_class}")
    rng = np.random.default_rng(seed)
    chosen = []
    for c in range(num_classes):
        idx = np.flatnonzero(labels == c)
        if len(idx) < per_class:
            raise ConfigError(f"--labels-per-class {per_class}: class {c} has only {len(idx)} training image(s)")
        chosen.append(rng.permutation(idx)[:per_class])
    chosen = np.sort(np.concatenate(chosen))
    return chosen, np.setdiff1d(np.arange(len(labels)), chosen)


def unlabeled_images(spec: str, train: Dataset, rest: np.ndarray | None) -> RawImages:
    """``--unlabeled``: a folder of images, or ``digits-rest``/``rest`` (needs ``--labels-per-class``)."""
    if spec in REST:
        if rest is None:
            raise ConfigError(f"--unlabeled {spec} needs --labels-per-class (the rest are the unlabelled images)")
        if len(rest) == 0:
            raise ConfigError(f"--unlabeled {spec}: --labels-per-class leaves no training image over")
        return RawImages.subset(train, rest)
    return RawImages.folder(spec)


class SemiDataset(Dataset):
    """One labelled item with ``mu`` unlabelled ones drawn at random (with replacement), so an epoch is one pass
    over the labelled set and each batch of B labelled images carries mu × B unlabelled ones.

    Item: ``{"x", "y", "weak": mu×C×H×W, "true": mu}`` (+ ``"strong"`` for FixMatch); ``true`` is ``UNKNOWN`` for a
    folder's images and is used only to log how accurate the pseudo-labels are.
    """

    def __init__(self, labelled: Dataset, unlabeled: RawImages, weak: Callable, strong: Callable | None, mu: int):
        if mu < 1:
            raise ConfigError(f"--mu must be at least 1, got {mu}")
        self.labelled, self.unlabeled, self.weak, self.strong, self.mu = labelled, unlabeled, weak, strong, mu

    def __len__(self) -> int:
        return len(self.labelled)

    def __getitem__(self, i: int) -> dict:
        x, y = self.labelled[i]
        weak, strong, true = [], [], []
        for k in torch.randint(len(self.unlabeled), (self.mu,)).tolist():
            image, label = self.unlabeled.raw(k)
            weak.append(self.weak(image))
            if self.strong is not None:
                strong.append(self.strong(image))
            true.append(label)
        item = {"x": x, "y": y, "weak": torch.stack(weak), "true": torch.tensor(true)}
        if self.strong is not None:
            item["strong"] = torch.stack(strong)
        return item


class PseudoLabeled(Dataset):
    """Unlabelled images with the targets a teacher gave them (class indices, or N×C soft targets)."""

    def __init__(self, images: RawImages, indices: Sequence[int], targets, transform: Callable):
        self.images, self.indices, self.targets, self.transform = images, [int(i) for i in indices], targets, transform

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int):
        image, _ = self.images.raw(self.indices[i])
        return self.transform(image), self.targets[i]


class SoftTargets(Dataset):
    """A labelled set with one-hot float targets, to be concatenated with soft pseudo-labels."""

    def __init__(self, dataset: Dataset, num_classes: int):
        self.dataset, self.num_classes = dataset, num_classes

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int):
        x, y = self.dataset[i]
        return x, torch.nn.functional.one_hot(torch.tensor(y), self.num_classes).float()
