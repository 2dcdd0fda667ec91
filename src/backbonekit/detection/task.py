"""The detection LightningModule: an EfficientDet, anchor targets, focal + Huber loss, COCO mAP on validation.

Images arrive as uint8 (B, 3, H, W) at the configured (H, W) (or 0–1 floats) and are normalised here with the
model's own statistics (its backbone's: ImageNet's, 0.5/0.5 for EfficientNet-Lite), so that the data pipeline,
``predict``, the ONNX export and any backbone agree without the caller knowing them. Validation mAP is torchmetrics'
``MeanAveragePrecision`` (pycocotools underneath) on letterboxed boxes; ignore regions (KITTI DontCare and neighbour
types, COCO crowd boxes) go in as crowd boxes of every class, so detections inside them are neither true nor false
positives, as the official evaluations treat them.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import lightning.pytorch as pl
import torch
from torch.utils.data import DataLoader, Subset
from torchmetrics.detection import MeanAveragePrecision

from backbonekit.detection.loss import detection_loss
from backbonekit.detection.matching import build_batch_targets
from backbonekit.detection.postprocess import clip_detections, postprocess
from backbonekit.detection.transforms import content_size
from backbonekit.errors import ConfigError
from backbonekit.models.registry import create_model
from backbonekit.nn.groupnorm import batch_norm_to_group_norm
from backbonekit.nn.normalize import ImageNormalize
from backbonekit.nn.batchnorm import hold_module, reestimate_batch_norm
from backbonekit.training.frozen_parts import HoldsFrozenParts
from backbonekit.training.optim import Optimises
from backbonekit.training.settings import OptimSettings, flat_config, nest_optim
from backbonekit.training.task_io import load_task

TASK = "detect"
DEFAULT_OPTIM = OptimSettings(epochs=50)


@dataclass
class DetectConfig:
    task: str = TASK
    model: str = "efficientdet_d0"
    num_classes: int = 3
    class_names: list[str] = field(default_factory=list)
    category_ids: list[int] = field(default_factory=list)  # COCO ids of the labels (default: label + 1)
    backbone: str | None = None               # None: the variant's EfficientNet
    pretrained: str | None = None             # detector weights (ours or effdet's)
    pretrained_backbone: str | None = None    # backbone weights (torchvision, timm, lukemelas, ours)
    image_size: tuple[int, int] = (512, 512)  # (H, W) the network sees
    # freeze_backbone: the BiFPN and heads train only (backbone in eval mode, no gradients)
    optim: OptimSettings = field(default_factory=lambda: replace(DEFAULT_OPTIM))
    norm: str = "batch"                        # batch | group: GroupNorm in place of every BatchNorm (from scratch)
    drop_path_rate: float | None = None        # stochastic depth of the default backbone (None: effdet's 0.2)
    bn_momentum: float | None = 0.1            # None keeps effdet's 0.01, tuned for 300k-step schedules
    precise_bn_images: int = 256               # training images that re-estimate BN statistics before validation
    precise_bn_batch: int = 64                 # ... in batches of this many (0 images: running averages kept)
    focal_alpha: float = 0.25
    focal_gamma: float = 1.5
    box_loss_weight: float = 50.0
    score_threshold: float = 0.001             # candidates kept for mAP (COCO practice: nearly all)
    max_detections: int = 100


class DetectionTask(Optimises, HoldsFrozenParts, pl.LightningModule):
    def __init__(self, **config):
        super().__init__()
        self.cfg = DetectConfig(**nest_optim(config, DEFAULT_OPTIM))
        self.save_hyperparameters(plain_config(self.cfg))  # plain types: the checkpoint loads with weights_only
        self.model = build_detector(self.cfg, pretrained=True)
        if self.cfg.bn_momentum is not None:
            # With effdet's 0.01 the running statistics trail the weights by ~100 steps: a short run would validate
            # (and be exported) with statistics of a network that no longer exists.
            for m in self.model.modules():
                if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                    m.momentum = self.cfg.bn_momentum
        self.anchors = self.model.anchors(self.cfg.image_size)
        self.normalize = ImageNormalize.from_cfg(self.model.pretrained_cfg)
        self.hold_frozen_parts()
        self.val_map = MeanAveragePrecision(box_format="xyxy", iou_type="bbox", class_metrics=True,
                                            backend="pycocotools")
        self.last_result: dict = {}

    def hold_frozen_parts(self) -> None:
        if self.cfg.optim.freeze_backbone:
            hold_module(self.model.backbone)

    # ------------------------------------------------------------------------------------------------ model
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

    @torch.no_grad()
    def recalibrate_batch_norm(self, batches) -> int:
        """Re-estimate every BatchNorm's running statistics from ``batches`` of uint8 images, each one forward with
        batch statistics and everything else as at inference (no drop path); returns the number of batches.

        Why: the running averages of a training run are averages of *training-batch* statistics. With batches of 8
        and the small maps of the deep levels (4×4 at stride 32 for a 128² input) those differ systematically from
        the statistics the network produces once every BN uses fixed statistics (the variance of the SE-gated
        projection convs' output by −20 %, already at initialisation); in eval mode the errors of ~100 BNs in series
        compound into activations 10²–10³× too large, and the validation loss jumps from epoch to epoch. Averaging
        more batches of the same size (the usual "precise BN") reproduces the same bias; larger batches shrink it
        (validation loss of a swinging epoch: 10977 with the running averages, 704 re-estimated from batches of 8,
        1.2 from batches of 64)."""
        held = set(self.model.backbone.modules()) if self.cfg.optim.freeze_backbone else set()  # kept as loaded
        was_training = self.training
        self.eval()
        try:
            return reestimate_batch_norm(self.model, batches, lambda x: self.model(self.normalize(x.to(self.device))),
                                         exclude=held, biased_var=True)
        finally:
            self.train(was_training)

    def _precise_bn_batches(self):
        """Batches of ``precise_bn_batch`` training images (a random subset, the same on every rank), or none."""
        loader = getattr(self.trainer, "train_dataloader", None)
        dataset = getattr(loader, "dataset", None)
        n = min(self.cfg.precise_bn_images, len(dataset)) if dataset is not None else 0
        batch = min(self.cfg.precise_bn_batch, n)
        if batch < 2:
            return
        generator = torch.Generator().manual_seed(self.current_epoch)
        subset = Subset(dataset, torch.randperm(len(dataset), generator=generator)[:n].tolist())
        # Own generator and a forked RNG: the augmentations drawn here leave the training run's random stream as is.
        with torch.random.fork_rng(devices=[]):
            for images, _ in DataLoader(subset, batch_size=batch, drop_last=True, num_workers=loader.num_workers,
                                        collate_fn=loader.collate_fn, generator=generator):
                yield images

    def on_validation_epoch_start(self) -> None:
        has_batch_norm = any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in self.model.modules())
        if (self.trainer.state.fn == "fit" and not self.trainer.sanity_checking and self.cfg.precise_bn_images > 0
                and has_batch_norm):
            self.recalibrate_batch_norm(self._precise_bn_batches())


    def example_batch(self, batch_size: int, device="cpu") -> tuple[torch.Tensor, list[dict]]:
        """Random images, each with two boxes, shaped like the training data's (for ``--batch-size auto``): target
        building and the loss are measured too."""
        height, width = self.cfg.image_size
        boxes = torch.tensor([[0.1, 0.1, 0.4, 0.5], [0.5, 0.3, 0.9, 0.8]], device=device) * torch.tensor(
            [width, height] * 2, device=device)
        target = {"boxes": boxes, "labels": torch.zeros(2, dtype=torch.long, device=device)}
        images = torch.randint(0, 256, (batch_size, 3, height, width), dtype=torch.uint8, device=device)
        return images, [target] * batch_size

    def training_loss(self, batch) -> torch.Tensor:
        images, targets = batch
        return self.compute_loss(*self(images), targets)["loss"]

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
        # Cut to the image inside the letterbox, as `eval` and `predict` cut them to the original image: a box in
        # the padding is no detection, and val/map (which picks best.ckpt) scores what they score.
        detections = [clip_detections(d, content_size(t["letterbox"])) if "letterbox" in t else d
                      for d, t in zip(detections, targets)]
        self.val_map.update(detections, [metric_target(t, self.cfg.num_classes) for t in targets])

    def on_validation_epoch_end(self) -> None:
        result = self.val_map.compute()
        self.val_map.reset()
        # Percent, as every score (torchmetrics' -1, no ground truth at all, is kept as -1).
        for key, bar in (("map", True), ("map_50", True), ("map_75", False)):
            value = result[key]
            self.log(f"val/{key}", value if value < 0 else 100 * value, prog_bar=bar)
        self.last_result = per_class_ap(result, self.cfg.class_names)


def build_detector(cfg: DetectConfig, pretrained: bool = False) -> torch.nn.Module:
    """The configured detector; with ``pretrained`` the configured weight files are loaded (training starts from
    them), without it the architecture only (a checkpoint's weights follow)."""
    kwargs = dict(num_classes=cfg.num_classes, image_size=tuple(cfg.image_size), frozen_bn=cfg.optim.freeze_bn)
    if cfg.backbone:
        kwargs["backbone"] = cfg.backbone
    if cfg.drop_path_rate is not None:
        kwargs["backbone_drop_path"] = cfg.drop_path_rate
    if pretrained and cfg.pretrained_backbone:
        kwargs["pretrained_backbone"] = cfg.pretrained_backbone
    model = create_model(cfg.model, pretrained=cfg.pretrained if pretrained else None, **kwargs)
    if cfg.norm == "group":
        if cfg.optim.freeze_bn:
            raise ConfigError("freeze_bn freezes the backbone's BatchNorm; with norm='group' there is none left")
        batch_norm_to_group_norm(model)
    elif cfg.norm != "batch":
        raise ConfigError(f"norm must be batch or group, got {cfg.norm!r}")
    return model


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
    d = flat_config(cfg)
    for key in ("class_names", "category_ids", "image_size"):
        d[key] = list(d[key])
    return d


def load(path: str | Path, fuse: bool = False, read: tuple | None = None) -> DetectionTask:
    """A trained detector (eval mode) from a ``train detect`` checkpoint or ``best.safetensors``: it holds the model,
    the anchors of its input size, the normalisation and the class names; ``detect(images)`` runs the inference.
    ``fuse``: BatchNorm folded into the convolutions, for inference."""
    return load_task(path, DetectionTask, TASK, fuse, read)
