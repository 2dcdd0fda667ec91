"""The classification LightningModule: a backbonekit model, cross-entropy (soft targets for CutMix/MixUp),
top-1/top-5/per-class accuracy and a confusion matrix, parameter groups for transfer learning.

Images enter as uint8 (or 0–1 floats, after mixing) and are normalised inside with the model's own statistics;
``load(path)`` rebuilds a trained task from ``best.ckpt``/``last.ckpt``/``best.safetensors``.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import lightning.pytorch as pl
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchmetrics

from backbonekit.models.registry import create_model
from backbonekit.nn.normalize import ImageNormalize
from backbonekit.training.optim import build_optimizer, build_schedule, check_choices, param_groups
from backbonekit.training.task_io import load_task

TASK = "classify"
AUX_LOSS_WEIGHT = 0.3  # GoogLeNet's auxiliary classifiers, as in the paper


@dataclass
class ClassifyConfig:
    task: str = TASK
    model: str = "resnet18"
    num_classes: int = 10
    class_names: list[str] = field(default_factory=list)
    pretrained: str | None = None
    image_size: int = 224
    optimizer: str = "sgd"
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    scheduler: str = "cosine"
    warmup_epochs: float = 0.0
    step_size: int = 30
    epochs: int = 10
    freeze_backbone: bool = False
    backbone_lr_mult: float = 1.0
    label_smoothing: float = 0.0
    drop_rate: float | None = None
    drop_path_rate: float | None = None


class ClassificationTask(pl.LightningModule):
    def __init__(self, **config):
        super().__init__()
        self.cfg = ClassifyConfig(**config)
        check_choices(self.cfg.optimizer, self.cfg.scheduler)
        self.save_hyperparameters(_plain_config(self.cfg))  # plain types: the checkpoint loads with weights_only
        overrides = {k: v for k, v in (("drop_rate", self.cfg.drop_rate), ("drop_path_rate", self.cfg.drop_path_rate))
                     if v is not None}
        self.model = create_model(self.cfg.model, num_classes=self.cfg.num_classes, pretrained=self.cfg.pretrained,
                                  **overrides)
        self.normalize = ImageNormalize.from_cfg(self.model.pretrained_cfg)
        if self.cfg.freeze_backbone:
            for p in self.backbone_parameters():
                p.requires_grad_(False)
        n = self.cfg.num_classes
        self.val_top1 = torchmetrics.Accuracy("multiclass", num_classes=n)
        self.val_top5 = torchmetrics.Accuracy("multiclass", num_classes=n, top_k=min(5, n))
        self.val_per_class = torchmetrics.Accuracy("multiclass", num_classes=n, average=None)
        self.val_confusion = torchmetrics.ConfusionMatrix("multiclass", num_classes=n)

    # ------------------------------------------------------------------------------------------ model parts
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Logits for uint8 (or 0–1 float) images; in training, what the model returns (GoogLeNet: with aux logits)."""
        return self.model(self.normalize(images))

    def example_batch(self, batch_size: int, device="cpu") -> tuple[torch.Tensor, torch.Tensor]:
        """A batch shaped like the training data's (for ``--batch-size auto``)."""
        size = self.cfg.image_size
        return (torch.randint(0, 256, (batch_size, 3, size, size), dtype=torch.uint8, device=device),
                torch.randint(0, self.cfg.num_classes, (batch_size,), device=device))

    def training_loss(self, batch) -> torch.Tensor:
        x, y = batch
        out = self(x)
        aux = ()
        if isinstance(out, tuple):  # auxiliary classifiers (GoogLeNet in training): extra gradient, weight 0.3
            out, *aux = out
        loss = F.cross_entropy(out, y, label_smoothing=self.cfg.label_smoothing)  # y may be soft (N×C)
        for logits in aux:
            if logits is not None:
                loss = loss + AUX_LOSS_WEIGHT * F.cross_entropy(logits, y, label_smoothing=self.cfg.label_smoothing)
        return loss

    def head_parameters(self) -> list[nn.Parameter]:
        return list(self.model.get_classifier().parameters())

    def backbone_parameters(self) -> list[nn.Parameter]:
        head = {id(p) for p in self.head_parameters()}
        return [p for p in self.model.parameters() if id(p) not in head]

    def train(self, mode: bool = True):
        super().train(mode)
        if mode:
            self._keep_frozen_backbone_in_eval()
        return self

    def on_train_epoch_start(self) -> None:
        # Lightning sets and restores sub-module modes itself (not through train()), so enforce it here too.
        self._keep_frozen_backbone_in_eval()

    def _keep_frozen_backbone_in_eval(self) -> None:
        if self.cfg.freeze_backbone:
            # Feature extraction: the backbone's BatchNorm statistics stay those of the pretrained weights.
            self.model.eval()
            self.model.get_classifier().train()

    # ------------------------------------------------------------------------------------------------ steps
    def training_step(self, batch, batch_idx):
        loss = self.training_loss(batch)
        self.log("train/loss", loss, on_step=False, on_epoch=True, prog_bar=True, sync_dist=True,
                 batch_size=batch[0].shape[0])
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        loss = F.cross_entropy(logits, y)
        self.log("val/loss", loss, on_epoch=True, prog_bar=True, sync_dist=True, batch_size=x.shape[0])
        for metric in (self.val_top1, self.val_top5, self.val_per_class, self.val_confusion):
            metric.update(logits, y)
        # Logging the metric objects lets Lightning compute them once per epoch (synchronised across DDP processes
        # by torchmetrics) and reset them.
        self.log("val/top1", self.val_top1, on_epoch=True, prog_bar=True)
        self.log("val/top5", self.val_top5, on_epoch=True)

    def on_validation_epoch_end(self) -> None:
        # Kept for the confusion-matrix plot and eval; computed on every process (a collective under DDP).
        self.last_per_class = self.val_per_class.compute().cpu()
        self.last_confusion = self.val_confusion.compute().cpu()
        self.val_per_class.reset()
        self.val_confusion.reset()

    # ------------------------------------------------------------------------------------------- optimiser
    def configure_optimizers(self):
        cfg = self.cfg
        groups = param_groups([(self.backbone_parameters(), cfg.backbone_lr_mult), (self.head_parameters(), 1.0)],
                              cfg.lr, cfg.weight_decay)
        optimizer = build_optimizer(groups, cfg.optimizer, cfg.lr, cfg.momentum)
        return build_schedule(optimizer, cfg.scheduler, total_steps=self.trainer.estimated_stepping_batches,
                              epochs=cfg.epochs, warmup_epochs=cfg.warmup_epochs, step_size=cfg.step_size)


def _plain_config(cfg: ClassifyConfig) -> dict:
    d = asdict(cfg)
    d["class_names"] = list(cfg.class_names)
    return d


def load(path: str | Path) -> ClassificationTask:
    """A trained classifier (eval mode) from a ``train classify`` checkpoint or ``best.safetensors``."""
    return load_task(path, ClassificationTask, TASK)
