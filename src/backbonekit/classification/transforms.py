"""Image pipelines (torchvision.transforms.v2) and batch-level CutMix / MixUp."""
from __future__ import annotations

from typing import Callable

import torch
from torch.utils.data import default_collate
from torchvision.transforms import v2

from backbonekit.errors import ConfigError

AUGMENTATIONS = ("none", "basic", "randaugment")
SMALL_IMAGE = 64        # at or below this size (CIFAR, digits) train with pad-and-crop instead of resized crops
EVAL_CROP_FRACTION = 0.875  # larger images: resize to size / 0.875, centre-crop size (torchvision's and timm's recipe)


def build_transforms(image_size: int, *, train: bool, augment: str = "basic", flip: bool = True,
                     crop_padding: int | None = None, random_erasing: float = 0.0) -> v2.Compose:
    """uint8 image (PIL or tensor C×H×W) → uint8 tensor 3×``image_size``×``image_size``; the task normalises it
    with the model's own statistics (``backbonekit.nn.normalize``).

    Augmentation runs on uint8, which RandAugment expects and which is cheaper. ``basic`` is a random-resized crop
    (60–100% of the area) for large images, and the CIFAR recipe of reflect-padding by 1/8 and a random crop for small
    ones, where a resized crop would throw away too much; then a horizontal flip. ``randaugment`` adds RandAugment.
    ``flip=False`` for data where mirroring changes the class (digits).

    ``crop_padding``: the pad of pad-and-crop in pixels (default 1/8 of the size; Fashion-MNIST's usual recipe pads
    4 at 28 px). ``random_erasing``: the probability of erasing one rectangle (Zhong et al. 2020: 2-40% of the
    image, aspect 0.3-3.3), filled with mid-grey 127 as FixMatch's Cutout here (random noise would need floats).
    """
    if augment not in AUGMENTATIONS:
        raise ConfigError(f"--augment must be one of {', '.join(AUGMENTATIONS)}, got {augment!r}")
    if image_size < 1:
        raise ConfigError(f"--image-size must be at least 1, got {image_size}")
    if crop_padding is not None and not 0 <= crop_padding < image_size:
        raise ConfigError(f"--crop-padding must be between 0 and the image size {image_size}, got {crop_padding}")
    if not 0 <= random_erasing <= 1:
        raise ConfigError(f"--random-erasing is a probability between 0 and 1, got {random_erasing}")
    ops: list[Callable] = [v2.ToImage()]
    if train and augment != "none":
        ops += _random_crop(image_size, crop_padding)
        if flip:
            ops.append(v2.RandomHorizontalFlip())
        if augment == "randaugment":
            ops.append(v2.RandAugment())
        if random_erasing > 0:
            ops.append(v2.RandomErasing(p=random_erasing, scale=(0.02, 0.4), ratio=(0.3, 3.3), value=127))
    else:
        ops += _centre_crop(image_size)
    return v2.Compose(ops)


def strong_transforms(image_size: int, *, flip: bool = True) -> v2.Compose:
    """FixMatch's strong view: the weak view (``basic``: pad-and-crop or resized crop, flip) + RandAugment + Cutout
    (one erased patch, 2–25% of the image, filled grey), uint8 in and out."""
    ops = list(build_transforms(image_size, train=True, augment="randaugment", flip=flip).transforms)
    ops.append(v2.RandomErasing(p=1.0, scale=(0.02, 0.25), ratio=(0.5, 2.0), value=127))
    return v2.Compose(ops)


def _random_crop(image_size: int, padding: int | None = None) -> list[Callable]:
    if image_size <= SMALL_IMAGE or padding is not None:
        padding = image_size // 8 if padding is None else padding
        return [v2.Resize(image_size), v2.RandomCrop(image_size, padding=padding, padding_mode="reflect")]
    return [v2.RandomResizedCrop(image_size, scale=(0.6, 1.0))]


def _centre_crop(image_size: int) -> list[Callable]:
    # Small images are seen whole in training (pad-and-crop), so they are seen whole here too.
    resize = image_size if image_size <= SMALL_IMAGE else round(image_size / EVAL_CROP_FRACTION)
    return [v2.Resize(resize), v2.CenterCrop(image_size)]


def mixing_collate(num_classes: int, cutmix_alpha: float = 0.0, mixup_alpha: float = 0.0) -> Callable | None:
    """A collate_fn that applies CutMix and/or MixUp (one, chosen at random, per batch) to whole batches, giving
    soft labels N×C; None when both alphas are 0."""
    if cutmix_alpha < 0 or mixup_alpha < 0:
        raise ConfigError(f"--cutmix and --mixup must be ≥ 0, got {cutmix_alpha} and {mixup_alpha}")
    mixers = []
    if cutmix_alpha > 0:
        mixers.append(v2.CutMix(num_classes=num_classes, alpha=cutmix_alpha))
    if mixup_alpha > 0:
        mixers.append(v2.MixUp(num_classes=num_classes, alpha=mixup_alpha))
    if not mixers:
        return None
    return MixingCollate(mixers[0] if len(mixers) == 1 else v2.RandomChoice(mixers))


class MixingCollate:
    """``default_collate`` followed by a batch-level mix."""

    # A class rather than a closure so DataLoader workers and DDP spawn can pickle it.
    def __init__(self, mix: Callable):
        self.mix = mix

    def __call__(self, batch: list[tuple[torch.Tensor, int]]) -> tuple[torch.Tensor, torch.Tensor]:
        images, labels = default_collate(batch)
        # Mixed pixels are not integers: mix in 0–1 floats, which the input contract takes as they are.
        return self.mix(images.float().div_(255), labels)
