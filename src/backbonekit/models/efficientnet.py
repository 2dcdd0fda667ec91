"""EfficientNet (Tan & Le 2019): MBConv stages scaled in width, depth and resolution from one base table.

``efficientnet_bX`` uses symmetric padding (torchvision / timm weights); ``tf_efficientnet_bX`` uses TF "SAME"
padding and BN eps 1e-3, so that weights trained in TensorFlow (lukemelas ``efficientnet_pytorch``, timm ``tf_*``)
give their original outputs at any input size.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial
from typing import Callable

import torch
import torch.nn as nn
from torchvision.ops import StochasticDepth

from backbonekit.models.base import ImageClassifier, imagenet_cfg
from backbonekit.models.registry import register_model
from backbonekit.nn.layers import ConvNormAct, SqueezeExcite, make_divisible


@dataclass(frozen=True)
class StageSpec:
    expand_ratio: int
    kernel: int
    stride: int
    in_ch: int
    out_ch: int
    repeats: int


# The B0 network found by architecture search; every other variant is this table scaled.
BASE_STAGES = (
    StageSpec(1, 3, 1, 32, 16, 1),
    StageSpec(6, 3, 2, 16, 24, 2),
    StageSpec(6, 5, 2, 24, 40, 2),
    StageSpec(6, 3, 2, 40, 80, 3),
    StageSpec(6, 5, 1, 80, 112, 3),
    StageSpec(6, 5, 2, 112, 192, 4),
    StageSpec(6, 3, 1, 192, 320, 1),
)
BASE_STEM, BASE_HEAD = 32, 1280

# Compound scaling: depth α^φ, width β^φ, resolution γ^φ with α·β²·γ² ≈ 2 (FLOPs double per unit of φ).
ALPHA, BETA, GAMMA = 1.2, 1.1, 1.15

# The published B0–B7 coefficients (width, depth, resolution, dropout). They are the paper's rounded choices of φ
# per variant, not exact powers for integer φ, so every implementation (TF, torchvision, timm) lists them; all
# per-layer numbers below are derived from them.
VARIANTS = {
    "b0": (1.0, 1.0, 224, 0.2),
    "b1": (1.0, 1.1, 240, 0.2),
    "b2": (1.1, 1.2, 260, 0.3),
    "b3": (1.2, 1.4, 300, 0.3),
    "b4": (1.4, 1.8, 380, 0.4),
    "b5": (1.6, 2.2, 456, 0.4),
    "b6": (1.8, 2.6, 528, 0.5),
    "b7": (2.0, 3.1, 600, 0.5),
}


def compound_coefficients(phi: float) -> tuple[float, float, int]:
    """(width, depth, resolution) for a compound coefficient φ: a custom point on the scaling curve."""
    return BETA ** phi, ALPHA ** phi, int(round(224 * GAMMA ** phi))


def scale_stages(width: float, depth: float) -> list[StageSpec]:
    return [StageSpec(s.expand_ratio, s.kernel, s.stride, make_divisible(s.in_ch * width),
                      make_divisible(s.out_ch * width), int(math.ceil(s.repeats * depth))) for s in BASE_STAGES]


class MBConv(nn.Module):
    """Inverted residual: 1×1 expand → depthwise k×k → squeeze-excite → 1×1 project (+ stochastic-depth residual)."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int, expand_ratio: int, *, dilation: int = 1,
                 drop_path: float = 0.0, se: bool = True, norm_layer: Callable[[int], nn.Module],
                 act_layer: Callable[..., nn.Module], tf_same: bool):
        super().__init__()
        mid = make_divisible(in_ch * expand_ratio)
        conv = partial(ConvNormAct, norm_layer=norm_layer, tf_same=tf_same)
        self.expand = conv(in_ch, mid, 1, act_layer=act_layer) if expand_ratio != 1 else None
        self.dwconv = conv(mid, mid, kernel, stride, dilation, groups=mid, act_layer=act_layer)
        # The squeeze width comes from the block's input channels, not the expanded ones (as in the TF reference).
        self.se = SqueezeExcite(mid, max(1, in_ch // 4), act_layer) if se else None
        self.project = conv(mid, out_ch, 1, act_layer=None)
        self.use_residual = stride == 1 and in_ch == out_ch
        self.drop_path = StochasticDepth(drop_path, "row") if self.use_residual and drop_path > 0 else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x if self.expand is None else self.expand(x)
        out = self.dwconv(out)
        if self.se is not None:
            out = self.se(out)
        out = self.project(out)
        if self.use_residual:
            if self.drop_path is not None:
                out = self.drop_path(out)
            out = out + x
        return out


class EfficientNet(ImageClassifier):
    classifier_name = "classifier"

    def __init__(self, width: float = 1.0, depth: float = 1.0, image_size: int = 224, drop_rate: float = 0.2,
                 num_classes: int = 1000, in_chans: int = 3, drop_path_rate: float = 0.2, tf_same: bool = False,
                 bn_eps: float = 1e-5, bn_momentum: float = 0.1, norm_layer: Callable[[int], nn.Module] | None = None,
                 act_layer: Callable[..., nn.Module] = nn.SiLU, se: bool = True, fixed_stem_head: bool = False,
                 output_stride: int = 32):
        super().__init__()
        if output_stride not in (8, 16, 32):
            raise ValueError(f"output_stride must be 8, 16 or 32, got {output_stride}")
        norm_layer = norm_layer or partial(nn.BatchNorm2d, eps=bn_eps, momentum=bn_momentum)
        stages = scale_stages(width, depth)
        stem_ch = BASE_STEM if fixed_stem_head else make_divisible(BASE_STEM * width)
        head_ch = BASE_HEAD if fixed_stem_head else make_divisible(BASE_HEAD * width)

        self.stem = ConvNormAct(in_chans, stem_ch, 3, 2, norm_layer=norm_layer, act_layer=act_layer, tf_same=tf_same)
        total_blocks = sum(s.repeats for s in stages)
        block_idx, in_ch, current_stride, dilation = 0, stem_ch, 2, 1
        self.stages = nn.Sequential()
        self.feature_info = []
        for i, spec in enumerate(stages):
            blocks = []
            for j in range(spec.repeats):
                stride, block_dilation = (spec.stride if j == 0 else 1), dilation
                if stride > 1 and current_stride * stride > output_stride:
                    # Dilate instead of striding: the first block keeps the old dilation, later ones the new.
                    dilation, stride = dilation * stride, 1
                elif stride > 1:
                    current_stride *= stride
                blocks.append(MBConv(in_ch, spec.out_ch, spec.kernel, stride, spec.expand_ratio,
                                     dilation=block_dilation, se=se,
                                     drop_path=drop_path_rate * block_idx / total_blocks,
                                     norm_layer=norm_layer, act_layer=act_layer, tf_same=tf_same))
                in_ch, block_idx = spec.out_ch, block_idx + 1
            self.stages.append(nn.Sequential(*blocks))
            self.feature_info.append({"num_chs": spec.out_ch, "reduction": current_stride,
                                      "module": f"stem,stages.{i}" if i == 0 else f"stages.{i}"})
        self.head = ConvNormAct(in_ch, head_ch, 1, norm_layer=norm_layer, act_layer=act_layer)
        self.feature_info.append({"num_chs": head_ch, "reduction": current_stride, "module": "head"})
        self.num_features = head_ch
        self._init_head(num_classes, drop_rate)
        self.pretrained_cfg = imagenet_cfg(image_size, crop_pct=0.875, interpolation="bicubic")
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                bound = 1.0 / math.sqrt(m.out_features)
                nn.init.uniform_(m.weight, -bound, bound)
                nn.init.zeros_(m.bias)

    def forward_levels(self, x: torch.Tensor, last: int | None = None) -> list[torch.Tensor]:
        last = len(self.feature_info) - 1 if last is None else last
        x = self.stem(x)
        outs = []
        for i, stage in enumerate(self.stages):
            if i > last:
                return outs
            x = stage(x)
            outs.append(x)
        if last >= len(self.stages):
            outs.append(self.head(x))
        return outs

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.stages(self.stem(x)))


def _efficientnet(variant: str, tf_same: bool, **kwargs) -> EfficientNet:
    width, depth, size, dropout = VARIANTS[variant]
    # Normalisation as in the weights each family ships: TF uses eps 1e-3 everywhere; torchvision switched to
    # eps 1e-3 / momentum 0.01 from B5 on. Override with bn_eps=… for weights trained otherwise (timm b5+ uses 1e-5).
    large = variant in ("b5", "b6", "b7")
    defaults = dict(bn_eps=1e-3, bn_momentum=0.01) if (tf_same or large) else dict(bn_eps=1e-5, bn_momentum=0.1)
    defaults.update(kwargs)
    defaults.setdefault("drop_rate", dropout)
    return EfficientNet(width, depth, size, tf_same=tf_same, **defaults)


def _register_variants() -> None:
    for variant in VARIANTS:
        for prefix, tf_same in (("efficientnet", False), ("tf_efficientnet", True)):
            def constructor(_v=variant, _tf=tf_same, **kwargs) -> EfficientNet:
                return _efficientnet(_v, _tf, **kwargs)

            constructor.__name__ = f"{prefix}_{variant}"
            constructor.__doc__ = f"EfficientNet-{variant.upper()}" + (" with TF 'SAME' padding" if tf_same else "")
            register_model(constructor)


_register_variants()


@register_model
def efficientnet_custom(phi: float = 0.0, **kwargs) -> EfficientNet:
    """An EfficientNet at any compound coefficient φ: width β^φ, depth α^φ, resolution γ^φ."""
    width, depth, size = compound_coefficients(phi)
    return EfficientNet(width, depth, size, **kwargs)


def _efficientnet_lite0(tf_same: bool, **kwargs) -> EfficientNet:
    # Lite: no squeeze-excitation and ReLU6 (friendlier to integer accelerators), stem and head not scaled.
    defaults = dict(drop_rate=0.2, se=False, act_layer=nn.ReLU6, fixed_stem_head=True, bn_eps=1e-3, bn_momentum=0.01)
    defaults.update(kwargs)
    model = EfficientNet(1.0, 1.0, 224, tf_same=tf_same, **defaults)
    # The TF Lite models were trained on inputs scaled to [-1, 1].
    model.pretrained_cfg.update(mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    return model


@register_model
def efficientnet_lite0(**kwargs) -> EfficientNet:
    return _efficientnet_lite0(False, **kwargs)


@register_model
def tf_efficientnet_lite0(**kwargs) -> EfficientNet:
    return _efficientnet_lite0(True, **kwargs)
