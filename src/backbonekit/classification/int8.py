"""What int8 needs of a classifier (``training/int8.py``): its training images as calibration, its validation split's
top-1 as the gate's score. The whole network is quantised (normalisation and softmax are no layers with weights)."""
from __future__ import annotations

from pathlib import Path

import torch
from torch.utils.data import DataLoader

from backbonekit.classification.data import build_classification_data, build_eval_transform
from backbonekit.training.run_record import eval_source

METRIC = "top-1 (%)"
SCOPES = {"backbone": ("task.model",), "all": ("",)}


def run_data(checkpoint: str | Path, image_size: int):
    """The run's data as ``eval classify`` reads it (its recorded source, ratio and seed; no augmentation)."""
    source = eval_source(checkpoint, None, val_ratio=None, seed=None)
    return build_classification_data(source["data"], image_size=image_size, augment="none",
                                     val_ratio=source["val_ratio"], seed=source["seed"])


class EvalView:
    """A training set's images through the validation transform (no augmentation), as the graph takes them."""

    def __init__(self, dataset, transform):
        self.dataset, self.transform = dataset, transform

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.transform(self.dataset.raw(i)[0])


def calibration_set(checkpoint: str | Path, cfg) -> EvalView:
    return EvalView(run_data(checkpoint, cfg.image_size).train, build_eval_transform(cfg.image_size))


def folder_transform(cfg):
    """An image file as ``predict classify`` feeds it: resized, centre-cropped, uint8."""
    return build_eval_transform(cfg.image_size)


def score(checkpoint: str | Path, model, batch_size: int) -> float:
    """Top-1 (%) of ``model`` (images → logits) on the run's validation split."""
    return top1(model, run_data(checkpoint, model.cfg.image_size).val, batch_size)


def top1(model, images, batch_size: int) -> float:
    """Top-1 (%) of ``model`` (images → logits) on a dataset of (image, label)."""
    right = total = 0
    with torch.inference_mode():
        for x, labels in DataLoader(images, batch_size=batch_size):
            right += int((model(x).argmax(-1) == labels).sum())
            total += len(labels)
    return 100 * right / total
