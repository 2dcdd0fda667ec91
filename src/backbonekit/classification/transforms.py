"""Image pipelines (torchvision.transforms.v2) and batch-level CutMix / MixUp."""
from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch.utils.data import default_collate
from torchvision.transforms import v2

from backbonekit.errors import ConfigError

AUGMENTATIONS = ("none", "basic", "randaugment")


def build_transforms(image_size: int, *, train: bool, augment: str = "basic", mean: Sequence[float],
                     std: Sequence[float], flip: bool = True) -> v2.Compose:
    """uint8 image (PIL or tensor) → normalised float tensor C×H×W.

    Augmentation runs on uint8 (what RandAugment expects and cheaper); small images (≤ 64 px, CIFAR, digits) get
    the CIFAR recipe of padding and random crops rather than a random-resized crop that would destroy them.
    ``flip=False`` for data where mirroring changes the class (digits).
    """
    if augment not in AUGMENTATIONS:
        raise ConfigError(f"--augment must be one of {', '.join(AUGMENTATIONS)}, got {augment!r}")
    ops: list[Callable] = [v2.ToImage()]
    if train and augment != "none":
        if image_size <= 64:
            ops += [v2.Resize((image_size, image_size), antialias=True),
                    v2.RandomCrop(image_size, padding=image_size // 8, padding_mode="reflect")]
        else:
            ops += [v2.RandomResizedCrop(image_size, scale=(0.35, 1.0), antialias=True)]
        if flip:
            ops.append(v2.RandomHorizontalFlip())
        if augment == "randaugment":
            ops.append(v2.RandAugment())
    else:
        ops += [v2.Resize((image_size, image_size), antialias=True)]
    ops += [v2.ToDtype(torch.float32, scale=True), v2.Normalize(list(mean), list(std))]
    return v2.Compose(ops)


def mixing_collate(num_classes: int, cutmix_alpha: float = 0.0, mixup_alpha: float = 0.0) -> Callable | None:
    """A collate_fn that applies CutMix and/or MixUp to whole batches (soft labels N×C), or None when both are off."""
    mixers = []
    if cutmix_alpha > 0:
        mixers.append(v2.CutMix(num_classes=num_classes, alpha=cutmix_alpha))
    if mixup_alpha > 0:
        mixers.append(v2.MixUp(num_classes=num_classes, alpha=mixup_alpha))
    if not mixers:
        return None
    mix = mixers[0] if len(mixers) == 1 else v2.RandomChoice(mixers)
    return _MixingCollate(mix)


class _MixingCollate:
    # A class rather than a closure so DataLoader workers and DDP spawn can pickle it.
    def __init__(self, mix: Callable):
        self.mix = mix

    def __call__(self, batch):
        images, labels = default_collate(batch)
        return self.mix(images, labels)
