"""The model API every architecture shares (timm's surface, our code).

A model is a list of *levels* (the stem and stages, each ending at one output stride) followed by a head.
``feature_info[i]`` describes level ``i``; ``forward_levels`` returns their outputs, which is all that
``create_backbone`` needs to serve any architecture to a detector or transformer.
"""
from __future__ import annotations

import torch
import torch.nn as nn


class ImageClassifier(nn.Module):
    """Base class: subclasses build ``levels`` (an nn.ModuleList-compatible view) and set the attributes below."""

    classifier_name: str = "classifier"  # attribute holding the final nn.Linear
    num_classes: int
    num_features: int                     # channels entering the classifier
    drop_rate: float
    feature_info: list[dict]              # per level: num_chs, reduction, module (names of its modules)
    pretrained_cfg: dict                  # input_size, mean, std, interpolation, crop_pct
    stem_type: str = "imagenet"           # stem="small": the first downsampling left out, for 28-32 px images

    def replaced_stem_keys(self) -> list[str]:
        """State-dict keys of the layers a small stem replaces. ImageNet weights do not fit them (a 7×7 kernel where
        the small stem has 3×3), so ``load_weights`` keeps their fresh initialisation and says so."""
        return []

    def level_modules(self) -> list[list[str]]:
        """Names of the top-level modules that make up each level, in order (used to freeze stages)."""
        return [info["module"].split(",") for info in self.feature_info]

    def forward_levels(self, x: torch.Tensor, last: int | None = None) -> list[torch.Tensor]:
        """Outputs of levels 0..last (all when ``last`` is None)."""
        raise NotImplementedError

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_levels(x)[-1]

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = torch.flatten(self.global_pool(x), 1)
        x = self.head_drop(x)
        return x if pre_logits else self.get_classifier()(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def get_classifier(self) -> nn.Module:
        return getattr(self, self.classifier_name)

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the classifier with a freshly initialised one (``0`` removes it: the model returns pooled features)."""
        self.num_classes = num_classes
        setattr(self, self.classifier_name, _make_classifier(self.num_features, num_classes))

    def _init_head(self, num_classes: int, drop_rate: float) -> None:
        self.num_classes = num_classes
        self.drop_rate = drop_rate
        self.global_pool = nn.AdaptiveAvgPool2d(1)
        self.head_drop = nn.Dropout(drop_rate) if drop_rate > 0 else nn.Identity()
        setattr(self, self.classifier_name, _make_classifier(self.num_features, num_classes))


STEMS = ("imagenet", "small")


def check_stem(stem: str) -> str:
    if stem not in STEMS:
        raise ValueError(f"stem must be one of {', '.join(STEMS)}, got {stem!r}")
    return stem


def _make_classifier(num_features: int, num_classes: int) -> nn.Module:
    if num_classes <= 0:
        return nn.Identity()
    fc = nn.Linear(num_features, num_classes)
    return fc
