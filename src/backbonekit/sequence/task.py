"""The SeqDeepFake LightningModule: teacher-forced cross-entropy (PAD ignored), greedy decoding for validation with
Fixed/Adaptive-Acc, AdamW with its own backbone learning rate, linear warm-up then ×0.1 steps (the official recipe).

Images enter as uint8 (or 0–1 floats) and are normalised inside with the model's statistics (0.5/0.5);
``forward(images)`` decodes the edit sequences, ``load(path)`` rebuilds a trained task."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import ModelCheckpoint

from backbonekit.models.captions import MAX_EDITS, PAD, decoder_io
from backbonekit.models.registry import create_model
from backbonekit.nn.normalize import ImageNormalize
from backbonekit.sequence.metrics import SequenceAccuracy
from backbonekit.nn.batchnorm import hold_batch_norm, hold_module
from backbonekit.training.frozen_parts import HoldsFrozenParts
from backbonekit.training.optim import build_optimizer, build_schedule
from backbonekit.training.task_io import load_task

TASK = "sequence"

OFFICIAL_EPOCHS, OFFICIAL_WARMUP, OFFICIAL_STEPS = 170, 20, (70, 120)


@dataclass
class SequenceConfig:
    task: str = TASK
    backbone: str = "resnet50"
    subset: str = "facial_components"
    pretrained_backbone: str | None = None
    image_size: int = 256
    lr: float = 1e-3
    backbone_lr: float = 1e-4
    weight_decay: float = 1e-4
    epochs: int = OFFICIAL_EPOCHS
    warmup_epochs: float | None = None        # None: the official 20 of 170, scaled to ``epochs``
    lr_steps: list[float] | None = None       # None: the official 70 and 120 of 170, scaled to ``epochs``
    optimizer: str = "adamw"
    scheduler: str = "step"                   # the official warm-up and steps; any of training.optim's
    step_size: int = 30
    freeze_backbone: bool = False
    freeze_bn: bool = False
    extra: dict = field(default_factory=dict)  # further seqfakeformer(...) keywords (out_index, dilation, …)

    def schedule(self) -> tuple[float, list[float]]:
        ratio = self.epochs / OFFICIAL_EPOCHS
        warmup = OFFICIAL_WARMUP * ratio if self.warmup_epochs is None else self.warmup_epochs
        steps = [s * ratio for s in OFFICIAL_STEPS] if self.lr_steps is None else list(self.lr_steps)
        return warmup, steps


class SequenceTask(HoldsFrozenParts, pl.LightningModule):
    def __init__(self, **config):
        super().__init__()
        self.cfg = SequenceConfig(**config)
        self.save_hyperparameters(asdict(self.cfg))  # plain types: the checkpoint loads with weights_only
        self.model = create_model("seqfakeformer", backbone=self.cfg.backbone,
                                  pretrained_backbone=self.cfg.pretrained_backbone, **self.cfg.extra)
        self.normalize = ImageNormalize.from_cfg(self.model.pretrained_cfg)
        self.val_metric = SequenceAccuracy()

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 5) predicted edit sequences (greedy decoding) for uint8 or 0–1 float images."""
        return self.model.generate(self.normalize(images))

    def _loss(self, images, labels):
        inputs, targets = decoder_io(labels)
        logits = self.model(self.normalize(images), inputs)
        return F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=PAD)

    def example_batch(self, batch_size: int, device="cpu") -> tuple[torch.Tensor, torch.Tensor]:
        """Images and full-length edit sequences, shaped like the training data's (for ``--batch-size auto``)."""
        size = self.cfg.image_size
        images = torch.randint(0, 256, (batch_size, 3, size, size), dtype=torch.uint8, device=device)
        return images, torch.randint(1, 6, (batch_size, MAX_EDITS), device=device)

    def training_loss(self, batch) -> torch.Tensor:
        return self._loss(*batch)

    def training_step(self, batch, batch_idx):
        images, labels = batch
        loss = self._loss(images, labels)
        self.log("train/loss", loss, on_step=False, on_epoch=True, prog_bar=True, sync_dist=True,
                 batch_size=images.shape[0])
        return loss

    def validation_step(self, batch, batch_idx):
        images, labels = batch
        self.log("val/loss", self._loss(images, labels), on_epoch=True, sync_dist=True, batch_size=images.shape[0])
        self.val_metric.update(self(images), labels)

    def on_validation_epoch_end(self) -> None:
        result = self.val_metric.compute()
        self.log("val/fixed_acc", 100 * result["fixed_acc"], prog_bar=True)  # percent, as every score
        self.log("val/adaptive_acc", 100 * result["adaptive_acc"], prog_bar=True)
        self.log("val/exact_match", 100 * result["exact_match"])
        self.last_result = result
        self.val_metric.reset()

    def hold_frozen_parts(self) -> None:
        if self.cfg.freeze_backbone:
            hold_module(self.model.backbone)
        elif self.cfg.freeze_bn:
            hold_batch_norm(self.model.backbone)

    def configure_optimizers(self):
        cfg = self.cfg
        self.hold_frozen_parts()
        backbone = [p for p in self.model.backbone.parameters() if p.requires_grad]
        ids = {id(p) for p in self.model.backbone.parameters()}
        rest = [p for p in self.model.parameters() if id(p) not in ids and p.requires_grad]
        # The official recipe decays every weight (norms and biases too).
        groups = [{"params": rest, "lr": cfg.lr, "weight_decay": cfg.weight_decay},
                  {"params": backbone, "lr": cfg.backbone_lr, "weight_decay": cfg.weight_decay}]
        optimizer = build_optimizer([g for g in groups if g["params"]], cfg.optimizer, cfg.lr)
        warmup, milestones = cfg.schedule()
        return build_schedule(optimizer, cfg.scheduler, total_steps=self.trainer.estimated_stepping_batches,
                              epochs=cfg.epochs, warmup_epochs=warmup, step_size=cfg.step_size, lr_steps=milestones)


class BestAdaptive(ModelCheckpoint):
    """The official protocol keeps the best checkpoint per metric: the engine keeps ``best.ckpt`` (Fixed-Acc); this
    keeps ``best_adaptive.ckpt`` beside it in the run folder."""

    def __init__(self):
        super().__init__(filename="best_adaptive", monitor="val/adaptive_acc", mode="max", save_top_k=1,
                         enable_version_counter=False, auto_insert_metric_name=False)

    def setup(self, trainer, pl_module, stage) -> None:
        self.dirpath = trainer.default_root_dir  # the run folder (the engine gives the trainer no logger)
        super().setup(trainer, pl_module, stage)


def load(path: str | Path, fuse: bool = False, read: tuple | None = None) -> SequenceTask:
    """A trained SeqFakeFormer task (eval mode) from a ``train sequence`` checkpoint or ``best.safetensors``.
    ``fuse``: BatchNorm folded into the convolutions, for inference."""
    return load_task(path, SequenceTask, TASK, fuse, read)
