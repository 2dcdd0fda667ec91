"""What int8 needs of a SeqFakeFormer (``training/int8.py``): its training images as calibration, Fixed-Acc on its
validation split as the gate's score. By default the CNN backbone (and its projection to the transformer's width) is
quantised and the transformer, token embedding and head stay float; ``--scope all`` quantises them too, to measure
what that costs."""
from __future__ import annotations

from pathlib import Path

from backbonekit.sequence.data import SeqDeepFakeDataset, build_transform
from backbonekit.sequence.evaluate import evaluate_task
from backbonekit.training.run_record import eval_source

METRIC = "Fixed-Acc (%)"
SCOPES = {"backbone": ("net.backbone", "net.input_proj"), "all": ("",)}
DEFAULT_SUBSET = "facial_components"


def _source(checkpoint: str | Path) -> tuple[str, str]:
    source = eval_source(checkpoint, None, subset=None)
    return source["data"], source["subset"] or DEFAULT_SUBSET


class ImagesOnly:
    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int):
        return self.dataset[i][0]


def calibration_set(checkpoint: str | Path, cfg) -> ImagesOnly:
    root, subset = _source(checkpoint)
    return ImagesOnly(SeqDeepFakeDataset(root, subset, "train", transform=build_transform(cfg.image_size, train=False)))


def folder_transform(cfg):
    """An image file as ``predict sequence`` feeds it: resized, uint8."""
    return build_transform(cfg.image_size, train=False)


def score(checkpoint: str | Path, model, batch_size: int) -> float:
    """Fixed-Acc (%) of ``model`` (images → edit sequences) on the run's validation split."""
    root, subset = _source(checkpoint)
    return evaluate_task(model, root, subset, "val", batch_size=batch_size, device="cpu")["fixed_acc"]
