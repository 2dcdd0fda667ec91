"""DenseNet-BC (Huang et al. 2017) as torchvision builds it: dense blocks of pre-activation bottleneck layers
(BN → ReLU → 1×1 conv to 4·k → BN → ReLU → 3×3 conv to k), each reading the concatenation of all earlier outputs;
transitions (BN → ReLU → 1×1 conv halving the channels → 2×2 average pool) between blocks.

Keys are torchvision's (``features.denseblockN.denselayerM.norm1`` …); its old checkpoints (``norm.1`` …) are
renamed on load, as torchvision's own loader does. ``memory_efficient=True`` recomputes each layer's
concatenation + BN + ReLU + 1×1 conv in the backward pass (``torch.utils.checkpoint``) instead of storing it: the
memory of a block grows linearly rather than quadratically with its depth, for ~15-20% more time per step.

Pre-activation means every BatchNorm comes *before* a ReLU and its conv, so there is no conv → BN pair for
``fuse_batchnorm`` to fold (a BN followed by ReLU cannot be absorbed into the next conv) except the stem
(``conv0`` → ``norm0``): it folds 1 of the 121 BatchNorms of DenseNet-121.
"""
from __future__ import annotations

import re
from collections import OrderedDict

import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.utils.checkpoint as cp

from backbonekit.models.base import ImageClassifier, check_stem
from backbonekit.models.registry import imagenet_cfg, register_model
from backbonekit.weights import StateDict, register_layout


class DenseLayer(nn.Module):
    def __init__(self, in_ch: int, growth_rate: int, bn_size: int, drop_rate: float, memory_efficient: bool = False):
        super().__init__()
        self.norm1 = nn.BatchNorm2d(in_ch)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv1 = nn.Conv2d(in_ch, bn_size * growth_rate, kernel_size=1, stride=1, bias=False)
        self.norm2 = nn.BatchNorm2d(bn_size * growth_rate)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(bn_size * growth_rate, growth_rate, kernel_size=3, stride=1, padding=1, bias=False)
        self.drop_rate = float(drop_rate)
        self.memory_efficient = memory_efficient

    def bottleneck(self, *inputs: torch.Tensor) -> torch.Tensor:
        return self.conv1(self.relu1(self.norm1(torch.cat(inputs, 1))))

    def forward(self, inputs: list[torch.Tensor]) -> torch.Tensor:
        if self.memory_efficient and torch.is_grad_enabled() and any(t.requires_grad for t in inputs):
            out = cp.checkpoint(self.bottleneck, *inputs, use_reentrant=False)
        else:
            out = self.bottleneck(*inputs)
        out = self.conv2(self.relu2(self.norm2(out)))
        if self.drop_rate > 0:
            out = F.dropout(out, p=self.drop_rate, training=self.training)
        return out


class DenseBlock(nn.ModuleDict):
    def __init__(self, num_layers: int, in_ch: int, bn_size: int, growth_rate: int, drop_rate: float,
                 memory_efficient: bool = False):
        super().__init__()
        for i in range(num_layers):
            self.add_module(f"denselayer{i + 1}", DenseLayer(in_ch + i * growth_rate, growth_rate, bn_size, drop_rate,
                                                             memory_efficient))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = [x]
        for layer in self.values():
            features.append(layer(features))
        return torch.cat(features, 1)


class Transition(nn.Sequential):
    def __init__(self, in_ch: int, out_ch: int):
        super().__init__()
        self.norm = nn.BatchNorm2d(in_ch)
        self.relu = nn.ReLU(inplace=True)
        self.conv = nn.Conv2d(in_ch, out_ch, kernel_size=1, stride=1, bias=False)
        self.pool = nn.AvgPool2d(kernel_size=2, stride=2)


class DenseNet(ImageClassifier):
    """``drop_rate`` is the dropout before the classifier (0, as torchvision); ``layer_drop_rate`` torchvision's
    ``drop_rate``, the dropout after every dense layer."""

    classifier_name = "classifier"

    def __init__(self, growth_rate: int = 32, block_config: tuple[int, ...] = (6, 12, 24, 16),
                 num_init_features: int = 64, bn_size: int = 4, num_classes: int = 1000, in_chans: int = 3,
                 drop_rate: float = 0.0, layer_drop_rate: float = 0.0, memory_efficient: bool = False,
                 stem: str = "imagenet"):
        super().__init__()
        self.stem_type = check_stem(stem)
        small = self.stem_type == "small"
        # The small stem (the DenseNet-BC of the paper's CIFAR runs): a 3×3 stride-1 conv0 and no pool0.
        conv0 = (nn.Conv2d(in_chans, num_init_features, kernel_size=3, stride=1, padding=1, bias=False) if small
                 else nn.Conv2d(in_chans, num_init_features, kernel_size=7, stride=2, padding=3, bias=False))
        layers = OrderedDict([
            ("conv0", conv0),
            ("norm0", nn.BatchNorm2d(num_init_features)),
            ("relu0", nn.ReLU(inplace=True)),
            ("pool0", nn.Identity() if small else nn.MaxPool2d(kernel_size=3, stride=2, padding=1)),
        ])
        levels = [("features.conv0,features.norm0,features.relu0", num_init_features, 1 if small else 2)]
        ch, stride = num_init_features, 1 if small else 4
        for i, num_layers in enumerate(block_config):
            before = "features.pool0" if i == 0 else f"features.transition{i}"
            layers[f"denseblock{i + 1}"] = DenseBlock(num_layers, ch, bn_size, growth_rate, layer_drop_rate,
                                                      memory_efficient)
            ch += num_layers * growth_rate
            names = f"{before},features.denseblock{i + 1}"
            if i != len(block_config) - 1:
                layers[f"transition{i + 1}"] = Transition(ch, ch // 2)
            else:
                layers["norm5"] = nn.BatchNorm2d(ch)
                names += ",features.norm5"
            levels.append((names, ch, stride))
            ch = ch // 2 if i != len(block_config) - 1 else ch
            stride *= 2
        self.features = nn.Sequential(layers)
        self.num_features = levels[-1][1]
        self._init_head(num_classes, drop_rate)
        # Levels 1-3 are a block's raw concatenation (its BN comes with the next transition); the last ends with
        # norm5 and the ReLU torchvision applies before pooling.
        self.feature_info = [{"num_chs": c, "reduction": r, "module": m} for m, c, r in levels]
        for m in self.modules():  # torchvision's initialisation
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.zeros_(m.bias)

    def replaced_stem_keys(self) -> list[str]:
        return ["features.conv0.weight"] if self.stem_type == "small" else []

    def forward_levels(self, x: torch.Tensor, last: int | None = None) -> list[torch.Tensor]:
        last = len(self.feature_info) - 1 if last is None else last
        outs = []
        for i, names in enumerate(self.level_modules()[: last + 1]):
            for name in names:
                x = self.get_submodule(name)(x)
            if i == len(self.feature_info) - 1:
                x = F.relu(x, inplace=True)
            outs.append(x)
        return outs


def _densenet(growth_rate: int, block_config: tuple[int, ...], num_init_features: int, **kwargs) -> DenseNet:
    return DenseNet(growth_rate, block_config, num_init_features, **kwargs)


CFG = imagenet_cfg(224, classifier="classifier")


@register_model(cfg=CFG)
def densenet121(**kwargs) -> DenseNet:
    return _densenet(32, (6, 12, 24, 16), 64, **kwargs)


@register_model(cfg=CFG)
def densenet161(**kwargs) -> DenseNet:
    return _densenet(48, (6, 12, 36, 24), 96, **kwargs)


@register_model(cfg=CFG)
def densenet169(**kwargs) -> DenseNet:
    return _densenet(32, (6, 12, 32, 32), 64, **kwargs)


@register_model(cfg=CFG)
def densenet201(**kwargs) -> DenseNet:
    return _densenet(32, (6, 12, 48, 32), 64, **kwargs)


# torchvision's published DenseNet checkpoints predate the ban on "." in module names: ``denselayer1.norm.1.weight``
# for ``denselayer1.norm1.weight``. Its loader renames them with this pattern; so do we.
_OLD_KEY = re.compile(r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var))$")


def _from_old_torchvision_densenet(sd: StateDict, model: nn.Module) -> StateDict:
    out = {}
    for key, value in sd.items():
        m = _OLD_KEY.match(key)
        out[m.group(1) + m.group(2) if m else key] = value
    return out


register_layout("features.denseblock1.denselayer1.norm.1.weight", "torchvision DenseNet (old checkpoint keys)",
                _from_old_torchvision_densenet)
