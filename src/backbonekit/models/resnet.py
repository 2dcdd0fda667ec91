"""ResNet (He et al. 2015), "v1.5" as in torchvision and timm: the stride of a Bottleneck sits on its 3×3 conv.

Blocks, then the network, then one thin constructor per depth. State-dict keys are torchvision's, so its weights
(and timm's, which share them) load without renaming.

Two options change the blocks without changing the names of existing weights:

* ``attn_layer="se"`` adds squeeze-excitation after each block's last BatchNorm, before the residual sum, as timm's
  SE-ResNet/SE-ResNeXt (keys ``layerN.i.se.fc1``/``fc2``; the constructors are in ``senet.py``);
* ``deform_stages=(3, 4)`` with ``deform_version=1|2`` makes the 3×3 convs of those stages deformable
  (``deform_conv.py``): the offset predictors start at zero, so converted weights give unchanged outputs.
"""
from __future__ import annotations

from functools import partial
from typing import Callable, Sequence, Type

import torch
import torch.nn as nn

from torchvision.ops import StochasticDepth

from backbonekit.models.base import ImageClassifier, check_stem
from backbonekit.models.deform_conv import DeformConv2d, offset_keys
from backbonekit.models.registry import imagenet_cfg, register_model

NormLayer = Callable[[int], nn.Module]
AttnLayer = Callable[[int], nn.Module]


def conv3x3(in_ch: int, out_ch: int, stride: int = 1, groups: int = 1, dilation: int = 1,
            deform_version: int = 0) -> nn.Conv2d:
    """A 3×3 conv; ``deform_version`` 1 or 2 makes it deformable (same ``weight`` key, plus ``conv_offset``)."""
    if deform_version:
        return DeformConv2d(in_ch, out_ch, 3, stride=stride, padding=dilation, dilation=dilation, groups=groups,
                            bias=False, version=deform_version)
    return nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=dilation, groups=groups, dilation=dilation, bias=False)


def conv1x1(in_ch: int, out_ch: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_ch, out_ch, 1, stride=stride, bias=False)


class SEModule(nn.Module):
    """Squeeze-and-excitation (Hu et al. 2018) as timm's SE-ResNets use it: global mean → 1×1 conv ``fc1`` (to
    ``channels/16`` rounded to a multiple of 8) → ReLU → 1×1 conv ``fc2`` → sigmoid gate on the input.

    The maths of ``backbonekit.nn.layers.SqueezeExcite`` (with ReLU), but timm's keys (``fc1``/``fc2``, not
    ``reduce``/``expand``, which EfficientNet's weights need), so timm's SE-ResNet state dicts load unrenamed.
    """

    def __init__(self, channels: int, rd_ratio: float = 1 / 16, rd_divisor: int = 8,
                 act_layer: Callable[..., nn.Module] = nn.ReLU):
        super().__init__()
        # timm's make_divisible(channels * rd_ratio, 8, round_limit=0): nearest multiple, never below the divisor.
        rd_channels = max(rd_divisor, int(channels * rd_ratio + rd_divisor / 2) // rd_divisor * rd_divisor)
        self.fc1 = nn.Conv2d(channels, rd_channels, 1, bias=True)
        self.act = act_layer(inplace=True)
        self.fc2 = nn.Conv2d(rd_channels, channels, 1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = self.fc2(self.act(self.fc1(x.mean((2, 3), keepdim=True))))
        return x * scale.sigmoid()


ATTN_LAYERS: dict[str, AttnLayer] = {"se": SEModule}


def _attn_layer(attn_layer: str | AttnLayer | None) -> AttnLayer | None:
    if attn_layer is None or callable(attn_layer):
        return attn_layer
    try:
        return ATTN_LAYERS[attn_layer]
    except KeyError:
        raise ValueError(f"unknown attn_layer {attn_layer!r}: choose from {sorted(ATTN_LAYERS)}") from None


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None,
                 groups: int = 1, base_width: int = 64, dilation: int = 1, norm_layer: NormLayer = nn.BatchNorm2d,
                 stride_in_1x1: bool = False, drop_path: float = 0.0, attn_layer: AttnLayer | None = None,
                 deform_version: int = 0):
        super().__init__()
        if groups != 1 or base_width != 64:
            raise ValueError("BasicBlock supports only groups=1 and base_width=64")
        self.conv1 = conv3x3(inplanes, planes, stride, dilation=dilation, deform_version=deform_version)
        self.bn1 = norm_layer(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes, dilation=dilation, deform_version=deform_version)
        self.bn2 = norm_layer(planes)
        self.se = attn_layer(planes) if attn_layer is not None else None
        self.downsample = downsample
        self.drop_path = StochasticDepth(drop_path, "row") if drop_path > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.se is not None:
            out = self.se(out)
        return self.relu(self.drop_path(out) + identity)

    def last_norm(self) -> nn.Module:
        return self.bn2


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None,
                 groups: int = 1, base_width: int = 64, dilation: int = 1, norm_layer: NormLayer = nn.BatchNorm2d,
                 stride_in_1x1: bool = False, drop_path: float = 0.0, attn_layer: AttnLayer | None = None,
                 deform_version: int = 0):
        super().__init__()
        width = int(planes * (base_width / 64.0)) * groups
        # v1 (the paper, Caffe weights) strides the first 1×1; v1.5 strides the 3×3. Same keys, different maths.
        stride_1x1, stride_3x3 = (stride, 1) if stride_in_1x1 else (1, stride)
        self.conv1 = conv1x1(inplanes, width, stride_1x1)
        self.bn1 = norm_layer(width)
        self.conv2 = conv3x3(width, width, stride_3x3, groups, dilation, deform_version=deform_version)
        self.bn2 = norm_layer(width)
        self.conv3 = conv1x1(width, planes * self.expansion)
        self.bn3 = norm_layer(planes * self.expansion)
        self.se = attn_layer(planes * self.expansion) if attn_layer is not None else None
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.drop_path = StochasticDepth(drop_path, "row") if drop_path > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        if self.se is not None:
            out = self.se(out)
        return self.relu(self.drop_path(out) + identity)

    def last_norm(self) -> nn.Module:
        return self.bn3


class ResNet(ImageClassifier):
    classifier_name = "fc"

    def __init__(self, block: Type[BasicBlock | Bottleneck], layers: Sequence[int], num_classes: int = 1000,
                 in_chans: int = 3, zero_init_residual: bool = False, groups: int = 1, width_per_group: int = 64,
                 replace_stride_with_dilation: Sequence[bool] | None = None, output_stride: int | None = None,
                 norm_layer: NormLayer | None = None, stride_in_1x1: bool = False, drop_rate: float = 0.0,
                 drop_path_rate: float = 0.0, attn_layer: str | AttnLayer | None = None,
                 deform_stages: Sequence[int] = (), deform_version: int = 2, stem: str = "imagenet"):
        super().__init__()
        self.stem_type = check_stem(stem)
        norm_layer = norm_layer or nn.BatchNorm2d
        dilate = _dilation_flags(replace_stride_with_dilation, output_stride)
        deform_stages = tuple(int(s) for s in deform_stages)
        if any(s not in (1, 2, 3, 4) for s in deform_stages):
            raise ValueError(f"deform_stages are stage numbers 1..4 (layer1..layer4), got {deform_stages}")
        if deform_stages and deform_version not in (1, 2):
            raise ValueError(f"deform_version must be 1 or 2, got {deform_version}")
        deform = [deform_version if s in deform_stages else 0 for s in (1, 2, 3, 4)]
        self.inplanes, self.dilation = 64, 1
        self.groups, self.base_width = groups, width_per_group
        small = self.stem_type == "small"
        # The small stem (the CIFAR ResNets of He et al. 2015, sec. 4.2): a 3×3 stride-1 conv and no max-pool, so a
        # 28-32 px image reaches layer4 at 4×4 rather than 1×1.
        self.conv1 = nn.Conv2d(in_chans, 64, kernel_size=3 if small else 7, stride=1 if small else 2,
                               padding=1 if small else 3, bias=False)
        self.bn1 = norm_layer(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.Identity() if small else nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        # Stochastic depth rising linearly over all blocks (timm's schedule); 0 by default, as in torchvision.
        total = sum(layers)
        self._drop_paths = iter([drop_path_rate * i / max(total - 1, 1) for i in range(total)])
        make = partial(self._make_layer, block, norm_layer=norm_layer, stride_in_1x1=stride_in_1x1,
                       attn_layer=_attn_layer(attn_layer))
        self.layer1 = make(64, layers[0], deform_version=deform[0])
        self.layer2 = make(128, layers[1], stride=2, dilate=dilate[0], deform_version=deform[1])
        self.layer3 = make(256, layers[2], stride=2, dilate=dilate[1], deform_version=deform[2])
        self.layer4 = make(512, layers[3], stride=2, dilate=dilate[2], deform_version=deform[3])
        self.num_features = 512 * block.expansion
        self._init_head(num_classes, drop_rate)

        reductions, r = ([1, 1], 1) if small else ([2, 4], 4)
        for d in dilate:
            r = r if d else r * 2
            reductions.append(r)
        channels = [64] + [c * block.expansion for c in (64, 128, 256, 512)]
        modules = ["conv1,bn1", "layer1", "layer2", "layer3", "layer4"]
        self.feature_info = [{"num_chs": c, "reduction": r, "module": m}
                             for c, r, m in zip(channels, reductions, modules)]
        self._init_weights(zero_init_residual)

    def _make_layer(self, block, planes: int, blocks: int, stride: int = 1, dilate: bool = False, *,
                    norm_layer: NormLayer, stride_in_1x1: bool, attn_layer: AttnLayer | None = None,
                    deform_version: int = 0) -> nn.Sequential:
        previous_dilation = self.dilation
        if dilate:
            self.dilation *= stride
            stride = 1
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(conv1x1(self.inplanes, planes * block.expansion, stride),
                                       norm_layer(planes * block.expansion))
        common = dict(groups=self.groups, base_width=self.base_width, norm_layer=norm_layer,
                      stride_in_1x1=stride_in_1x1, attn_layer=attn_layer, deform_version=deform_version)
        layers = [block(self.inplanes, planes, stride, downsample, dilation=previous_dilation,
                        drop_path=next(self._drop_paths), **common)]
        self.inplanes = planes * block.expansion
        layers += [block(self.inplanes, planes, dilation=self.dilation, drop_path=next(self._drop_paths), **common)
                   for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def _init_weights(self, zero_init_residual: bool) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        for m in self.modules():
            if isinstance(m, DeformConv2d):
                m.reset_offset()  # the loop above gave the offset predictors a random init: back to "no deformation"
        if zero_init_residual:
            # Each residual branch starts as identity, which helps very deep nets train (Goyal et al. 2017).
            for m in self.modules():
                if isinstance(m, (BasicBlock, Bottleneck)) and getattr(m.last_norm(), "weight", None) is not None:
                    nn.init.zeros_(m.last_norm().weight)

    def replaced_stem_keys(self) -> list[str]:
        return ["conv1.weight"] if self.stem_type == "small" else []

    def keys_kept_if_missing(self) -> list[str]:
        """Offset predictors of deformable stages: plain ResNet weights load without them (``load_weights``)."""
        return offset_keys(self)

    def forward_levels(self, x: torch.Tensor, last: int | None = None) -> list[torch.Tensor]:
        last = 4 if last is None else last
        x = self.relu(self.bn1(self.conv1(x)))
        outs = [x]
        for i, layer in enumerate((self.layer1, self.layer2, self.layer3, self.layer4), start=1):
            if i > last:
                break
            if i == 1:
                x = self.maxpool(x)
            x = layer(x)
            outs.append(x)
        return outs

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))


CFG = imagenet_cfg(224, classifier="fc")


def _dilation_flags(replace_stride_with_dilation: Sequence[bool] | None, output_stride: int | None) -> list[bool]:
    if replace_stride_with_dilation is not None and output_stride is not None:
        raise ValueError("give replace_stride_with_dilation or output_stride, not both")
    if output_stride is not None:
        if output_stride not in (8, 16, 32):
            raise ValueError(f"output_stride must be 8, 16 or 32, got {output_stride}")
        return {32: [False, False, False], 16: [False, False, True], 8: [False, True, True]}[output_stride]
    flags = list(replace_stride_with_dilation or [False, False, False])
    if len(flags) != 3:
        raise ValueError("replace_stride_with_dilation needs 3 booleans (layer2, layer3, layer4)")
    return flags


@register_model(cfg=CFG)
def resnet18(**kwargs) -> ResNet:
    return ResNet(BasicBlock, [2, 2, 2, 2], **kwargs)


@register_model(cfg=CFG)
def resnet34(**kwargs) -> ResNet:
    return ResNet(BasicBlock, [3, 4, 6, 3], **kwargs)


@register_model(cfg=CFG)
def resnet50(**kwargs) -> ResNet:
    return ResNet(Bottleneck, [3, 4, 6, 3], **kwargs)


@register_model(cfg=CFG)
def resnet101(**kwargs) -> ResNet:
    return ResNet(Bottleneck, [3, 4, 23, 3], **kwargs)


@register_model(cfg=CFG)
def resnet152(**kwargs) -> ResNet:
    return ResNet(Bottleneck, [3, 8, 36, 3], **kwargs)


@register_model(cfg=CFG)
def resnext50_32x4d(**kwargs) -> ResNet:
    return ResNet(Bottleneck, [3, 4, 6, 3], groups=32, width_per_group=4, **kwargs)


@register_model(cfg=CFG)
def wide_resnet50_2(**kwargs) -> ResNet:
    return ResNet(Bottleneck, [3, 4, 6, 3], width_per_group=128, **kwargs)
