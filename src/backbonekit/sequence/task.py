"""The SeqDeepFake LightningModule: teacher-forced cross-entropy (PAD ignored), greedy decoding for validation with
Fixed/Adaptive-Acc, AdamW with its own backbone learning rate, linear warm-up then ×0.1 steps (the official recipe)."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import ModelCheckpoint

from backbonekit.errors import WeightsError
from backbonekit.models.registry import create_model
import backbonekit.sequence.seqfakeformer  # noqa: F401  (registers "seqfakeformer")
from backbonekit.sequence.captions import decoder_io
from backbonekit.sequence.metrics import SequenceAccuracy
from backbonekit.sequence.vocab import PAD
from backbonekit.training.checkpoint_io import load_checkpoint_file

OFFICIAL_EPOCHS, OFFICIAL_WARMUP, OFFICIAL_STEPS = 170, 20, (70, 120)


@dataclass
class SequenceConfig:
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
    extra: dict = field(default_factory=dict)  # further seqfakeformer(...) keywords (out_index, dilation, …)

    def schedule(self) -> tuple[float, list[float]]:
        ratio = self.epochs / OFFICIAL_EPOCHS
        warmup = OFFICIAL_WARMUP * ratio if self.warmup_epochs is None else self.warmup_epochs
        steps = [s * ratio for s in OFFICIAL_STEPS] if self.lr_steps is None else list(self.lr_steps)
        return warmup, steps


class SequenceTask(pl.LightningModule):
    def __init__(self, **config):
        super().__init__()
        self.cfg = SequenceConfig(**config)
        self.save_hyperparameters(asdict(self.cfg))  # plain types: the checkpoint loads with weights_only
        self.model = create_model("seqfakeformer", backbone=self.cfg.backbone,
                                  pretrained_backbone=self.cfg.pretrained_backbone, **self.cfg.extra)
        self.val_metric = SequenceAccuracy()

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model.generate(images)

    def _loss(self, images, labels):
        inputs, targets = decoder_io(labels)
        logits = self.model(images, inputs)
        return F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=PAD)

    def training_step(self, batch, batch_idx):
        images, labels = batch
        loss = self._loss(images, labels)
        self.log("train/loss", loss, on_step=False, on_epoch=True, prog_bar=True, sync_dist=True,
                 batch_size=images.shape[0])
        return loss

    def validation_step(self, batch, batch_idx):
        images, labels = batch
        self.log("val/loss", self._loss(images, labels), on_epoch=True, sync_dist=True, batch_size=images.shape[0])
        self.val_metric.update(self.model.generate(images), labels)

    def on_validation_epoch_end(self) -> None:
        result = self.val_metric.compute()
        self.log("val/fixed_acc", result["fixed_acc"], prog_bar=True)
        self.log("val/adaptive_acc", result["adaptive_acc"], prog_bar=True)
        self.log("val/exact_match", result["exact_match"])
        self.last_result = result
        self.val_metric.reset()

    def configure_optimizers(self):
        cfg = self.cfg
        backbone = [p for p in self.model.backbone.parameters() if p.requires_grad]
        ids = {id(p) for p in self.model.backbone.parameters()}
        rest = [p for p in self.model.parameters() if id(p) not in ids and p.requires_grad]
        groups = [{"params": rest, "lr": cfg.lr}, {"params": backbone, "lr": cfg.backbone_lr}]
        optimizer = torch.optim.AdamW([g for g in groups if g["params"]], lr=cfg.lr, weight_decay=cfg.weight_decay)
        steps_per_epoch = max(1, int(self.trainer.estimated_stepping_batches) // max(1, cfg.epochs))
        warmup, milestones = cfg.schedule()
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, WarmupStep(warmup * steps_per_epoch,
                                                                            [m * steps_per_epoch for m in milestones]))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


class WarmupStep:
    """Learning-rate multiplier: linear warm-up over ``warmup`` steps, then ×0.1 at each milestone (picklable)."""

    def __init__(self, warmup: float, milestones: list[float]):
        self.warmup, self.milestones = warmup, sorted(milestones)

    def __call__(self, step: int) -> float:
        if step < self.warmup:
            return min(1.0, (step + 1) / self.warmup)
        return 0.1 ** sum(step >= m for m in self.milestones)


class BestAdaptive(ModelCheckpoint):
    """The official protocol keeps the best checkpoint per metric: the engine keeps ``best.ckpt`` (Fixed-Acc); this
    keeps ``best_adaptive.ckpt`` beside it in the run folder."""

    def __init__(self):
        super().__init__(filename="best_adaptive", monitor="val/adaptive_acc", mode="max", save_top_k=1,
                         enable_version_counter=False, auto_insert_metric_name=False)

    def setup(self, trainer, pl_module, stage) -> None:
        self.dirpath = trainer.default_root_dir  # the run folder (the engine gives the trainer no logger)
        super().setup(trainer, pl_module, stage)


def load_sequence_model(path: str | Path) -> tuple[torch.nn.Module, dict]:
    """A trained SeqFakeFormer (eval mode) and its task configuration, from a ``train sequence`` checkpoint."""
    ckpt = load_checkpoint_file(path)
    hp = ckpt.get("hyper_parameters")
    if not isinstance(hp, dict) or "backbone" not in hp or "state_dict" not in ckpt:
        raise WeightsError(f"{path}: not a `train sequence` checkpoint (no hyper_parameters/state_dict)")
    model = create_model("seqfakeformer", backbone=hp["backbone"], **hp.get("extra", {}))
    state = {k.removeprefix("model."): v for k, v in ckpt["state_dict"].items() if k.startswith("model.")}
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        raise WeightsError(f"{path}: weights do not fit seqfakeformer({hp['backbone']}): {e}") from None
    return model.eval(), hp
