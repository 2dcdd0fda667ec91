"""EfficientNet (Tan & Le 2019): MBConv stages scaled in width, depth and resolution from one base table.

``efficientnet_bX`` uses symmetric padding (torchvision / timm weights); ``tf_efficientnet_bX`` uses TF "SAME"
padding and BN eps 1e-3, so that weights trained in TensorFlow (lukemelas ``efficientnet_pytorch``, timm ``tf_*``)
give their original outputs at any input size.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from functools import partial
from typing import Callable

import torch
import torch.nn as nn
from torchvision.ops import StochasticDepth

from backbonekit.models.base import ImageClassifier, check_stem
from backbonekit.models.registry import imagenet_cfg, register_model
from backbonekit.errors import WeightsError
from backbonekit.nn.layers import ConvNormAct, SqueezeExcite, make_divisible
from backbonekit.weights import StateDict, register_layout


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
                 output_stride: int = 32, stem: str = "imagenet"):
        super().__init__()
        self.stem_type = check_stem(stem)
        if output_stride not in (8, 16, 32):
            raise ValueError(f"output_stride must be 8, 16 or 32, got {output_stride}")
        norm_layer = norm_layer or partial(nn.BatchNorm2d, eps=bn_eps, momentum=bn_momentum)
        stages = scale_stages(width, depth)
        stem_ch = BASE_STEM if fixed_stem_head else make_divisible(BASE_STEM * width)
        head_ch = BASE_HEAD if fixed_stem_head else make_divisible(BASE_HEAD * width)

        # The small stem is the same 3×3 conv at stride 1 (its weights still fit): a 28-32 px image then leaves the
        # last stage at 2×2 rather than 1×1.
        stem_stride = 1 if self.stem_type == "small" else 2
        self.stem = ConvNormAct(in_chans, stem_ch, 3, stem_stride, norm_layer=norm_layer, act_layer=act_layer,
                                tf_same=tf_same)
        total_blocks = sum(s.repeats for s in stages)
        block_idx, in_ch, current_stride, dilation = 0, stem_ch, stem_stride, 1
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
        self.pretrained_cfg = {"input_size": (3, image_size, image_size)}  # the registry holds the rest
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


def _cfg(size: int, **extra) -> dict:
    return imagenet_cfg(size, interpolation="bicubic", **extra)


def _register_variants() -> None:
    for variant in VARIANTS:
        for prefix, tf_same in (("efficientnet", False), ("tf_efficientnet", True)):
            def constructor(_v=variant, _tf=tf_same, **kwargs) -> EfficientNet:
                return _efficientnet(_v, _tf, **kwargs)

            constructor.__name__ = f"{prefix}_{variant}"
            constructor.__doc__ = f"EfficientNet-{variant.upper()}" + (" with TF 'SAME' padding" if tf_same else "")
            register_model(constructor, cfg=_cfg(VARIANTS[variant][2]))


_register_variants()


@register_model(cfg=_cfg(224))
def efficientnet_custom(phi: float = 0.0, **kwargs) -> EfficientNet:
    """An EfficientNet at any compound coefficient φ: width β^φ, depth α^φ, resolution γ^φ."""
    width, depth, size = compound_coefficients(phi)
    return EfficientNet(width, depth, size, **kwargs)


def _efficientnet_lite0(tf_same: bool, **kwargs) -> EfficientNet:
    # Lite: no squeeze-excitation and ReLU6 (friendlier to integer accelerators), stem and head not scaled.
    defaults = dict(drop_rate=0.2, se=False, act_layer=nn.ReLU6, fixed_stem_head=True, bn_eps=1e-3, bn_momentum=0.01)
    defaults.update(kwargs)
    return EfficientNet(1.0, 1.0, 224, tf_same=tf_same, **defaults)


# The TF Lite models were trained on inputs scaled to [-1, 1].
LITE_CFG = _cfg(224, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))


@register_model(cfg=LITE_CFG)
def efficientnet_lite0(**kwargs) -> EfficientNet:
    return _efficientnet_lite0(False, **kwargs)


@register_model(cfg=LITE_CFG)
def tf_efficientnet_lite0(**kwargs) -> EfficientNet:
    return _efficientnet_lite0(True, **kwargs)


# ------------------------------------------------------------------ weight layouts of the other libraries → ours

def _conv_bn(part: str) -> str:
    return {"0": "conv", "1": "bn"}[part]


def _from_torchvision_efficientnet(sd: StateDict, model: nn.Module) -> StateDict:
    last = max(int(k.split(".")[1]) for k in sd if k.startswith("features."))
    out = {}
    for key, value in sd.items():
        parts = key.split(".")
        if parts[0] == "classifier":  # classifier.1 = Linear after Dropout
            out[".".join(["classifier"] + parts[2:])] = value
            continue
        stage = int(parts[1])
        if stage in (0, last):  # features.0 stem, features.8 head: Conv2dNormActivation(conv, bn, act)
            out[".".join(["stem" if stage == 0 else "head", _conv_bn(parts[2])] + parts[3:])] = value
            continue
        s, j, k = stage - 1, parts[2], int(parts[4])
        expanded = f"features.{stage}.{j}.block.3.0.weight" in sd
        role = (["expand", "dwconv", "se", "project"] if expanded else ["dwconv", "se", "project"])[k]
        rest = parts[5:]
        if role == "se":
            rest = [{"fc1": "reduce", "fc2": "expand"}[rest[0]]] + rest[1:]
        else:
            rest = [_conv_bn(rest[0])] + rest[1:]
        out[".".join(["stages", str(s), j, role] + rest)] = value
    return out


_TIMM_TOP = {"conv_stem": "stem.conv", "bn1": "stem.bn", "conv_head": "head.conv", "bn2": "head.bn",
             "classifier": "classifier"}
_TIMM_EXPANDED = {"conv_pw": "expand.conv", "bn1": "expand.bn", "conv_dw": "dwconv.conv", "bn2": "dwconv.bn",
                  "se.conv_reduce": "se.reduce", "se.conv_expand": "se.expand", "conv_pwl": "project.conv",
                  "bn3": "project.bn"}
_TIMM_DEPTHWISE = {"conv_dw": "dwconv.conv", "bn1": "dwconv.bn", "se.conv_reduce": "se.reduce",
                   "se.conv_expand": "se.expand", "conv_pw": "project.conv", "bn2": "project.bn"}


def _from_timm_efficientnet(sd: StateDict, model: nn.Module) -> StateDict:
    out = {}
    block_re = re.compile(r"blocks\.(\d+)\.(\d+)\.(.+)\.(\w+)$")
    for key, value in sd.items():
        m = block_re.match(key)
        if m:
            s, j, part, param = m.groups()
            # timm's first-stage blocks have no expansion and name their convs differently (DepthwiseSeparable).
            table = _TIMM_EXPANDED if f"blocks.{s}.{j}.conv_pwl.weight" in sd else _TIMM_DEPTHWISE
            out[f"stages.{s}.{j}.{table.get(part, part)}.{param}"] = value
        else:
            head, _, param = key.rpartition(".")
            out[f"{_TIMM_TOP.get(head, head)}.{param}"] = value
    return out


_LUKEMELAS_TOP = {"_conv_stem": "stem.conv", "_bn0": "stem.bn", "_conv_head": "head.conv", "_bn1": "head.bn",
                  "_fc": "classifier"}
_LUKEMELAS_BLOCK = {"_expand_conv": "expand.conv", "_bn0": "expand.bn", "_depthwise_conv": "dwconv.conv",
                    "_bn1": "dwconv.bn", "_se_reduce": "se.reduce", "_se_expand": "se.expand",
                    "_project_conv": "project.conv", "_bn2": "project.bn"}


def _from_lukemelas_efficientnet(sd: StateDict, model: nn.Module) -> StateDict:
    stages = getattr(model, "stages", None)
    if stages is None:
        raise WeightsError(f"these are EfficientNet weights (efficientnet_pytorch layout); "
                           f"{getattr(model, 'model_name', type(model).__name__)} is not an EfficientNet")
    # lukemelas numbers blocks globally; ours are numbered within stages.
    where = [f"{s}.{j}" for s, stage in enumerate(stages) if isinstance(stage, nn.Sequential)
             for j in range(len(stage))]
    out = {}
    for key, value in sd.items():
        parts = key.split(".")
        if parts[0] == "_blocks":
            g = int(parts[1])
            if g >= len(where):
                raise WeightsError(f"weights have block {g}, the model only {len(where)}: another EfficientNet size?")
            out[f"stages.{where[g]}.{_LUKEMELAS_BLOCK.get(parts[2], parts[2])}.{'.'.join(parts[3:])}"] = value
        else:
            out[f"{_LUKEMELAS_TOP.get(parts[0], parts[0])}.{'.'.join(parts[1:])}"] = value
    return out


register_layout("features.0.0.weight", "torchvision EfficientNet", _from_torchvision_efficientnet)
register_layout("conv_stem.weight", "timm EfficientNet", _from_timm_efficientnet)
register_layout("_conv_stem.weight", "efficientnet_pytorch (lukemelas)", _from_lukemelas_efficientnet)
