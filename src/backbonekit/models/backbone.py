"""Backbone mode: any registered classifier as a multi-scale feature extractor for detectors and transformers.

Like DETR's ``Backbone`` + ``NestedTensor``: optional frozen BatchNorm, frozen early stages, a dilated last stage
(output stride 16), and a masked forward for padded batches where the padding mask follows each feature map.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from torchvision.ops import FrozenBatchNorm2d

from backbonekit.errors import ConfigError
from backbonekit.models.base import ImageClassifier
from backbonekit.models.registry import create_model


class Backbone(nn.Module):
    """Feature maps of the chosen levels; ``channels[i]`` and ``strides[i]`` describe output ``i``."""

    def __init__(self, model: ImageClassifier, out_indices: Sequence[int]):
        super().__init__()
        levels = len(model.feature_info)
        out_indices = tuple(sorted(set(int(i) for i in out_indices)))
        if not out_indices or out_indices[0] < 0 or out_indices[-1] >= levels:
            raise ConfigError(f"out_indices {out_indices} out of range: {model.model_name} has levels 0..{levels - 1}")
        model.reset_classifier(0)
        # Heads beyond the classifier (AlexNet/VGG's pooled MLP) are unused here: parameters that would only cost
        # memory and trip DDP's unused-parameter check.
        for name in getattr(model, "head_modules", ()):
            setattr(model, name, nn.Identity())
        _drop_levels_after(model, out_indices[-1])
        self.body = model
        self.out_indices = out_indices
        self.feature_info = [dict(model.feature_info[i]) for i in out_indices]
        self.channels = [info["num_chs"] for info in self.feature_info]
        self.strides = [info["reduction"] for info in self.feature_info]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        levels = self.body.forward_levels(x, last=self.out_indices[-1])
        return [levels[i] for i in self.out_indices]

    def forward_masked(self, x: torch.Tensor, mask: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """``mask`` (B, H, W) is True on padding; each output comes with the mask resized to its grid."""
        features = self(x)
        return [(f, F.interpolate(mask[None].float(), size=f.shape[-2:])[0].to(torch.bool)) for f in features]


def create_backbone(name: str, out_indices: Sequence[int] | None = None, *, pretrained=None, frozen_bn: bool = False,
                    dilation: bool = False, trainable_stages: int | None = None, **model_kwargs) -> Backbone:
    """Build ``name`` as a feature extractor.

    out_indices: levels to return (``feature_info`` of the model); default: the last level of each stride from 4 on.
    frozen_bn: BatchNorm becomes FrozenBatchNorm2d (statistics and affine fixed), as detectors train with small batches.
    dilation: the last stage is dilated instead of strided (output stride 16), as DETR and SeqDeepFake use.
    trainable_stages: how many levels, counted from the deepest, keep gradients (None: all).
    """
    if dilation:
        model_kwargs.setdefault("output_stride", 16)
    model = create_model(name, num_classes=0, pretrained=pretrained, **model_kwargs)
    if frozen_bn:
        model = freeze_batch_norm(model)
    if trainable_stages is not None:
        freeze_levels(model, trainable_stages)
    if out_indices is None:
        out_indices = default_out_indices(model)
    return Backbone(model, out_indices)


def default_out_indices(model: ImageClassifier) -> tuple[int, ...]:
    """The deepest level of every reduction from 4 on, excluding a final head conv (EfficientNet's 1×1 to 1280)."""
    info = [i for i in model.feature_info if i["module"] != "head"]
    last_of = {entry["reduction"]: idx for idx, entry in enumerate(info)}
    return tuple(sorted(idx for red, idx in last_of.items() if red >= 4))


def freeze_levels(model: ImageClassifier, trainable: int) -> None:
    levels = model.level_modules()
    if not 0 <= trainable <= len(levels):
        raise ConfigError(f"trainable_stages must be between 0 and {len(levels)} for {model.model_name}")
    for names in levels[: len(levels) - trainable]:
        for name in names:
            model.get_submodule(name).requires_grad_(False)


def freeze_batch_norm(module: nn.Module) -> nn.Module:
    """Replace every BatchNorm2d with a FrozenBatchNorm2d holding the same statistics (returns the new module)."""
    if isinstance(module, nn.BatchNorm2d):
        frozen = FrozenBatchNorm2d(module.num_features, eps=module.eps)
        if module.affine:
            frozen.weight.copy_(module.weight.detach())
            frozen.bias.copy_(module.bias.detach())
        if module.track_running_stats:
            frozen.running_mean.copy_(module.running_mean)
            frozen.running_var.copy_(module.running_var)
        return frozen
    for name, child in module.named_children():
        new = freeze_batch_norm(child)
        if new is not child:
            setattr(module, name, new)
    return module


def _drop_levels_after(model: ImageClassifier, last: int) -> None:
    # Unused deeper stages would only cost parameters (and make counts differ from feature-only peers).
    for names in model.level_modules()[last + 1:]:
        for name in names:
            parent, _, child = name.rpartition(".")
            setattr(model.get_submodule(parent) if parent else model, child, nn.Identity())
