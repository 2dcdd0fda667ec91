"""What int8 needs of a detector (``training/int8.py``): its training images letterboxed as calibration, COCO mAP
on its validation split as the gate's score. By default only the backbone and the BiFPN are quantised: the class and
box heads and the post-processing (decoding, NMS) stay float, since a detector's int8 accuracy is known to collapse
when its heads are quantised (``--scope all`` quantises them too, to measure that)."""
from __future__ import annotations

from pathlib import Path

import torch
from torchvision import tv_tensors

from backbonekit.detection.data import build_detection_data, data_format
from backbonekit.detection.evaluate import coco_ground_truth, run_detector
from backbonekit.detection.evaluate_coco import detections_to_coco_results, evaluate_coco
from backbonekit.detection.predict import empty_target
from backbonekit.detection.transforms import eval_transforms
from backbonekit.io.images import image_to_tensor
from backbonekit.training.run_record import eval_source

METRIC = "mAP@[.5:.95] (%)"
SCOPES = {"backbone": ("net.backbone", "net.fpn"), "all": ("",)}


def _data(checkpoint: str | Path, cfg):
    source = eval_source(checkpoint, None, val_ratio=None, seed=None, val_data=None, image_root=None)
    classes = list(cfg.class_names) if data_format(source["data"]) == "kitti" else None
    return build_detection_data(source["data"], tuple(cfg.image_size), classes=classes,
                                val_fraction=source["val_ratio"], seed=source["seed"], augment=False,
                                val_data=source["val_data"], image_root=source["image_root"])


class Letterboxed:
    """A detection data set's images alone, letterboxed (its eval transform), as the graph takes them."""

    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.dataset[i][0].as_subclass(torch.Tensor)


def calibration_set(checkpoint: str | Path, cfg) -> Letterboxed:
    return Letterboxed(_data(checkpoint, cfg).train)


def folder_transform(cfg):
    """An image file as ``predict detect`` feeds it: letterboxed to the input size."""
    transform = eval_transforms(tuple(cfg.image_size))

    def letterbox(image) -> torch.Tensor:
        image = tv_tensors.Image(image_to_tensor(image))
        return transform(image, empty_target(image))[0].as_subclass(torch.Tensor)
    return letterbox


def score(checkpoint: str | Path, model, batch_size: int) -> float:
    """COCO mAP@[.5:.95] (%) of ``model`` (``detect``: images → detections) on the run's validation split."""
    dataset = _data(checkpoint, model.cfg).val
    detections, _ = run_detector(model, dataset, batch_size)
    truth, image_ids, category_ids = coco_ground_truth(dataset)
    found = evaluate_coco(truth, detections_to_coco_results(detections, image_ids, category_ids))
    return 100 * (found["mAP"] or 0.0)
