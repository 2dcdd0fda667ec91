"""AlexNet (Krizhevsky, Sutskever, Hinton 2012) in torchvision's single-tower variant ("one weird trick", 64-192-384
channels, no local response normalisation), and the conv-features + 3-layer-MLP classifier it shares with VGG.

Keys are torchvision's (``features.N`` / ``classifier.N``), so its weights load unrenamed. Levels are slices of
``features``, each ending at one stride; the head is adaptive pooling to a fixed grid, then
``classifier = Dropout, Linear, ReLU, Dropout, Linear, ReLU, Linear`` (VGG: Linear, ReLU, Dropout ×2, Linear).
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn

from backbonekit.models.base import ImageClassifier, check_stem
from backbonekit.models.registry import imagenet_cfg, register_model


class MLPHeadClassifier(ImageClassifier):
    """``features`` (an nn.Sequential cut into levels) → ``avgpool`` to a fixed grid → ``classifier`` MLP.

    ``forward_features`` is the conv features; ``forward_head(pre_logits=True)`` the MLP's output before its last
    Linear (``num_features`` = 4096); ``reset_classifier(n)`` replaces only that last Linear (``0``: Identity, the
    model then returns the 4096 pre-logits).
    """

    classifier_name = "classifier.6"  # the key prefix of the final Linear (torchvision's)
    head_modules = ("avgpool", "classifier")  # what backbone mode removes
    features: nn.Sequential
    classifier: nn.Sequential
    avgpool: nn.Module

    def _set_levels(self, bounds: Sequence[int], channels: Sequence[int], reductions: Sequence[int]) -> None:
        """Level i is ``features[bounds[i]:bounds[i + 1]]``."""
        self._level_slices = list(zip(bounds[:-1], bounds[1:]))
        self.feature_info = [{"num_chs": c, "reduction": r, "module": ",".join(f"features.{j}" for j in range(a, b))}
                             for (a, b), c, r in zip(self._level_slices, channels, reductions)]

    def forward_levels(self, x: torch.Tensor, last: int | None = None) -> list[torch.Tensor]:
        last = len(self._level_slices) - 1 if last is None else last
        outs = []
        for a, b in self._level_slices[: last + 1]:
            for j in range(a, b):
                x = self.features[j](x)
            outs.append(x)
        return outs

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = torch.flatten(self.avgpool(x), 1)
        x = self.classifier[:-1](x)
        return x if pre_logits else self.classifier[-1](x)

    def get_classifier(self) -> nn.Module:
        return self.classifier[-1]

    def reset_classifier(self, num_classes: int) -> None:
        self.num_classes = num_classes
        self.classifier[-1] = nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()


class AlexNet(MLPHeadClassifier):
    def __init__(self, num_classes: int = 1000, in_chans: int = 3, drop_rate: float = 0.5, stem: str = "imagenet"):
        super().__init__()
        self.stem_type = check_stem(stem)
        small = self.stem_type == "small"
        self.num_classes, self.drop_rate, self.num_features = num_classes, drop_rate, 4096
        # The 11×11/4 conv and three unpadded 3×3/2 pools need at least 63 px. The small stem is a 5×5 stride-1 conv
        # (the kernel of Krizhevsky's own CIFAR-10 nets) and padded pools, so each halves the map exactly (ceil):
        # 28 px gives 28, 14, 7, 4.
        first = (nn.Conv2d(in_chans, 64, kernel_size=5, stride=1, padding=2) if small
                 else nn.Conv2d(in_chans, 64, kernel_size=11, stride=4, padding=2))

        def pool() -> nn.MaxPool2d:
            return nn.MaxPool2d(kernel_size=3, stride=2, padding=1 if small else 0)
        self.features = nn.Sequential(
            first, nn.ReLU(inplace=True),                                                         # 0-1: stride 4
            pool(),
            nn.Conv2d(64, 192, kernel_size=5, padding=2), nn.ReLU(inplace=True),                  # 2-4: stride 8
            pool(),
            nn.Conv2d(192, 384, kernel_size=3, padding=1), nn.ReLU(inplace=True),                 # 5-11: stride 16
            nn.Conv2d(384, 256, kernel_size=3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(256, 256, kernel_size=3, padding=1), nn.ReLU(inplace=True),
            pool(),                                                                               # 12: stride 32
        )
        self.avgpool = nn.AdaptiveAvgPool2d((6, 6))
        self.classifier = nn.Sequential(
            nn.Dropout(p=drop_rate), nn.Linear(256 * 6 * 6, 4096), nn.ReLU(inplace=True),
            nn.Dropout(p=drop_rate), nn.Linear(4096, 4096), nn.ReLU(inplace=True),
            nn.Linear(4096, num_classes) if num_classes > 0 else nn.Identity(),
        )
        # Reductions are nominal: the unpadded 11×11/4 conv and 3×3/2 pools give 55, 27, 13, 6 at 224 (not 56 …).
        # The smallest input that survives every pool is 63×63.
        self._set_levels([0, 2, 5, 12, 13], [64, 192, 256, 256], [1, 2, 4, 8] if small else [4, 8, 16, 32])
        # torchvision keeps PyTorch's default initialisation for AlexNet.

    def replaced_stem_keys(self) -> list[str]:
        return ["features.0.weight", "features.0.bias"] if self.stem_type == "small" else []


@register_model(cfg=imagenet_cfg(224, classifier="classifier.6"))
def alexnet(**kwargs) -> AlexNet:
    return AlexNet(**kwargs)
