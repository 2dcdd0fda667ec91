"""BiFPN (Tan, Pang, Le 2020): repeated top-down + bottom-up fusion of P3…P7 with learned per-input weights.

Built like effdet's ``tf_efficientdet_*`` , so its weights load (see the converter in ``efficientdet.py``):
- P6, P7 come from the last backbone map: 1×1 conv + BN if its width differs from the BiFPN's, then a 3×3/2 max-pool;
- every node resamples each input on its own (1×1 conv + BN where widths differ, nearest upsampling from the level
  above or 3×3/2 max-pool from the level below), fuses them, then SiLU → separable conv → BN (pre-activation, as TF);
- fusion ``fast``: Σ relu(w_i)·x_i / (Σ relu(w_j) + 1e-4); ``softmax``: softmax(w) weights; ``sum``: plain sum (D6/D7).

Resampling targets the size of the level's own input map at run time rather than sizes fixed at build time, so one
model serves any input size (effdet must be rebuilt per image size).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils.fusion import fuse_conv_bn_eval

from backbonekit.errors import ConfigError
from backbonekit.nn.layers import same_padding

FUSIONS = ("fast", "sum", "softmax")


@dataclass(frozen=True)
class BiFPNConfig:
    channels: int = 64
    repeats: int = 3
    min_level: int = 3
    max_level: int = 7
    fusion: str = "fast"
    tf_same: bool = True     # TF "SAME" max-pools (TF-trained weights); False: symmetric padding 1
    conv_bias: bool = True   # the bias TF puts before every BN: useless, but TF weights carry it
    bn_eps: float = 1e-3
    bn_momentum: float = 0.01

    @property
    def num_levels(self) -> int:
        return self.max_level - self.min_level + 1

    def norm(self, channels: int) -> nn.BatchNorm2d:
        return nn.BatchNorm2d(channels, eps=self.bn_eps, momentum=self.bn_momentum)


def bifpn_nodes(num_levels: int) -> list[tuple[int, list[int]]]:
    """(output level index, input node ids) of each node of one layer, in evaluation order.

    Ids 0…num_levels-1 are the layer's inputs (P3…P7); each node appends one id. Top-down: level i fuses its input
    with the node above; bottom-up: level i fuses its input, its top-down node (if any) and the node below.
    The order and ids are TF's (and effdet's), which the weight renaming relies on.
    """
    last = {i: i for i in range(num_levels)}  # level index → id of its newest node
    nodes, next_id = [], num_levels
    for i in range(num_levels - 2, -1, -1):
        nodes.append((i, [last[i], last[i + 1]]))
        last[i], next_id = next_id, next_id + 1
    for i in range(1, num_levels):
        inputs = [i] + ([last[i]] if last[i] != i else []) + [last[i - 1]]
        nodes.append((i, inputs))
        last[i], next_id = next_id, next_id + 1
    return nodes


class MaxPool2dSame(nn.Module):
    """Max-pool with TF "SAME" padding, where padding never wins the max.

    SAME pads ``total // 2`` before and the rest (one more at most) after. The pool's own padding does the
    symmetric part and ``ceil_mode`` the extra pixel after (a last window hanging over the end ignores it; where
    the padding is symmetric the windows fit exactly and ``ceil_mode`` changes nothing): the same maxima as
    padding with -inf first, without copying the map into a padded one.
    """

    def __init__(self, kernel: int, stride: int):
        super().__init__()
        self.kernel, self.stride = kernel, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        (top, bottom), (left, right) = (same_padding(size, self.kernel, self.stride, 1) for size in x.shape[-2:])
        if torch.compiler.is_exporting():
            # In an exported graph the padding is explicit (-inf): OpenVINO refuses a window that overhangs a map
            # smaller than the kernel (2×2 at P7 of a 128² input), which ceil_mode relies on.
            padded = F.pad(x, (left, right, top, bottom), value=float("-inf"))
            return F.max_pool2d(padded, self.kernel, self.stride)
        return F.max_pool2d(x, self.kernel, self.stride, padding=(top, left), ceil_mode=True)


class SeparableConv2d(nn.Module):
    """Depthwise 3×3 → pointwise 1×1 (with bias) → optional BN. Keys ``dw``, ``pw``, ``bn``."""

    def __init__(self, in_ch: int, out_ch: int, bias: bool = True, norm: nn.Module | None = None):
        super().__init__()
        self.dw = nn.Conv2d(in_ch, in_ch, 3, padding=1, groups=in_ch, bias=False)  # stride 1: SAME = symmetric
        self.pw = nn.Conv2d(in_ch, out_ch, 1, bias=bias)
        self.bn = norm

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pw(self.dw(x))
        return x if self.bn is None else self.bn(x)

    def fuse_batchnorm(self) -> None:
        """Fold the BN into the pointwise conv (inference; called by ``backbonekit.nn.fuse.fuse_batchnorm``)."""
        if type(self.bn) is nn.BatchNorm2d:
            self.pw, self.bn = fuse_conv_bn_eval(self.pw, self.bn), None


class Resample(nn.Module):
    """Bring a map from ``from_level`` to ``to_level``: 1×1 conv + BN if widths differ, then pool or upsample."""

    def __init__(self, in_ch: int, out_ch: int, from_level: int, to_level: int, config: BiFPNConfig):
        super().__init__()
        self.conv = nn.Conv2d(in_ch, out_ch, 1, bias=config.conv_bias) if in_ch != out_ch else None
        self.bn = config.norm(out_ch) if in_ch != out_ch else None
        self.pool = None
        if to_level > from_level:
            stride = 2 ** (to_level - from_level)
            # kernel stride+1 as effdet/TF: neighbouring windows overlap by one pixel.
            self.pool = (MaxPool2dSame(stride + 1, stride) if config.tf_same
                         else nn.MaxPool2d(stride + 1, stride, padding=stride // 2))
        self.upsample = to_level < from_level

    def forward(self, x: torch.Tensor, size: tuple[int, int] | None = None) -> torch.Tensor:
        if self.conv is not None:
            x = self.bn(self.conv(x))
        if self.pool is not None:
            x = self.pool(x)
        elif self.upsample:
            x = upsample_nearest(x, size)
        return x


def upsample_nearest(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``F.interpolate(x, size, mode="nearest")``, exactly; an NCHW doubling (the usual case) as one broadcast copy.

    Nearest doubling repeats every pixel 2×2, which ``expand`` + ``reshape`` writes in one pass, where
    ``F.interpolate`` on NCHW (torch 2.x, CPU) also copies input and output (3.5× the time for a 64×32×32 map).
    Its channels-last kernel has no such cost and is kept."""
    b, c, h, w = x.shape
    if tuple(size) != (2 * h, 2 * w) or not x.is_contiguous():
        return F.interpolate(x, size=size, mode="nearest")
    return x[:, :, :, None, :, None].expand(b, c, h, 2, w, 2).reshape(b, c, 2 * h, 2 * w)


class FusionNode(nn.Module):
    """Resample the inputs, fuse them with learned weights, then SiLU → separable conv → BN."""

    def __init__(self, in_channels: list[int], in_levels: list[int], level: int, config: BiFPNConfig):
        super().__init__()
        self.resample = nn.ModuleList(Resample(c, config.channels, lvl, level, config)
                                      for c, lvl in zip(in_channels, in_levels))
        self.fusion = config.fusion
        self.weights = nn.Parameter(torch.ones(len(in_channels))) if config.fusion != "sum" else None
        self.act = nn.SiLU(inplace=True)
        self.conv = SeparableConv2d(config.channels, config.channels, config.conv_bias, config.norm(config.channels))

    def forward(self, inputs: list[torch.Tensor], size: tuple[int, int]) -> torch.Tensor:
        maps = [resample(x, size) for resample, x in zip(self.resample, inputs)]
        if self.fusion == "fast":
            # ReLU keeps weights ≥ 0; the +1e-4 avoids 0/0 once all are pushed to 0. Operations in effdet's order,
            # so effdet weights give its outputs to the last bit.
            # In-place steps on the fresh product: the same roundings with one allocation per input, not two.
            w = F.relu(self.weights.to(maps[0].dtype))
            total = w.sum() + 1e-4
            maps = [(x * wi).div_(total) for x, wi in zip(maps, w)]
        elif self.fusion == "softmax":
            maps = [x * wi for x, wi in zip(maps, self.weights.to(maps[0].dtype).softmax(0))]
        fused = maps[0] + maps[1]  # a new tensor (inputs may be other nodes' outputs): the rest add in place
        for x in maps[2:]:
            fused.add_(x)
        return self.conv(self.act(fused))


class BiFPNLayer(nn.Module):
    def __init__(self, in_channels: list[int], config: BiFPNConfig):
        super().__init__()
        self.spec = bifpn_nodes(config.num_levels)
        channels = list(in_channels) + [config.channels] * len(self.spec)
        levels = list(range(config.num_levels)) + [lvl for lvl, _ in self.spec]
        self.nodes = nn.ModuleList(FusionNode([channels[i] for i in ids], [levels[i] for i in ids], lvl, config)
                                   for lvl, ids in self.spec)
        self.num_levels = config.num_levels

    def forward(self, features: list[torch.Tensor]) -> list[torch.Tensor]:
        sizes = [f.shape[-2:] for f in features]
        maps = list(features)
        for node, (level, ids) in zip(self.nodes, self.spec):
            maps.append(node([maps[i] for i in ids], sizes[level]))
        return maps[-self.num_levels:]


class BiFPN(nn.Module):
    """Backbone maps (strides 2^min_level, …) → ``num_levels`` maps of ``channels`` width (P3…P7)."""

    def __init__(self, in_channels: list[int], config: BiFPNConfig = BiFPNConfig()):
        super().__init__()
        if config.fusion not in FUSIONS:
            raise ConfigError(f"BiFPN fusion must be one of {', '.join(FUSIONS)}, got {config.fusion!r}")
        if not 1 <= len(in_channels) <= config.num_levels:
            raise ConfigError(f"BiFPN takes 1…{config.num_levels} backbone maps, got {len(in_channels)}")
        self.config = config
        in_channels = list(in_channels)
        # Extra coarser levels, each from the previous (the first from the last backbone map).
        self.extra = nn.ModuleList()
        for level in range(len(in_channels), config.num_levels):
            self.extra.append(Resample(in_channels[-1], config.channels, level - 1, level, config))
            in_channels.append(config.channels)
        self.cells = nn.ModuleList()
        for _ in range(config.repeats):
            self.cells.append(BiFPNLayer(in_channels, config))
            in_channels = [config.channels] * config.num_levels
        self._init_weights()

    def _init_weights(self) -> None:
        # TF's glorot-uniform with fans counted per group (effdet's _init_weight); BN starts at identity.
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                fan_in = m.weight[0].numel()
                fan_out = m.weight.shape[0] * m.weight[0, 0].numel() // m.groups
                limit = (3.0 / max(1.0, (fan_in + fan_out) / 2)) ** 0.5
                nn.init.uniform_(m.weight, -limit, limit)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, features: list[torch.Tensor]) -> list[torch.Tensor]:
        maps = list(features)
        for extra in self.extra:
            maps.append(extra(maps[-1]))
        for cell in self.cells:
            maps = cell(maps)
        return maps
