"""The one input contract of every task: images enter as uint8 (0–255) or float in 0–1, and are normalised here
with the statistics of the model's own configuration (``pretrained_cfg`` mean/std).

So a checkpoint, ``predict``, ``export`` and a teacher of another family all take the same images, and no caller
needs to know which statistics a model was trained with (ImageNet's, or 0.5/0.5 for EfficientNet-Lite and
SeqFakeFormer).
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn


class ImageNormalize(nn.Module):
    def __init__(self, mean: Sequence[float], std: Sequence[float]):
        super().__init__()
        # Not persistent: the statistics come from the model's configuration, not from a checkpoint.
        self.register_buffer("mean", torch.tensor(list(mean), dtype=torch.float32).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(list(std), dtype=torch.float32).view(1, -1, 1, 1), persistent=False)

    @classmethod
    def from_cfg(cls, cfg: dict) -> "ImageNormalize":
        return cls(cfg["mean"], cfg["std"])

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = images.float().div_(255) if images.dtype == torch.uint8 else images
        return (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)

    def extra_repr(self) -> str:
        return f"mean={[round(v, 4) for v in self.mean.flatten().tolist()]}, " \
               f"std={[round(v, 4) for v in self.std.flatten().tolist()]}"
