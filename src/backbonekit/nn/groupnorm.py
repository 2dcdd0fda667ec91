"""GroupNorm in place of BatchNorm, for networks trained from scratch on small batches.

A GroupNorm normalises each image by its own statistics over groups of channels, so training and inference compute
the same function whatever the batch size: no running averages that can differ from what the network produces at
inference (Wu & He 2018; He, Girshick, Dollár 2019 train detectors from scratch this way).
"""
from __future__ import annotations

import math

import torch.nn as nn

MAX_GROUPS = 32  # Wu & He's default


def group_count(channels: int, max_groups: int = MAX_GROUPS) -> int:
    """The most groups ≤ ``max_groups`` that divide ``channels`` evenly (32 for 64 channels, 8 for 24, 16 for 144)."""
    return math.gcd(channels, max_groups)


def batch_norm_to_group_norm(module: nn.Module, max_groups: int = MAX_GROUPS) -> nn.Module:
    """Every ``BatchNorm2d`` of ``module`` (in place; ``module`` itself if it is one) replaced by a ``GroupNorm`` of the
    same channels, epsilon and affine parameters; returns ``module``."""
    if isinstance(module, nn.BatchNorm2d):
        return _group_norm_like(module, max_groups)
    for name, child in module.named_children():
        if isinstance(child, nn.BatchNorm2d):
            setattr(module, name, _group_norm_like(child, max_groups))
        else:
            batch_norm_to_group_norm(child, max_groups)
    return module


def _group_norm_like(bn: nn.BatchNorm2d, max_groups: int) -> nn.GroupNorm:
    gn = nn.GroupNorm(group_count(bn.num_features, max_groups), bn.num_features, eps=bn.eps, affine=bn.affine)
    if bn.affine:
        gn.weight.data.copy_(bn.weight.data)
        gn.bias.data.copy_(bn.bias.data)
    return gn.to(bn.weight.device if bn.affine else None)
