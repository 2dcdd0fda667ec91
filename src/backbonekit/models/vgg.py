"""VGG (Simonyan & Zisserman 2014), configurations A/B/D/E = VGG-11/13/16/19, with or without BatchNorm, as in
torchvision: 3×3 convs (+ BN) + ReLU, 2×2 max-pools, adaptive pooling to 7×7, a 4096-4096 MLP classifier.

Keys are torchvision's (``features.N``, ``classifier.0/3/6``), so its weights load unrenamed. Level i holds the convs
at stride 2^i (the pool before them included), the last level the final pool alone (stride 32), so that
``create_backbone`` serves strides 4…32 like any other family.
"""
from __future__ import annotations

import torch.nn as nn

from backbonekit.models.alexnet import MLPHeadClassifier
from backbonekit.models.base import check_stem
from backbonekit.models.registry import imagenet_cfg, register_model

# Output channels of each 3×3 conv, "M" a 2×2 max-pool.
CONFIGS = {
    11: [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    13: [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    16: [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    19: [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"],
}


class VGG(MLPHeadClassifier):
    def __init__(self, depth: int = 16, batch_norm: bool = False, num_classes: int = 1000, in_chans: int = 3,
                 drop_rate: float = 0.5, stem: str = "imagenet"):
        super().__init__()
        self.stem_type = check_stem(stem)
        if depth not in CONFIGS:
            raise ValueError(f"VGG depth must be one of {sorted(CONFIGS)}, got {depth}")
        self.num_classes, self.drop_rate, self.num_features = num_classes, drop_rate, 4096
        layers, pools, channels, ch = [], [], [], in_chans
        for v in CONFIGS[depth]:
            if v == "M":
                # Five 2×2 pools leave nothing of a 28 px image (28, 14, 7, 3, 1, 0). The small stem leaves out the
                # first (block 2 runs at full size, as block 1): 28 px ends at 1×1, 32 px at 2×2; no weight changes.
                first = not pools
                pools.append(len(layers))
                channels.append(ch)
                small_first = first and self.stem_type == "small"
                layers.append(nn.Identity() if small_first else nn.MaxPool2d(kernel_size=2, stride=2))
                continue
            layers.append(nn.Conv2d(ch, v, kernel_size=3, padding=1))
            if batch_norm:
                layers.append(nn.BatchNorm2d(v))
            layers.append(nn.ReLU(inplace=True))
            ch = v
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        self.classifier = nn.Sequential(
            nn.Linear(512 * 7 * 7, 4096), nn.ReLU(True), nn.Dropout(p=drop_rate),
            nn.Linear(4096, 4096), nn.ReLU(True), nn.Dropout(p=drop_rate),
            nn.Linear(4096, num_classes) if num_classes > 0 else nn.Identity(),
        )
        # Levels end before each pool (strides 1, 2, 4, 8, 16), the last is the final pool (stride 32).
        bounds = [0] + pools + [len(layers)]
        reductions = [1, 1, 2, 4, 8, 16] if self.stem_type == "small" else [1, 2, 4, 8, 16, 32]
        self._set_levels(bounds, channels + [channels[-1]], reductions)
        self._init_weights()

    def _init_weights(self) -> None:  # torchvision's
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)


CFG = imagenet_cfg(224, classifier="classifier.6")


@register_model(cfg=CFG)
def vgg11(**kwargs) -> VGG:
    return VGG(11, False, **kwargs)


@register_model(cfg=CFG)
def vgg13(**kwargs) -> VGG:
    return VGG(13, False, **kwargs)


@register_model(cfg=CFG)
def vgg16(**kwargs) -> VGG:
    return VGG(16, False, **kwargs)


@register_model(cfg=CFG)
def vgg19(**kwargs) -> VGG:
    return VGG(19, False, **kwargs)


@register_model(cfg=CFG)
def vgg11_bn(**kwargs) -> VGG:
    return VGG(11, True, **kwargs)


@register_model(cfg=CFG)
def vgg13_bn(**kwargs) -> VGG:
    return VGG(13, True, **kwargs)


@register_model(cfg=CFG)
def vgg16_bn(**kwargs) -> VGG:
    return VGG(16, True, **kwargs)


@register_model(cfg=CFG)
def vgg19_bn(**kwargs) -> VGG:
    return VGG(19, True, **kwargs)
