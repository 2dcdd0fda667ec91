"""The SeqDeepFake LightningModule: teacher-forced cross-entropy (PAD ignored), greedy decoding for validation with
Fixed/Adaptive-Acc, AdamW with its own backbone learning rate, linear warm-up then ×0.1 steps (the official recipe).

Images enter as uint8 (or 0–1 floats) and are normalised inside with the model's statistics (0.5/0.5);
``forward(images)`` decodes the edit sequences, ``load(path)`` rebuilds a trained task."""
from __future__ import annotations

from dataclasses import dataclass, field, replace
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
from backbonekit.training.optim import Optimises
from backbonekit.training.settings import OptimSettings, flat_config, nest_optim
from backbonekit.training.task_io import load_task

TASK = "sequence"

OFFICIAL_EPOCHS, OFFICIAL_WARMUP, OFFICIAL_STEPS = 170, 20, (70, 120)
# The official recipe: AdamW 1e-3 (the backbone 1e-4), weight decay 1e-4, warm-up then ×0.1 steps.
DEFAULT_OPTIM = OptimSettings(backbone_lr_mult=0.1, scheduler="step", warmup_epochs=None, epochs=OFFICIAL_EPOCHS)


@dataclass
class SequenceConfig:
    task: str = TASK
    backbone: str = "resnet50"
    subset: str = "facial_components"
    pretrained_backbone: str | None = None
    image_size: int = 256
    # Warm-up and lr steps left None: the official 20 and 70, 120 of 170 epochs, scaled to ``epochs``.
    optim: OptimSettings = field(default_factory=lambda: replace(DEFAULT_OPTIM))
    extra: dict = field(default_factory=dict)  # further seqfakeformer(...) keywords (out_index, dilation, …)

    def schedule(self) -> tuple[float, list[float]]:
        o = self.optim
        ratio = o.epochs / OFFICIAL_EPOCHS
        warmup = OFFICIAL_WARMUP * ratio if o.warmup_epochs is None else o.warmup_epochs
        steps = [s * ratio for s in OFFICIAL_STEPS] if o.lr_steps is None else list(o.lr_steps)
        return warmup, steps


class SequenceTask(Optimises, HoldsFrozenParts, pl.LightningModule):
    decay_norms = True  # the official recipe decays every weight (norms and biases too)

    def __init__(self, **config):
        super().__init__()
        self.cfg = SequenceConfig(**nest_optim(config, DEFAULT_OPTIM))
        self.save_hyperparameters(flat_config(self.cfg))  # plain types: the checkpoint loads with weights_only
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
        if self.cfg.optim.freeze_backbone:
            hold_module(self.model.backbone)
        elif self.cfg.optim.freeze_bn:
            hold_batch_norm(self.model.backbone)

    def optimizer_parts(self):
        self.hold_frozen_parts()  # a frozen backbone's parameters lose their gradients before the groups are made
        backbone = list(self.model.backbone.parameters())
        ids = {id(p) for p in backbone}
        return [([p for p in self.model.parameters() if id(p) not in ids], 1.0),
                (backbone, self.cfg.optim.backbone_lr_mult)]

    def schedule_epochs(self) -> tuple[float, list[float]]:
        return self.cfg.schedule()


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
