"""EfficientDet D0–D7: backbone → BiFPN (P3…P7) → class and box nets shared across levels (Tan, Pang, Le 2020).

Configured as effdet's ``tf_efficientdet_dX`` (TF "SAME" padding, the bias TF keeps before every BN), so effdet
weights load and give its outputs (the converter at the end of this file). Any backbonekit backbone can replace the EfficientNet:
``create_model("efficientdet_d0", num_classes=3, backbone="resnet50")``; config fields are keyword overrides:
``create_model("efficientdet_d0", image_size=(384, 1280), fusion="softmax")``.
"""
from __future__ import annotations

import math
import re
import warnings
from dataclasses import dataclass, fields, replace

import torch
import torch.nn as nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from backbonekit import weights
from backbonekit.errors import ConfigError, WeightsError
from backbonekit.models.anchors import AnchorConfig, Anchors, flatten_level_outputs
from backbonekit.models.backbone import Backbone, freeze_batch_norm
from backbonekit.models.bifpn import BiFPN, BiFPNConfig, SeparableConv2d, bifpn_nodes
from backbonekit.models.registry import create_model, default_cfg, imagenet_cfg, register_model


@dataclass(frozen=True)
class EfficientDetConfig:
    image_size: tuple[int, int]
    backbone: str
    fpn_channels: int
    fpn_repeats: int
    head_repeats: int
    anchor_scale: float = 4.0
    fusion: str = "fast"             # BiFPN fusion: fast | sum | softmax
    min_level: int = 3
    max_level: int = 7
    num_scales: int = 3
    aspect_ratios: tuple[tuple[float, float], ...] = ((1.0, 1.0), (1.4, 0.7), (0.7, 1.4))
    tf_same: bool = True             # TF "SAME" max-pools
    conv_bias: bool = True           # bias before BN, as TF weights have it
    backbone_drop_path: float = 0.2  # stochastic depth of the default backbone (effdet's backbone_args)

    def bifpn(self) -> BiFPNConfig:
        return BiFPNConfig(self.fpn_channels, self.fpn_repeats, self.min_level, self.max_level, self.fusion,
                           self.tf_same, self.conv_bias)

    def anchors(self) -> AnchorConfig:
        return AnchorConfig(self.min_level, self.max_level, self.num_scales, tuple(map(tuple, self.aspect_ratios)),
                            self.anchor_scale)


# The paper's table. D6 and D7 fuse by plain sum, which effdet uses for training stability.
CONFIGS = {
    "d0": EfficientDetConfig((512, 512), "tf_efficientnet_b0", 64, 3, 3),
    "d1": EfficientDetConfig((640, 640), "tf_efficientnet_b1", 88, 4, 3),
    "d2": EfficientDetConfig((768, 768), "tf_efficientnet_b2", 112, 5, 3),
    "d3": EfficientDetConfig((896, 896), "tf_efficientnet_b3", 160, 6, 4),
    "d4": EfficientDetConfig((1024, 1024), "tf_efficientnet_b4", 224, 7, 4),
    "d5": EfficientDetConfig((1280, 1280), "tf_efficientnet_b5", 288, 7, 4),
    "d6": EfficientDetConfig((1280, 1280), "tf_efficientnet_b6", 384, 8, 5, fusion="sum"),
    "d7": EfficientDetConfig((1536, 1536), "tf_efficientnet_b6", 384, 8, 5, anchor_scale=5.0, fusion="sum"),
}


def build_backbone(name: str, levels, pretrained=None, frozen_bn: bool = False, **kwargs) -> Backbone:
    """``name`` as a backbone returning the deepest map of each stride 2^level (level 3 → stride 8, …)."""
    model = create_model(name, num_classes=0, pretrained=pretrained, **kwargs)
    if frozen_bn:
        model = freeze_batch_norm(model)
    last_of = {info["reduction"]: i for i, info in enumerate(model.feature_info) if info["module"] != "head"}
    missing = [2 ** lvl for lvl in levels if 2 ** lvl not in last_of]
    if missing:
        raise ConfigError(f"backbone {name} has no output at stride {missing} (it has {sorted(last_of)})")
    return Backbone(model, [last_of[2 ** lvl] for lvl in levels])


class HeadNet(nn.Module):
    """Separable convs shared by all levels, each followed by a BN of its own per level (statistics differ by
    level), then SiLU; a last separable conv predicts ``num_anchors × num_outputs`` channels (anchor-major)."""

    def __init__(self, channels: int, num_outputs: int, num_anchors: int, repeats: int, num_levels: int,
                 bifpn: BiFPNConfig):
        super().__init__()
        self.convs = nn.ModuleList(SeparableConv2d(channels, channels, bifpn.conv_bias) for _ in range(repeats))
        self.norms = nn.ModuleList(nn.ModuleList(bifpn.norm(channels) for _ in range(repeats))
                                   for _ in range(num_levels))
        self.act = nn.SiLU(inplace=True)
        self.predict = SeparableConv2d(channels, num_anchors * num_outputs, bias=True)
        self.fused_pw = None  # per level and repeat: the shared pointwise conv with that level's BN folded in

    def forward(self, features: list[torch.Tensor]) -> list[torch.Tensor]:
        outputs = []
        for level, x in enumerate(features):
            for i, conv in enumerate(self.convs):
                if self.fused_pw is None:
                    x = self.norms[level][i](conv(x))
                else:
                    x = self.fused_pw[level][i](conv.dw(x))
                x = self.act(x)
            outputs.append(self.predict(x))
        return outputs

    def fuse_batchnorm(self) -> None:
        """Fold each level's BNs into a copy of the shared pointwise conv for that level (inference only: the
        levels stop sharing weights). Called by ``backbonekit.nn.fuse.fuse_batchnorm``."""
        if self.fused_pw is not None or not all(type(n) is nn.BatchNorm2d for norms in self.norms for n in norms):
            return
        self.fused_pw = nn.ModuleList(nn.ModuleList(fuse_conv_bn_eval(conv.pw, norm)
                                                    for conv, norm in zip(self.convs, norms))
                                      for norms in self.norms)
        self.norms = None


class EfficientDet(nn.Module):
    """``forward(x)`` → (class logits, box codes): per level (B, A·C, h, w) and (B, A·4, h, w), effdet's layout.
    ``forward_flat(x)`` → (B, N, C), (B, N, 4) in the order of ``anchors(image_size)``."""

    def __init__(self, config: EfficientDetConfig = CONFIGS["d0"], num_classes: int = 90,
                 backbone: str | nn.Module | None = None, pretrained_backbone=None, frozen_bn: bool = False,
                 backbone_args: dict | None = None):
        super().__init__()
        self.config, self.num_classes = config, num_classes
        levels = range(config.min_level, min(config.max_level, config.min_level + 2) + 1)  # P3–P5 from the backbone
        if isinstance(backbone, nn.Module):
            self.backbone = backbone  # anything with .channels and forward → maps at strides 8, 16, 32
        else:
            if backbone_args is None and backbone in (None, config.backbone):
                backbone_args = {"drop_path_rate": config.backbone_drop_path}
            self.backbone = build_backbone(backbone or config.backbone, levels, pretrained_backbone, frozen_bn,
                                           **(backbone_args or {}))
        bifpn = config.bifpn()
        self.fpn = BiFPN(self.backbone.channels, bifpn)
        self.anchor_config = config.anchors()
        num_anchors, num_levels = self.anchor_config.num_anchors, bifpn.num_levels
        self.class_net = HeadNet(config.fpn_channels, num_classes, num_anchors, config.head_repeats, num_levels, bifpn)
        self.box_net = HeadNet(config.fpn_channels, 4, num_anchors, config.head_repeats, num_levels, bifpn)
        self._init_heads()
        # The input statistics are the backbone's (EfficientNet-Lite: 0.5/0.5), the size the detector's.
        body_cfg = getattr(getattr(self.backbone, "body", None), "pretrained_cfg", {})
        self.pretrained_cfg = {**{k: body_cfg[k] for k in ("mean", "std") if k in body_cfg},
                               "input_size": (3, *config.image_size)}

    def _init_heads(self) -> None:
        # TF's variance scaling (std √(1/fan_in)); the class bias makes every anchor start at p = 0.01, so the
        # many background anchors do not swamp the focal loss in the first steps.
        for net in (self.class_net, self.box_net):
            for m in net.modules():
                if isinstance(m, nn.Conv2d):
                    nn.init.normal_(m.weight, std=math.sqrt(1.0 / m.weight[0].numel()))
                    if m.bias is not None:
                        nn.init.zeros_(m.bias)
        nn.init.constant_(self.class_net.predict.pw.bias, -math.log((1 - 0.01) / 0.01))

    def forward(self, x: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        features = self.fpn(self.backbone(x))
        return self.class_net(features), self.box_net(features)

    def forward_flat(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return flatten_level_outputs(*self(x), self.num_classes)

    def anchors(self, image_size: tuple[int, int] | None = None) -> Anchors:
        return Anchors(tuple(image_size or self.config.image_size), self.anchor_config)


def efficientdet(variant: str, num_classes: int = 90, backbone: str | nn.Module | None = None,
                 pretrained_backbone=None, frozen_bn: bool = False, **overrides) -> EfficientDet:
    """EfficientDet-``variant`` ("d0"…"d7"); ``overrides`` replace config fields (image_size, fusion, …)."""
    unknown = set(overrides) - {f.name for f in fields(EfficientDetConfig)}
    if unknown:
        raise ConfigError(f"unknown EfficientDet option(s): {', '.join(sorted(unknown))}")
    if "image_size" in overrides:
        size = overrides["image_size"]
        overrides["image_size"] = (size, size) if isinstance(size, int) else tuple(size)
    config = replace(CONFIGS[variant], **overrides)
    return EfficientDet(config, num_classes, backbone, pretrained_backbone, frozen_bn)


def detector_cfg(config: EfficientDetConfig) -> dict:
    """A variant's registry entry: its input size, its backbone's input statistics, no classifier."""
    backbone = default_cfg(config.backbone)
    return imagenet_cfg(config.image_size, mean=backbone["mean"], std=backbone["std"], crop_pct=1.0,
                        classifier=None, task="detect")


def _register_variants() -> None:
    for variant in CONFIGS:
        def constructor(_v=variant, **kwargs) -> EfficientDet:
            return efficientdet(_v, **kwargs)

        constructor.__name__ = f"efficientdet_{variant}"
        constructor.__doc__ = f"EfficientDet-{variant.upper()} (effdet's tf_efficientdet_{variant} layout)"
        register_model(constructor, cfg=detector_cfg(CONFIGS[variant]))


_register_variants()


# ------------------------------------------------------------------------------------------ effdet weights
# effdet (rwightman/efficientdet-pytorch) state dicts → our EfficientDet names, so effdet users keep their weights.
#
#     backbone.conv_stem… / blocks.s.j…                     → backbone.body.… (the timm EfficientNet renaming)
#     fpn.resample.{L}.conv.{conv,bn}.…                      → fpn.extra.{L - backbone maps}.{conv,bn}.…
#     fpn.cell.r.fnode.n.combine.resample.{id}.conv.{conv,bn} → fpn.cells.r.nodes.n.resample.{position of id}.{conv,bn}
#     fpn.cell.r.fnode.n.combine.edge_weights                → fpn.cells.r.nodes.n.weights
#     fpn.cell.r.fnode.n.after_combine.conv.{conv_dw,conv_pw,bn} → fpn.cells.r.nodes.n.conv.{dw,pw,bn}
#     {class,box}_net.conv_rep.i.{conv_dw,conv_pw}           → {class,box}_net.convs.i.{dw,pw}
#     {class,box}_net.bn_rep.i.level.bn.…  (or level-first bn_rep.level.i.…) → {class,box}_net.norms.level.i.…
#     {class,box}_net.predict.{conv_dw,conv_pw}              → {class,box}_net.predict.{dw,pw}
#
# A class net trained for another class count keeps the model's own fresh predictor (with a warning): fine-tuning
# COCO weights on KITTI then needs no manual surgery.

SIGNATURE = "class_net.conv_rep.0.conv_dw.weight"  # present in every effdet model, absent from ours
_SEPARABLE = {"conv_dw": "dw", "conv_pw": "pw", "bn": "bn"}


def convert_effdet_state_dict(sd: weights.StateDict, model: nn.Module) -> weights.StateDict:
    if not hasattr(model, "fpn") or not hasattr(model, "class_net"):
        raise WeightsError(f"these are effdet EfficientDet weights; "
                           f"{getattr(model, 'model_name', type(model).__name__)} is not an EfficientDet")
    num_inputs = len(model.backbone.channels)
    spec = bifpn_nodes(model.fpn.config.num_levels)
    backbone = {k[len("backbone."):]: v for k, v in sd.items() if k.startswith("backbone.")}
    out = {f"backbone.body.{k}": v for k, v in weights.convert_state_dict(backbone, model.backbone.body).items()}
    for key, value in sd.items():
        if key.startswith("backbone."):
            continue
        out[_rename(key, num_inputs, spec)] = value
    _keep_own_predictor_if_different(out, model)
    return out


def _rename(key: str, num_inputs: int, spec) -> str:
    if m := re.fullmatch(r"fpn\.resample\.(\d+)\.conv\.(conv|bn)\.(\w+)", key):
        return f"fpn.extra.{int(m[1]) - num_inputs}.{m[2]}.{m[3]}"
    if m := re.fullmatch(r"fpn\.cell\.(\d+)\.fnode\.(\d+)\.(.+)", key):
        r, n, rest = m[1], int(m[2]), m[3]
        node = f"fpn.cells.{r}.nodes.{n}"
        if m := re.fullmatch(r"combine\.resample\.(\d+)\.conv\.(conv|bn)\.(\w+)", rest):
            return f"{node}.resample.{spec[n][1].index(int(m[1]))}.{m[2]}.{m[3]}"
        if rest == "combine.edge_weights":
            return f"{node}.weights"
        if m := re.fullmatch(r"after_combine\.conv\.(conv_dw|conv_pw|bn)\.(\w+)", rest):
            return f"{node}.conv.{_SEPARABLE[m[1]]}.{m[2]}"
    if m := re.fullmatch(r"(class_net|box_net)\.(conv_rep|predict)\.(?:(\d+)\.)?(conv_dw|conv_pw)\.(\w+)", key):
        where = f"convs.{m[3]}" if m[2] == "conv_rep" else "predict"
        return f"{m[1]}.{where}.{_SEPARABLE[m[4]]}.{m[5]}"
    if m := re.fullmatch(r"(class_net|box_net)\.bn_rep\.(\d+)\.(\d+)\.bn\.(\w+)", key):  # repeat-first (default)
        return f"{m[1]}.norms.{m[3]}.{m[2]}.{m[4]}"
    if m := re.fullmatch(r"(class_net|box_net)\.bn_rep\.(\d+)\.(\d+)\.(\w+)", key):  # head_bn_level_first=True
        return f"{m[1]}.norms.{m[2]}.{m[3]}.{m[4]}"
    return key  # unknown: load_weights reports it as unexpected


def _keep_own_predictor_if_different(sd: weights.StateDict, model: nn.Module) -> None:
    own = model.state_dict()
    keys = ("class_net.predict.pw.weight", "class_net.predict.pw.bias")
    if all(k in sd for k in keys) and sd[keys[0]].shape != own[keys[0]].shape:
        warnings.warn(f"effdet class net predicts {sd[keys[1]].numel() // model.anchor_config.num_anchors} classes, "
                      f"the model {model.num_classes}: the class predictor keeps its fresh initialisation",
                      stacklevel=4)
        for k in keys:
            sd[k] = own[k]


# Registering the layout makes create_model("efficientdet_d0", pretrained=effdet_state_dict_or_file) work.
weights.register_layout(SIGNATURE, "effdet EfficientDet", convert_effdet_state_dict)
