"""Small blocks shared by the backbones: conv-norm-act, TF "SAME" convolution, squeeze-excitation."""
from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F


def make_divisible(value: float, divisor: int = 8, min_value: int | None = None) -> int:
    """Round channels to a multiple of ``divisor``, never dropping below 90% of ``value`` (the TF reference rule)."""
    min_value = min_value or divisor
    rounded = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


def same_padding(size: int, kernel: int, stride: int, dilation: int) -> tuple[int, int]:
    """TF "SAME" padding for one axis: output = ceil(size / stride); the extra pixel goes after, as in TF."""
    total = max((math.ceil(size / stride) - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


class Conv2dSame(nn.Conv2d):
    """Conv2d with TF "SAME" padding computed from the actual input size.

    TF pads strided convolutions asymmetrically and by an amount that depends on the input size, so a static
    symmetric padding only reproduces TF-trained weights at one resolution; this is exact at every size.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, padding=0, **kwargs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ph = same_padding(x.shape[-2], self.kernel_size[0], self.stride[0], self.dilation[0])
        pw = same_padding(x.shape[-1], self.kernel_size[1], self.stride[1], self.dilation[1])
        if any(ph + pw):
            x = F.pad(x, (pw[0], pw[1], ph[0], ph[1]))
        return super().forward(x)


def create_conv2d(in_ch: int, out_ch: int, kernel: int, stride: int = 1, dilation: int = 1, groups: int = 1,
                  bias: bool = False, tf_same: bool = False) -> nn.Conv2d:
    """A conv with symmetric padding, or TF "SAME" padding where it differs from symmetric (strided convs)."""
    if tf_same and stride > 1:
        return Conv2dSame(in_ch, out_ch, kernel, stride=stride, dilation=dilation, groups=groups, bias=bias)
    # For stride 1 and an odd kernel, SAME padding is symmetric: keep the faster static padding.
    padding = (kernel - 1) // 2 * dilation
    return nn.Conv2d(in_ch, out_ch, kernel, stride=stride, padding=padding, dilation=dilation, groups=groups,
                     bias=bias)


class ConvNormAct(nn.Sequential):
    """conv → norm → activation (activation optional). Keys: ``conv``, ``bn``."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int = 1, stride: int = 1, dilation: int = 1,
                 groups: int = 1, norm_layer: Callable[[int], nn.Module] = nn.BatchNorm2d,
                 act_layer: Callable[..., nn.Module] | None = nn.SiLU, tf_same: bool = False):
        super().__init__()
        self.conv = create_conv2d(in_ch, out_ch, kernel, stride, dilation, groups, tf_same=tf_same)
        self.bn = norm_layer(out_ch)
        if act_layer is not None:
            self.act = act_layer(inplace=True)


class SqueezeExcite(nn.Module):
    """Channel attention: global pool → reduce (1×1 conv) → act → expand → sigmoid gate."""

    def __init__(self, channels: int, squeeze_channels: int, act_layer: Callable[..., nn.Module] = nn.SiLU):
        super().__init__()
        self.reduce = nn.Conv2d(channels, squeeze_channels, 1)
        self.act = act_layer(inplace=True)
        self.expand = nn.Conv2d(squeeze_channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = x.mean((2, 3), keepdim=True)
        scale = self.expand(self.act(self.reduce(scale)))
        return x * scale.sigmoid()
