"""Checks of a train command's settings that need no data and no model, run before anything slow (data indexing,
batch-size trials, building a network): each bad value is one ``ConfigError`` naming the flag. (Whether a model
name is of the right kind is checked by each task's command: ``models.registry.require_kind``.)"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from backbonekit.errors import ConfigError
from backbonekit.io.output import output_folder
from backbonekit.training.train_args import check_image_size

# Files a command reads: a missing one is reported now, not after minutes of batch-size trials.
INPUT_FILES = ("checkpoint", "pretrained", "pretrained_backbone", "teacher")
RUN_FILES = ("best.ckpt", "last.ckpt", "best.safetensors")


def check_train_settings(args: argparse.Namespace, command: str) -> None:
    _check_numbers(args)
    _check_scale_range(args)
    _check_paths(args)
    _check_start_weights(args, command)
    _check_devices(args)


def _check_start_weights(args: argparse.Namespace, command: str) -> None:
    """A run's checkpoint given as start weights must be of the task that fits: a classifier's checkpoint as a
    detector's --pretrained would only fail later, as hundreds of missing keys."""
    from backbonekit.training.checkpoint_io import run_checkpoint_task  # torch: only when a train command runs

    task = command.split()[-1] if command.split()[-1] in ("classify", "detect", "sequence") else "classify"
    fits = {"pretrained": task, "pretrained_backbone": "classify", "teacher": "classify"}
    for name, wanted in fits.items():
        value = getattr(args, name, None)
        found = run_checkpoint_task(value) if value else None
        if found is not None and found != wanted:
            hint = " (a classifier's weights go to --pretrained-backbone)" if name == "pretrained" and found == \
                "classify" else ""
            raise ConfigError(f"--{name.replace('_', '-')} {value}: a {found} checkpoint; `{command}` takes a "
                              f"{wanted} model's weights here{hint}")


def check_input_files(args: argparse.Namespace) -> None:
    """Every command: each file option (``--checkpoint``, ``--pretrained``, …) names an existing file."""
    for name in INPUT_FILES:
        value = getattr(args, name, None)
        if value and not Path(value).is_file():
            raise ConfigError(f"--{name.replace('_', '-')} {value}: {_not_a_file(Path(value))}")


def _not_a_file(path: Path) -> str:
    if not path.is_dir():
        return "no such file"
    inside = next((path / name for name in RUN_FILES if (path / name).is_file()), None)
    return "a folder, not a file" + (f" (a run folder: give {inside})" if inside else "")


def _check_numbers(args: argparse.Namespace) -> None:
    if getattr(args, "epochs", 1) < 1:
        raise ConfigError(f"--epochs must be at least 1, got {args.epochs}")
    for name in ("lr", "weight_decay", "clip_grad", "warmup_epochs", "label_smoothing", "backbone_lr_mult"):
        value = getattr(args, name, None)
        if value is None:
            continue
        if name == "lr" and value <= 0:
            raise ConfigError(f"--lr must be positive, got {value}")
        if value < 0:
            raise ConfigError(f"--{name.replace('_', '-')} must be at least 0, got {value}")
    check_image_size(getattr(args, "image_size", None))
    batch = str(getattr(args, "batch_size", "auto"))
    if batch != "auto" and (not batch.isdigit() or int(batch) < 1):
        raise ConfigError(f"--batch-size must be a positive number or auto, got {batch}")
    warmup = getattr(args, "warmup_epochs", None)
    if warmup is not None and warmup > args.epochs:
        print(f"warning: --warmup-epochs {warmup:g} is longer than the run ({args.epochs} epochs): the learning "
              "rate never reaches --lr", file=sys.stderr)


# `train detect`'s random scale resizes the whole image before cropping the input size out of it: at 10× a 512²
# input is a 5120² image per sample, more than any augmentation needs (torchvision's ScaleJitter default: 0.1–2).
MAX_SCALE = 10.0


def _check_scale_range(args: argparse.Namespace) -> None:
    low, high = getattr(args, "scale_min", None), getattr(args, "scale_max", None)
    if low is None or high is None:
        return
    for name, value in (("scale-min", low), ("scale-max", high)):
        if not 0 < value <= MAX_SCALE:  # also refuses NaN
            raise ConfigError(f"--{name} must be in (0, {MAX_SCALE:g}] (a factor of the size that fits the input), "
                              f"got {value:g}")
    if low > high:
        raise ConfigError(f"--scale-min {low:g} is larger than --scale-max {high:g}: the random scale is drawn "
                          "between them")


def _check_paths(args: argparse.Namespace) -> None:
    output_folder(getattr(args, "out", "runs"), create=False)
    check_input_files(args)
    ratio = getattr(args, "val_ratio", None)
    if ratio is not None and not 0 < ratio < 1:
        raise ConfigError(f"--val-ratio must lie strictly between 0 and 1, got {ratio}")


def _check_devices(args: argparse.Namespace) -> None:
    accelerator = str(getattr(args, "accelerator", "auto"))
    if accelerator not in ("gpu", "cuda"):
        return
    import torch

    available = torch.cuda.device_count()
    devices = str(getattr(args, "devices", "1"))
    wanted = int(devices) if devices.isdigit() else 1
    if available == 0:
        raise ConfigError(f"--accelerator {accelerator}: no CUDA GPU on this machine (use --accelerator cpu or auto)")
    if wanted > available:
        raise ConfigError(f"--devices {wanted}: this machine has {available} GPU(s)")
