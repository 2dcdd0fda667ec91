"""``--ema DECAY``: an exponential moving average of the weights whose decay warms up with the number of updates.

A fixed decay of 0.999 averages over ~1,000 steps; a 10-epoch run on the digits takes 230, so the average was still
80 % the random initial weights when it was validated (9.7 %, chance). As TensorFlow's ExponentialMovingAverage
with ``num_updates`` and timm's ModelEmaV3 warm-up, update n uses ``min(decay, (1 + n) / (10 + n))``: a short
memory early, ``decay`` once n is large (n = 9,000 for 0.999). n is the AveragedModel's own ``n_averaged`` buffer,
saved in ``last.ckpt`` with the average, so ``--resume`` continues the same schedule.
"""
from __future__ import annotations

import torch
from lightning.pytorch.callbacks import WeightAveraging


def warmup_decay(decay: float, updates: int) -> float:
    """The decay of update number ``updates`` (0-based, the average's first update being a copy)."""
    return min(decay, (1 + updates) / (10 + updates))


def warmup_ema_update(decay: float):
    """``multi_avg_fn`` for ``AveragedModel``: lists of averaged and current tensors of one device and dtype."""

    @torch.no_grad()
    def update(averaged: list[torch.Tensor], current: list[torch.Tensor], num_averaged: torch.Tensor) -> None:
        if not averaged[0].is_floating_point():  # BatchNorm's step counters: an average of counts means nothing
            torch._foreach_copy_(averaged, current)
            return
        torch._foreach_lerp_(averaged, current, 1 - warmup_decay(decay, int(num_averaged)))

    return update


class WarmupEMA(WeightAveraging):
    """Lightning's weight averaging (the average is validated, checkpointed as the weights, and rides along with the
    live weights in ``last.ckpt``), updated after every optimiser step with the warmed-up decay."""

    def __init__(self, decay: float):
        super().__init__(use_buffers=True, multi_avg_fn=warmup_ema_update(decay))
        self.decay = decay
