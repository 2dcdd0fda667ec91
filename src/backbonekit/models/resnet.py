"""ResNet (He et al. 2015), "v1.5" as in torchvision and timm: the stride of a Bottleneck sits on its 3×3 conv.

Blocks, then the network, then one thin constructor per depth. State-dict keys are torchvision's, so its weights
(and timm's, which share them) load without renaming.
"""
from __future__ import annotations

from functools import partial
from typing import Callable, Sequence, Type

import torch
import torch.nn as nn

from torchvision.ops import StochasticDepth

from backbonekit.models.base import ImageClassifier, imagenet_cfg
from backbonekit.models.registry import register_model

NormLayer = Callable[[int], nn.Module]


def conv3x3(in_ch: int, out_ch: int, stride: int = 1, groups: int = 1, dilation: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=dilation, groups=groups, dilation=dilation, bias=False)


def conv1x1(in_ch: int, out_ch: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_ch, out_ch, 1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None,
                 groups: int = 1, base_width: int = 64, dilation: int = 1, norm_layer: NormLayer = nn.BatchNorm2d,
                 stride_in_1x1: bool = False, drop_path: float = 0.0):
        super().__init__()
        if groups != 1 or base_width != 64:
            raise ValueError("BasicBlock supports only groups=1 and base_width=64")
        self.conv1 = conv3x3(inplanes, planes, stride, dilation=dilation)
        self.bn1 = norm_layer(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes, dilation=dilation)
        self.bn2 = norm_layer(planes)
        self.downsample = downsample
        self.drop_path = StochasticDepth(drop_path, "row") if drop_path > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(self.drop_path(out) + identity)

    def last_norm(self) -> nn.Module:
        return self.bn2


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None,
                 groups: int = 1, base_width: int = 64, dilation: int = 1, norm_layer: NormLayer = nn.BatchNorm2d,
                 stride_in_1x1: bool = False, drop_path: float = 0.0):
        super().__init__()
        width = int(planes * (base_width / 64.0)) * groups
        # v1 (the paper, Caffe weights) strides the first 1×1; v1.5 strides the 3×3. Same keys, different maths.
        stride_1x1, stride_3x3 = (stride, 1) if stride_in_1x1 else (1, stride)
        self.conv1 = conv1x1(inplanes, width, stride_1x1)
        self.bn1 = norm_layer(width)
        self.conv2 = conv3x3(width, width, stride_3x3, groups, dilation)
        self.bn2 = norm_layer(width)
        self.conv3 = conv1x1(width, planes * self.expansion)
        self.bn3 = norm_layer(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.drop_path = StochasticDepth(drop_path, "row") if drop_path > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(self.drop_path(out) + identity)

    def last_norm(self) -> nn.Module:
        return self.bn3


class ResNet(ImageClassifier):
    classifier_name = "fc"

    def __init__(self, block: Type[BasicBlock | Bottleneck], layers: Sequence[int], num_classes: int = 1000,
                 in_chans: int = 3, zero_init_residual: bool = False, groups: int = 1, width_per_group: int = 64,
                 replace_stride_with_dilation: Sequence[bool] | None = None, output_stride: int | None = None,
                 norm_layer: NormLayer | None = None, stride_in_1x1: bool = False, drop_rate: float = 0.0,
                 drop_path_rate: float = 0.0):
        super().__init__()
        norm_layer = norm_layer or nn.BatchNorm2d
        dilate = _dilation_flags(replace_stride_with_dilation, output_stride)
        self.inplanes, self.dilation = 64, 1
        self.groups, self.base_width = groups, width_per_group
        self.conv1 = nn.Conv2d(in_chans, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = norm_layer(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        # Stochastic depth rising linearly over all blocks (timm's schedule); 0 by default, as in torchvision.
        total = sum(layers)
        self._drop_paths = iter([drop_path_rate * i / max(total - 1, 1) for i in range(total)])
        make = partial(self._make_layer, block, norm_layer=norm_layer, stride_in_1x1=stride_in_1x1)
        self.layer1 = make(64, layers[0])
        self.layer2 = make(128, layers[1], stride=2, dilate=dilate[0])
        self.layer3 = make(256, layers[2], stride=2, dilate=dilate[1])
        self.layer4 = make(512, layers[3], stride=2, dilate=dilate[2])
        self.num_features = 512 * block.expansion
        self._init_head(num_classes, drop_rate)

        reductions, r = [2, 4], 4
        for d in dilate:
            r = r if d else r * 2
            reductions.append(r)
        channels = [64] + [c * block.expansion for c in (64, 128, 256, 512)]
        modules = ["conv1,bn1", "layer1", "layer2", "layer3", "layer4"]
        self.feature_info = [{"num_chs": c, "reduction": r, "module": m}
                             for c, r, m in zip(channels, reductions, modules)]
        self.pretrained_cfg = imagenet_cfg(224)
        self._init_weights(zero_init_residual)

    def _make_layer(self, block, planes: int, blocks: int, stride: int = 1, dilate: bool = False, *,
                    norm_layer: NormLayer, stride_in_1x1: bool) -> nn.Sequential:
        previous_dilation = self.dilation
        if dilate:
            self.dilation *= stride
            stride = 1
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(conv1x1(self.inplanes, planes * block.expansion, stride),
                                       norm_layer(planes * block.expansion))
        common = dict(groups=self.groups, base_width=self.base_width, norm_layer=norm_layer,
                      stride_in_1x1=stride_in_1x1)
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
        if zero_init_residual:
            # Each residual branch starts as identity, which helps very deep nets train (Goyal et al. 2017).
            for m in self.modules():
                if isinstance(m, (BasicBlock, Bottleneck)) and getattr(m.last_norm(), "weight", None) is not None:
                    nn.init.zeros_(m.last_norm().weight)

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


@register_model
def resnet18(**kwargs) -> ResNet:
    return ResNet(BasicBlock, [2, 2, 2, 2], **kwargs)


@register_model
def resnet34(**kwargs) -> ResNet:
    return ResNet(BasicBlock, [3, 4, 6, 3], **kwargs)


@register_model
def resnet50(**kwargs) -> ResNet:
    return ResNet(Bottleneck, [3, 4, 6, 3], **kwargs)


@register_model
def resnet101(**kwargs) -> ResNet:
    return ResNet(Bottleneck, [3, 4, 23, 3], **kwargs)


@register_model
def resnet152(**kwargs) -> ResNet:
    return ResNet(Bottleneck, [3, 8, 36, 3], **kwargs)


@register_model
def resnext50_32x4d(**kwargs) -> ResNet:
    return ResNet(Bottleneck, [3, 4, 6, 3], groups=32, width_per_group=4, **kwargs)


@register_model
def wide_resnet50_2(**kwargs) -> ResNet:
    return ResNet(Bottleneck, [3, 4, 6, 3], width_per_group=128, **kwargs)
