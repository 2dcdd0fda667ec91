"""The classification LightningModule: a backbonekit model, cross-entropy (soft targets for CutMix/MixUp),
top-1/top-5/per-class accuracy and a confusion matrix, parameter groups for transfer learning."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import lightning.pytorch as pl
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchmetrics

from backbonekit.errors import ConfigError
from backbonekit.models.registry import create_model

OPTIMIZERS = ("sgd", "adamw")
SCHEDULERS = ("cosine", "plateau", "step", "none")


@dataclass
class ClassifyConfig:
    model: str = "resnet18"
    num_classes: int = 10
    class_names: list[str] = field(default_factory=list)
    pretrained: str | None = None
    image_size: int = 224
    mean: tuple[float, ...] = (0.485, 0.456, 0.406)
    std: tuple[float, ...] = (0.229, 0.224, 0.225)
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
        if self.cfg.optimizer not in OPTIMIZERS:
            raise ConfigError(f"--optimizer must be one of {', '.join(OPTIMIZERS)}, got {self.cfg.optimizer!r}")
        if self.cfg.scheduler not in SCHEDULERS:
            raise ConfigError(f"--scheduler must be one of {', '.join(SCHEDULERS)}, got {self.cfg.scheduler!r}")
        self.save_hyperparameters(_plain_config(self.cfg))  # plain types: the checkpoint loads with weights_only
        overrides = {k: v for k, v in (("drop_rate", self.cfg.drop_rate), ("drop_path_rate", self.cfg.drop_path_rate))
                     if v is not None}
        self.model = create_model(self.cfg.model, num_classes=self.cfg.num_classes, pretrained=self.cfg.pretrained,
                                  **overrides)
        if self.cfg.freeze_backbone:
            for p in self.backbone_parameters():
                p.requires_grad_(False)
        n = self.cfg.num_classes
        self.val_top1 = torchmetrics.Accuracy("multiclass", num_classes=n)
        self.val_top5 = torchmetrics.Accuracy("multiclass", num_classes=n, top_k=min(5, n))
        self.val_per_class = torchmetrics.Accuracy("multiclass", num_classes=n, average=None)
        self.val_confusion = torchmetrics.ConfusionMatrix("multiclass", num_classes=n)

    # ------------------------------------------------------------------------------------------ model parts
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

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
        x, y = batch
        loss = F.cross_entropy(self(x), y, label_smoothing=self.cfg.label_smoothing)  # y may be soft (N×C)
        self.log("train/loss", loss, on_step=False, on_epoch=True, prog_bar=True, sync_dist=True,
                 batch_size=x.shape[0])
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        loss = F.cross_entropy(logits, y)
        self.log("val/loss", loss, on_epoch=True, prog_bar=True, sync_dist=True, batch_size=x.shape[0])
        for metric in (self.val_top1, self.val_top5, self.val_per_class, self.val_confusion):
            metric.update(logits, y)

    def on_validation_epoch_end(self) -> None:
        self.log("val/top1", self.val_top1.compute(), prog_bar=True)
        self.log("val/top5", self.val_top5.compute())
        self.last_per_class = self.val_per_class.compute().cpu()
        self.last_confusion = self.val_confusion.compute().cpu()
        for metric in (self.val_top1, self.val_top5, self.val_per_class, self.val_confusion):
            metric.reset()

    # ------------------------------------------------------------------------------------------- optimiser
    def configure_optimizers(self):
        cfg = self.cfg
        groups = []
        for params, lr_mult in ((self.backbone_parameters(), cfg.backbone_lr_mult), (self.head_parameters(), 1.0)):
            params = [p for p in params if p.requires_grad]
            # No weight decay on norms and biases: shrinking them only fights the normalisation.
            decay = [p for p in params if p.ndim > 1]
            no_decay = [p for p in params if p.ndim <= 1]
            groups += [{"params": decay, "weight_decay": cfg.weight_decay, "lr": cfg.lr * lr_mult},
                       {"params": no_decay, "weight_decay": 0.0, "lr": cfg.lr * lr_mult}]
        groups = [g for g in groups if g["params"]]
        if cfg.optimizer == "sgd":
            optimizer = torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.momentum > 0)
        else:
            optimizer = torch.optim.AdamW(groups, lr=cfg.lr)
        if cfg.scheduler == "none":
            return optimizer
        if cfg.scheduler == "plateau":
            scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="min", factor=0.1, patience=3)
            return {"optimizer": optimizer,
                    "lr_scheduler": {"scheduler": scheduler, "monitor": "val/loss", "interval": "epoch"}}
        if cfg.scheduler == "step":
            scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=cfg.step_size, gamma=0.1)
            return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"}}
        total = max(1, int(self.trainer.estimated_stepping_batches))
        warmup = int(total * cfg.warmup_epochs / max(cfg.epochs, 1))
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _WarmupCosine(warmup, total))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


class _WarmupCosine:
    """Linear warm-up then cosine decay to 0, as a multiplier of the base learning rate (picklable)."""

    def __init__(self, warmup: int, total: int):
        self.warmup, self.total = warmup, total

    def __call__(self, step: int) -> float:
        if step < self.warmup:
            return (step + 1) / self.warmup
        progress = (step - self.warmup) / max(1, self.total - self.warmup)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def _plain_config(cfg: ClassifyConfig) -> dict:
    d = asdict(cfg)
    d["mean"], d["std"], d["class_names"] = list(cfg.mean), list(cfg.std), list(cfg.class_names)
    return d
