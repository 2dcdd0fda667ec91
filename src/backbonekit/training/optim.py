"""Optimisers and learning-rate schedules shared by the tasks, as Lightning's ``configure_optimizers`` returns them."""
from __future__ import annotations

import math
from functools import partial
from typing import Iterable

import torch
import torch.nn as nn

FUSED_DEVICES = ("cpu", "cuda")  # where torch has fused SGD and AdamW kernels for every floating dtype

Parts = list[tuple[Iterable[nn.Parameter], float]]  # (parameters, lr multiplier)


class Optimises:
    """LightningModule mixin: the one ``configure_optimizers`` of every task, from the ``OptimSettings`` its
    configuration embeds (``self.cfg.optim``). A task says which parameters get which learning rate
    (``optimizer_parts``) and, if it has its own rule for unset ones, the warm-up and steps (``schedule_epochs``)."""

    decay_norms = False  # weight decay on norms and biases too (SeqDeepFake's official recipe does)

    def optimizer_parts(self) -> Parts:
        """The backbone at ``backbone_lr_mult`` × lr, the rest at lr."""
        backbone = list(self.model.backbone.parameters())
        ids = {id(p) for p in backbone}
        return [(backbone, self.cfg.optim.backbone_lr_mult), ([p for p in self.model.parameters() if id(p) not in ids],
                                                               1.0)]

    def schedule_epochs(self) -> tuple[float, list[float] | None]:
        """(warm-up epochs, the epochs of the ×0.1 steps) the schedule uses."""
        return self.cfg.optim.warmup_epochs or 0.0, self.cfg.optim.lr_steps

    def configure_optimizers(self):
        o = self.cfg.optim
        groups = param_groups(self.optimizer_parts(), o.lr, o.weight_decay, decay_norms=self.decay_norms)
        optimizer = build_optimizer(groups, o.optimizer, o.lr, o.momentum)
        warmup, lr_steps = self.schedule_epochs()
        return build_schedule(optimizer, o.scheduler, total_steps=self.trainer.estimated_stepping_batches,
                              epochs=o.epochs, warmup_epochs=warmup, step_size=o.step_size, lr_steps=lr_steps,
                              plateau_patience=o.plateau_patience)


def param_groups(parts: Parts, lr: float, weight_decay: float, decay_norms: bool = False) -> list[dict]:
    """Groups for ``(parameters, lr multiplier)`` parts, trainable parameters only; no weight decay on norms and
    biases (shrinking them only fights the normalisation) unless ``decay_norms``."""
    groups = []
    for params, lr_mult in parts:
        params = [p for p in params if p.requires_grad]
        if decay_norms:
            groups.append({"params": params, "weight_decay": weight_decay, "lr": lr * lr_mult})
            continue
        groups += [{"params": [p for p in params if p.ndim > 1], "weight_decay": weight_decay, "lr": lr * lr_mult},
                   {"params": [p for p in params if p.ndim <= 1], "weight_decay": 0.0, "lr": lr * lr_mult}]
    return [g for g in groups if g["params"]]


def build_optimizer(groups: list[dict], name: str, lr: float, momentum: float = 0.9) -> torch.optim.Optimizer:
    """SGD (Nesterov) or AdamW, with the fused kernel (one pass over each parameter for the whole update) wherever
    torch has one for the parameters' device. On CPU PyTorch otherwise runs a Python loop of ~6 ops per tensor: a
    ResNet-18 AdamW step took 35–85 ms that way and 12 ms fused (SGD 18 ms and 8 ms), 2 cores, i.e. 10–20 % of a
    digits training step. Same update rule, so checkpoints of either kind resume with the other."""
    # torch checks this only at the first step, so it is decided here.
    fused = all(p.is_floating_point() and p.device.type in FUSED_DEVICES for g in groups for p in g["params"])
    if name == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=momentum, nesterov=momentum > 0, fused=fused or None)
    return torch.optim.AdamW(groups, lr=lr, fused=fused or None)


def build_schedule(optimizer: torch.optim.Optimizer, name: str, *, total_steps: int, epochs: int,
                   warmup_epochs: float = 0.0, step_size: int = 30, lr_steps: list[float] | None = None,
                   plateau_patience: int = 3, plateau_monitor: str = "val/loss"):
    """``configure_optimizers``' return value, the same grammar for every task: after a linear warm-up of
    ``warmup_epochs``, cosine decay to 0 (per step), ×0.1 at each of ``lr_steps`` (epochs) or else every
    ``step_size`` epochs, ReduceLROnPlateau on ``plateau_monitor``, or none."""
    if name == "none":
        return optimizer
    if name == "plateau":
        scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="min", factor=0.1,
                                                               patience=plateau_patience)
        return {"optimizer": optimizer,
                "lr_scheduler": {"scheduler": scheduler, "monitor": plateau_monitor, "interval": "epoch"}}
    total = max(1, int(total_steps))
    per_epoch = total / max(epochs, 1)
    warmup = int(per_epoch * warmup_epochs)
    if name == "step":
        if lr_steps:
            multiplier = WarmupStep(warmup, [round(e * per_epoch) for e in lr_steps])
        else:
            multiplier = WarmupStep(warmup, [], every=max(1, round(step_size * per_epoch)))
    else:
        multiplier = WarmupCosine(warmup, total)
    # LambdaLR saves a callable object's attributes and restores them on resume, which would keep the old run's
    # length after --resume raised --epochs (a cosine stuck at 0 for the added epochs). A partial has none: the
    # schedule is always the one this run's settings build, and its position the restored step count.
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, partial(_multiply, multiplier))
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


def _multiply(multiplier, step: int) -> float:
    return multiplier(step)


class WarmupStep:
    """Linear warm-up over ``warmup`` steps, then ×0.1 at each milestone step or every ``every`` steps, as a
    multiplier of the base learning rate (picklable)."""

    def __init__(self, warmup: float, milestones: list[float], every: int | None = None):
        self.warmup, self.milestones, self.every = warmup, sorted(milestones), every

    def __call__(self, step: int) -> float:
        if step < self.warmup:
            return min(1.0, (step + 1) / self.warmup)
        passed = step // self.every if self.every else sum(step >= m for m in self.milestones)
        return 0.1 ** passed


class WarmupCosine:
    """Linear warm-up then cosine decay to 0, as a multiplier of the base learning rate (picklable)."""

    def __init__(self, warmup: int, total: int):
        self.warmup, self.total = warmup, total

    def __call__(self, step: int) -> float:
        if step < self.warmup:
            return (step + 1) / self.warmup
        progress = (step - self.warmup) / max(1, self.total - self.warmup)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
