"""Fold BatchNorm into the preceding convolution for inference (as Ultralytics' ``model.fuse()``).

In eval mode BatchNorm is a per-channel affine map, so it can be absorbed into the conv's weight and bias: one
pass over memory fewer per layer, the same outputs up to float rounding. Training afterwards would be wrong, so the
fused model is put in eval mode and marked. Modules whose BatchNorms follow a conv in another way (EfficientDet's
separable convs, heads that share convs across levels) fold their own through a ``fuse_batchnorm()`` method.

Like ``torch.ao.quantization.fuse_modules``, it returns a fused copy and leaves the model given as it was;
``inplace=True`` folds the model itself (no second copy of the weights in memory, for a caller that owns it).
"""
from __future__ import annotations

import copy

import torch.nn as nn
from torch.nn.utils.fusion import fuse_conv_bn_eval


def fuse_batchnorm(model: nn.Module, inplace: bool = False) -> nn.Module:
    """A copy of ``model`` (``inplace``: ``model`` itself) with every conv → BatchNorm2d pair folded, in eval mode."""
    if not inplace:
        model = copy.deepcopy(model)
    model.eval()
    for module in list(model.modules()):
        own_rule = getattr(module, "fuse_batchnorm", None)
        if callable(own_rule):
            own_rule()
        if isinstance(module, nn.Sequential):
            _fuse_sequential(module)
        _fuse_named_pairs(module)
    model.is_fused = True
    return model


def _fuse_sequential(seq: nn.Sequential) -> None:
    # e.g. a ResNet ``downsample = Sequential(conv, bn)``.
    names = list(seq._modules)
    for a, b in zip(names, names[1:]):
        conv, bn = seq._modules[a], seq._modules[b]
        if isinstance(conv, nn.Conv2d) and type(bn) is nn.BatchNorm2d:
            seq._modules[a] = fuse_conv_bn_eval(conv, bn)
            seq._modules[b] = nn.Identity()


def _fuse_named_pairs(module: nn.Module) -> None:
    # ``conv``/``bn`` (ConvNormAct) and ``convN``/``bnN`` (ResNet blocks and stem).
    for name, child in list(module.named_children()):
        if not (name.startswith("bn") and type(child) is nn.BatchNorm2d):
            continue
        conv = getattr(module, "conv" + name[2:], None)
        if isinstance(conv, nn.Conv2d) and conv.out_channels == child.num_features:
            setattr(module, "conv" + name[2:], fuse_conv_bn_eval(conv, child))
            setattr(module, name, nn.Identity())
