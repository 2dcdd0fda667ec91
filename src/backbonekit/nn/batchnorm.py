"""BatchNorm helpers for training on batches that should not shape the statistics used at inference."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Container, Iterable, Iterator

import torch
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


@torch.no_grad()
def reestimate_batch_norm(model: nn.Module, batches: Iterable, forward: Callable | None = None, *,
                          exclude: Container[nn.Module] = (), biased_var: bool = False) -> int:
    """"Precise BN": every BatchNorm's running statistics recomputed as the exact average over ``batches`` (each
    one ``forward(batch)``, default ``model(batch)``), with BN normalising by batch statistics and everything else as
    at inference (no dropout or drop path: they would give statistics that eval mode never sees). ``exclude``: BNs
    kept as they are. ``biased_var``: store the variance the forwards normalised with (BN keeps the unbiased one,
    8/7 of it for a 1×1 map in a batch of 8), so that eval mode reproduces them. Returns the number of batches; the
    model's training mode and momenta are restored."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats
             and m not in exclude]
    forward = forward or model
    was_training, momenta, count = model.training, [m.momentum for m in norms], 0
    values: dict = {}  # values per channel in one batch
    hooks = [m.register_forward_pre_hook(lambda m, x: values.__setitem__(m, x[0].numel() // x[0].shape[1]))
             for m in norms]
    model.eval()
    try:
        for batch in batches:
            if count == 0:
                for m in norms:
                    m.reset_running_stats()
                    m.momentum = None  # cumulative average over the batches
                    m.train()
            forward(batch)
            count += 1
    finally:
        for h in hooks:
            h.remove()
        for m, momentum in zip(norms, momenta):
            m.momentum = momentum
            if biased_var and count and values.get(m, 0) > 1:
                m.running_var.mul_((values[m] - 1) / values[m])
        model.train(was_training)
    return count
