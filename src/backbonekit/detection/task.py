"""The detection LightningModule: an EfficientDet, anchor targets, focal + Huber loss, COCO mAP on validation.

Images arrive as uint8 (B, 3, H, W) at the configured (H, W) and are normalised here, so that the data pipeline,
``predict`` and the ONNX export all feed the model the same way. Validation mAP is torchmetrics'
``MeanAveragePrecision`` (pycocotools underneath) on letterboxed boxes; ignore regions (KITTI DontCare and neighbour
types, COCO crowd boxes) go in as crowd boxes of every class, so detections inside them are neither true nor false
positives, as the official evaluations treat them.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import lightning.pytorch as pl
import torch
from torchmetrics.detection import MeanAveragePrecision

import backbonekit.detection.efficientdet  # noqa: F401  (registers the efficientdet_* models)
from backbonekit.detection.anchors import build_batch_targets
from backbonekit.detection.loss import detection_loss
from backbonekit.detection.postprocess import postprocess
from backbonekit.models.registry import create_model
from backbonekit.training.optim import build_optimizer, build_schedule, check_choices, param_groups

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


@dataclass
class DetectConfig:
    model: str = "efficientdet_d0"
    num_classes: int = 3
    class_names: list[str] = field(default_factory=list)
    category_ids: list[int] = field(default_factory=list)  # COCO ids of the labels (default: label + 1)
    backbone: str | None = None               # None: the variant's EfficientNet
    pretrained: str | None = None             # detector weights (ours or effdet's)
    pretrained_backbone: str | None = None    # backbone weights (torchvision, timm, lukemelas, ours)
    image_size: tuple[int, int] = (512, 512)  # (H, W) the network sees
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    optimizer: str = "adamw"
    lr: float = 1e-3
    momentum: float = 0.9
    weight_decay: float = 1e-4
    scheduler: str = "cosine"
    warmup_epochs: float = 1.0
    step_size: int = 30
    plateau_patience: int = 3
    epochs: int = 50
    backbone_lr_mult: float = 1.0
    frozen_bn: bool = False
    drop_path_rate: float | None = None        # stochastic depth of the default backbone (None: effdet's 0.2)
    bn_momentum: float | None = 0.1            # None keeps effdet's 0.01, tuned for 300k-step schedules
    focal_alpha: float = 0.25
    focal_gamma: float = 1.5
    box_loss_weight: float = 50.0
    score_threshold: float = 0.001             # candidates kept for mAP (COCO practice: nearly all)
    max_detections: int = 100


class DetectionTask(pl.LightningModule):
    def __init__(self, **config):
        super().__init__()
        self.cfg = DetectConfig(**config)
        check_choices(self.cfg.optimizer, self.cfg.scheduler)
        self.save_hyperparameters(plain_config(self.cfg))  # plain types: the checkpoint loads with weights_only
        self.model = build_detector(self.cfg, pretrained=True)
        if self.cfg.bn_momentum is not None:
            # With effdet's 0.01 the running statistics trail the weights by ~100 steps: a short run would validate
            # (and be exported) with statistics of a network that no longer exists.
            for m in self.model.modules():
                if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                    m.momentum = self.cfg.bn_momentum
        self.anchors = self.model.anchors(self.cfg.image_size)
        self.register_buffer("mean", torch.tensor(self.cfg.mean).view(1, -1, 1, 1) * 255, persistent=False)
        self.register_buffer("std", torch.tensor(self.cfg.std).view(1, -1, 1, 1) * 255, persistent=False)
        self.val_map = MeanAveragePrecision(box_format="xyxy", iou_type="bbox", class_metrics=True,
                                            backend="pycocotools")
        self.last_result: dict = {}

    # ------------------------------------------------------------------------------------------------ model
    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 (or float 0–255) images → the model's input."""
        return (images.float() - self.mean) / self.std

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, N, C) class logits and (B, N, 4) box codes for uint8 images at the configured size."""
        return self.model.forward_flat(self.normalize(images))

    def detect(self, images: torch.Tensor, score_threshold: float | None = None) -> list[dict]:
        """Per image ``boxes`` (xyxy pixels of the input), ``scores`` and 0-based ``labels``."""
        # The per-level maps as the heads return them: postprocess reads them in place, without the (N, C) copies.
        cls, box = self.model(self.normalize(images))
        threshold = self.cfg.score_threshold if score_threshold is None else score_threshold
        return postprocess(cls, box, self.anchors.boxes, tuple(images.shape[-2:]), score_threshold=threshold,
                           max_detections=self.cfg.max_detections)

    def _check_size(self, images: torch.Tensor) -> None:
        if tuple(images.shape[-2:]) != tuple(self.cfg.image_size):
            raise ValueError(f"images are {tuple(images.shape[-2:])}, the anchors are for {self.cfg.image_size}")

    # ------------------------------------------------------------------------------------------------ steps
    def compute_loss(self, cls: torch.Tensor, box: torch.Tensor, targets: list[dict]) -> dict[str, torch.Tensor]:
        cls_targets, box_targets = build_batch_targets(self.anchors.boxes, targets)
        return detection_loss(cls, box, cls_targets, box_targets, self.cfg.focal_alpha, self.cfg.focal_gamma,
                              box_loss_weight=self.cfg.box_loss_weight)

    def training_step(self, batch, batch_idx):
        images, targets = batch
        self._check_size(images)
        losses = self.compute_loss(*self(images), targets)
        n = images.shape[0]
        self.log("train/loss", losses["loss"], on_step=False, on_epoch=True, prog_bar=True, sync_dist=True,
                 batch_size=n)
        self.log_dict({"train/cls_loss": losses["cls_loss"], "train/box_loss": losses["box_loss"]},
                      on_step=False, on_epoch=True, sync_dist=True, batch_size=n)
        return losses["loss"]

    def validation_step(self, batch, batch_idx):
        images, targets = batch
        self._check_size(images)
        cls, box = self(images)
        self.log("val/loss", self.compute_loss(cls, box, targets)["loss"], on_epoch=True, sync_dist=True, batch_size=images.shape[0])
        detections = postprocess(cls, box, self.anchors.boxes, tuple(images.shape[-2:]),
                                 score_threshold=self.cfg.score_threshold, max_detections=self.cfg.max_detections)
        self.val_map.update(detections, [metric_target(t, self.cfg.num_classes) for t in targets])

    def on_validation_epoch_end(self) -> None:
        result = self.val_map.compute()
        self.val_map.reset()
        self.log("val/map", result["map"], prog_bar=True)
        self.log("val/map_50", result["map_50"], prog_bar=True)
        self.log("val/map_75", result["map_75"])
        self.last_result = per_class_ap(result, self.cfg.class_names)

    # ------------------------------------------------------------------------------------------- optimiser
    def configure_optimizers(self):
        cfg = self.cfg
        backbone = list(self.model.backbone.parameters())
        ids = {id(p) for p in backbone}
        rest = [p for p in self.model.parameters() if id(p) not in ids]
        groups = param_groups([(backbone, cfg.backbone_lr_mult), (rest, 1.0)], cfg.lr, cfg.weight_decay)
        optimizer = build_optimizer(groups, cfg.optimizer, cfg.lr, cfg.momentum)
        return build_schedule(optimizer, cfg.scheduler, total_steps=self.trainer.estimated_stepping_batches,
                              epochs=cfg.epochs, warmup_epochs=cfg.warmup_epochs, step_size=cfg.step_size,
                              plateau_patience=cfg.plateau_patience)


def build_detector(cfg: DetectConfig, pretrained: bool = False) -> torch.nn.Module:
    """The configured detector; with ``pretrained`` the configured weight files are loaded (training starts from
    them), without it the architecture only (a checkpoint's weights follow)."""
    kwargs = dict(num_classes=cfg.num_classes, image_size=tuple(cfg.image_size), frozen_bn=cfg.frozen_bn)
    if cfg.backbone:
        kwargs["backbone"] = cfg.backbone
    if cfg.drop_path_rate is not None:
        kwargs["backbone_drop_path"] = cfg.drop_path_rate
    if pretrained and cfg.pretrained_backbone:
        kwargs["pretrained_backbone"] = cfg.pretrained_backbone
    return create_model(cfg.model, pretrained=cfg.pretrained if pretrained else None, **kwargs)


def metric_target(target: dict, num_classes: int) -> dict:
    """A data set target as torchmetrics' mAP wants it; each ignore region becomes a crowd box of every class."""
    boxes = target["boxes"].as_subclass(torch.Tensor).float()
    ignore = target.get("ignore_boxes")
    ignore = torch.zeros(0, 4) if ignore is None else ignore.as_subclass(torch.Tensor).float().to(boxes.device)
    n, k = len(boxes), len(ignore)
    crowd_labels = torch.arange(num_classes, device=boxes.device).repeat_interleave(k)
    return {"boxes": torch.cat([boxes, ignore.repeat(num_classes, 1)]),
            "labels": torch.cat([target["labels"].to(boxes.device), crowd_labels]),
            "iscrowd": torch.cat([torch.zeros(n, dtype=torch.long), torch.ones(k * num_classes, dtype=torch.long)])
            .to(boxes.device)}


def per_class_ap(result: dict, class_names: list[str]) -> dict:
    """mAP, mAP@.5, mAP@.75 and AP per class name (None for a class absent from the validation data)."""
    out = {key: float(result[key]) for key in ("map", "map_50", "map_75")}
    classes, per_class = result.get("classes"), result.get("map_per_class")
    if classes is not None and per_class is not None and classes.numel() == per_class.numel():
        values = dict(zip(classes.reshape(-1).tolist(), per_class.reshape(-1).tolist()))
        out["per_class"] = {name: (values[i] if values.get(i, -1) >= 0 else None) for i, name in
                            enumerate(class_names)}
    return out


def plain_config(cfg: DetectConfig) -> dict:
    d = asdict(cfg)
    for key in ("mean", "std", "class_names", "category_ids", "image_size"):
        d[key] = list(d[key])
    return d
