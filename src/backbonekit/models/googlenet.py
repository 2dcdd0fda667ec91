"""GoogLeNet / Inception v1 (Szegedy et al. 2014) as torchvision builds it: BN after every conv (BasicConv2d,
eps 1e-3), the "5×5" branch with a 3×3 kernel (torchvision's known deviation, kept for its weights), ceil-mode pools.

Keys are torchvision's. ``aux_logits=True`` adds the two auxiliary classifiers (after inception4a and 4d) that
only run in training: a training-mode forward then returns ``GoogLeNetOutputs(logits, aux_logits2, aux_logits1)``
as torchvision does (the paper weights their losses 0.3), otherwise the logits. ``transform_input=True`` maps
ImageNet-normalised input to the (x - 0.5) / 0.5 normalisation torchvision's ImageNet weights were trained on.
Without auxiliary heads (the default, and what torchvision's pretrained model keeps) the model has 6,624,904
parameters; weights that carry them load into it (the heads are dropped, as torchvision's loader does).
"""
from __future__ import annotations

from collections import namedtuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from backbonekit.models.base import ImageClassifier, check_stem
from backbonekit.models.registry import imagenet_cfg, register_model
from backbonekit.weights import StateDict, register_layout

GoogLeNetOutputs = namedtuple("GoogLeNetOutputs", ["logits", "aux_logits2", "aux_logits1"])


class BasicConv2d(nn.Module):
    """conv (no bias) → BN (eps 1e-3) → ReLU. Keys ``conv``/``bn`` (``fuse_batchnorm`` folds them)."""

    def __init__(self, in_ch: int, out_ch: int, **kwargs):
        super().__init__()
        self.conv = nn.Conv2d(in_ch, out_ch, bias=False, **kwargs)
        self.bn = nn.BatchNorm2d(out_ch, eps=0.001)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)), inplace=True)


class Inception(nn.Module):
    def __init__(self, in_ch: int, ch1x1: int, ch3x3red: int, ch3x3: int, ch5x5red: int, ch5x5: int, pool_proj: int):
        super().__init__()
        self.branch1 = BasicConv2d(in_ch, ch1x1, kernel_size=1)
        self.branch2 = nn.Sequential(BasicConv2d(in_ch, ch3x3red, kernel_size=1),
                                     BasicConv2d(ch3x3red, ch3x3, kernel_size=3, padding=1))
        # The paper's 5×5 branch; torchvision (and its weights) use a 3×3 kernel here (pytorch/vision#906).
        self.branch3 = nn.Sequential(BasicConv2d(in_ch, ch5x5red, kernel_size=1),
                                     BasicConv2d(ch5x5red, ch5x5, kernel_size=3, padding=1))
        self.branch4 = nn.Sequential(nn.MaxPool2d(kernel_size=3, stride=1, padding=1, ceil_mode=True),
                                     BasicConv2d(in_ch, pool_proj, kernel_size=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)], 1)


class InceptionAux(nn.Module):
    """Auxiliary classifier: 4×4 average pool → 1×1 conv to 128 → fc1 (1024) → ReLU → dropout → fc2."""

    def __init__(self, in_ch: int, num_classes: int, dropout: float = 0.7):
        super().__init__()
        self.conv = BasicConv2d(in_ch, 128, kernel_size=1)
        self.fc1 = nn.Linear(2048, 1024)
        self.fc2 = nn.Linear(1024, num_classes)
        self.dropout = nn.Dropout(p=dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.flatten(self.conv(F.adaptive_avg_pool2d(x, (4, 4))), 1)
        return self.fc2(self.dropout(F.relu(self.fc1(x), inplace=True)))


# (in, 1×1, 3×3 reduce, 3×3, "5×5" reduce, "5×5", pool projection) of each module.
INCEPTIONS = {
    "inception3a": (192, 64, 96, 128, 16, 32, 32),
    "inception3b": (256, 128, 128, 192, 32, 96, 64),
    "inception4a": (480, 192, 96, 208, 16, 48, 64),
    "inception4b": (512, 160, 112, 224, 24, 64, 64),
    "inception4c": (512, 128, 128, 256, 24, 64, 64),
    "inception4d": (512, 112, 144, 288, 32, 64, 64),
    "inception4e": (528, 256, 160, 320, 32, 128, 128),
    "inception5a": (832, 256, 160, 320, 32, 128, 128),
    "inception5b": (832, 384, 192, 384, 48, 128, 128),
}
# The top-level modules of each level, in order; each level ends at one stride (the pools are ceil-mode, so at a
# size that is not a multiple of 32 a level's grid is the ceiling of size / stride).
LEVELS = (
    ("conv1",),
    ("maxpool1", "conv2", "conv3"),
    ("maxpool2", "inception3a", "inception3b"),
    ("maxpool3", "inception4a", "inception4b", "inception4c", "inception4d", "inception4e"),
    ("maxpool4", "inception5a", "inception5b"),
)
AUX_AFTER = {"inception4a": "aux1", "inception4d": "aux2"}


class GoogLeNet(ImageClassifier):
    classifier_name = "fc"

    def __init__(self, num_classes: int = 1000, in_chans: int = 3, aux_logits: bool = False,
                 transform_input: bool = False, drop_rate: float = 0.2, dropout_aux: float = 0.7,
                 init_weights: bool = True, stem: str = "imagenet"):
        super().__init__()
        self.stem_type = check_stem(stem)
        small = self.stem_type == "small"
        self.transform_input = transform_input
        self.dropout_aux = dropout_aux
        # The small stem (as the CIFAR GoogLeNets): a 3×3 stride-1 conv1 and neither of the two pools before
        # inception3a, which then sees a 28 px image at 28×28, the grid it sees at 224 px.
        self.conv1 = (BasicConv2d(in_chans, 64, kernel_size=3, stride=1, padding=1) if small
                      else BasicConv2d(in_chans, 64, kernel_size=7, stride=2, padding=3))
        self.maxpool1 = nn.Identity() if small else nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.conv2 = BasicConv2d(64, 64, kernel_size=1)
        self.conv3 = BasicConv2d(64, 192, kernel_size=3, padding=1)
        self.maxpool2 = nn.Identity() if small else nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.maxpool3 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.maxpool4 = nn.MaxPool2d(2, stride=2, ceil_mode=True)
        for name, spec in INCEPTIONS.items():
            self.add_module(name, Inception(*spec))
        self.aux_logits = aux_logits and num_classes > 0
        self.aux1 = InceptionAux(512, num_classes, dropout_aux) if self.aux_logits else None
        self.aux2 = InceptionAux(528, num_classes, dropout_aux) if self.aux_logits else None
        self.num_features = 1024
        self._init_head(num_classes, drop_rate)
        self.feature_info = [{"num_chs": c, "reduction": r, "module": ",".join(m)}
                             for c, r, m in zip((64, 192, 480, 832, 1024),
                                                (1, 1, 1, 2, 4) if small else (2, 4, 8, 16, 32), LEVELS)]
        if init_weights:  # torchvision's
            for m in self.modules():
                if isinstance(m, (nn.Conv2d, nn.Linear)):
                    nn.init.trunc_normal_(m.weight, mean=0.0, std=0.01, a=-2, b=2)
                elif isinstance(m, nn.BatchNorm2d):
                    nn.init.ones_(m.weight)
                    nn.init.zeros_(m.bias)

    def replaced_stem_keys(self) -> list[str]:
        return ["conv1.conv.weight"] if self.stem_type == "small" else []

    def _transform_input(self, x: torch.Tensor) -> torch.Tensor:
        if not self.transform_input:
            return x
        mean, std = torch.tensor((0.485, 0.456, 0.406)), torch.tensor((0.229, 0.224, 0.225))
        scale = (std / 0.5).to(x).view(1, 3, 1, 1)
        shift = ((mean - 0.5) / 0.5).to(x).view(1, 3, 1, 1)
        return x * scale + shift

    def _levels(self, x: torch.Tensor, last: int, aux: list | None = None) -> list[torch.Tensor]:
        x = self._transform_input(x)
        outs = []
        for names in LEVELS[: last + 1]:
            for name in names:
                x = getattr(self, name)(x)
                if aux is not None and name in AUX_AFTER:
                    aux.append(getattr(self, AUX_AFTER[name])(x))
            outs.append(x)
        return outs

    def forward_levels(self, x: torch.Tensor, last: int | None = None) -> list[torch.Tensor]:
        return self._levels(x, len(LEVELS) - 1 if last is None else last)

    def forward(self, x: torch.Tensor):
        if not (self.training and self.aux_logits):
            return super().forward(x)
        aux: list[torch.Tensor] = []
        logits = self.forward_head(self._levels(x, len(LEVELS) - 1, aux)[-1])
        return GoogLeNetOutputs(logits, aux[1], aux[0])

    def reset_classifier(self, num_classes: int) -> None:
        """Replace ``fc`` and the auxiliary heads' ``fc2`` (``0`` removes the auxiliary heads altogether)."""
        super().reset_classifier(num_classes)
        if num_classes <= 0:
            self.aux1 = self.aux2 = None
            self.aux_logits = False
        elif self.aux_logits:
            for head in (self.aux1, self.aux2):
                head.fc2 = nn.Linear(head.fc2.in_features, num_classes)


@register_model(cfg=imagenet_cfg(224, classifier="fc"))
def googlenet(**kwargs) -> GoogLeNet:
    return GoogLeNet(**kwargs)


def _from_torchvision_googlenet(sd: StateDict, model: nn.Module) -> StateDict:
    """Same names as ours; drop auxiliary heads the model does not have (torchvision's loader does the same), and
    keep the model's own auxiliary classifiers where the class count differs (as ``load_weights`` does for ``fc``)."""
    if not isinstance(model, GoogLeNet):
        return dict(sd)
    if model.aux1 is None:
        return {k: v for k, v in sd.items() if not k.startswith(("aux1.", "aux2."))}
    out, own = dict(sd), model.state_dict()
    for key in [k for k in own if k.startswith(("aux1.fc2.", "aux2.fc2."))]:
        if key in out and out[key].shape != own[key].shape:
            out[key] = own[key]
    return out


register_layout("inception3a.branch1.conv.weight", "torchvision GoogLeNet", _from_torchvision_googlenet)
