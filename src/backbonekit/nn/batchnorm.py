"""BatchNorm helpers for training on batches that should not shape the statistics used at inference."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch.nn as nn


@contextmanager
def running_stats_frozen(module: nn.Module) -> Iterator[None]:
    """Inside, every BatchNorm of ``module`` in training mode still normalises with its batch's statistics but leaves
    its running averages (the inference statistics) unchanged: momentum 0."""
    norms = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    momenta = [m.momentum for m in norms]
    counts = [m.num_batches_tracked.clone() for m in norms]
    for m in norms:
        m.momentum = 0.0
    try:
        yield
    finally:
        for m, momentum, count in zip(norms, momenta, counts):
            m.momentum = momentum
            m.num_batches_tracked.copy_(count)


def hold_batch_norm(module: nn.Module) -> None:
    """Every BatchNorm of ``module`` kept as loaded while the rest trains: eval mode (its running statistics
    normalise and are not updated) and affine weights without gradients. Call again after each ``train()``."""
    for m in module.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.eval()
            for p in m.parameters():
                p.requires_grad_(False)


def hold_module(module: nn.Module) -> None:
    """``module`` frozen whole: eval mode and no gradients (feature extraction)."""
    module.eval()
    for p in module.parameters():
        p.requires_grad_(False)
