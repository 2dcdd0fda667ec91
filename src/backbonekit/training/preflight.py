"""Checks of a train command's settings that need no data and no model, run before anything slow (data indexing,
batch-size trials, building a network): each bad value is one ``ConfigError`` naming the flag. (Whether a model
name is of the right kind is checked by each task's command: ``models.registry.require_kind``.)"""
from __future__ import annotations

import argparse
import sys
import zipfile
from pathlib import Path

from backbonekit.errors import ConfigError
from backbonekit.io.output import output_folder
from backbonekit.training.task_spec import registered
from backbonekit.training.train_args import check_image_size

# Files a command reads: a missing one is reported now, not after minutes of batch-size trials.
INPUT_FILES = ("checkpoint", "pretrained", "pretrained_backbone", "teacher")
RUN_FILES = ("best.ckpt", "last.ckpt", "best.safetensors")


def check_train_settings(args: argparse.Namespace, command: str, task: str | None = None) -> None:
    """``task``: the one whose model the command trains (default: the command's last word, `train TASK`)."""
    check_before_imports(args)
    _warn_long_warmup(args)
    _check_start_weights(args, command, task or command.split()[-1])
    _check_devices(args)


def check_before_imports(args: argparse.Namespace) -> None:
    """The checks that need neither torch nor the data (numbers and their ranges, the output folder, input files
    and what kind of file they are): each train command runs them before it imports anything heavy, so a typo is
    answered in a fraction of a second rather than after the seconds of importing Lightning."""
    _check_numbers(args)
    _check_scale_range(args)
    _check_paths(args)


def _check_start_weights(args: argparse.Namespace, command: str, task: str) -> None:
    """A run's checkpoint given as start weights must be of the task that fits: a classifier's checkpoint as a
    detector's --pretrained would only fail later, as hundreds of missing keys. What fits is read from the task
    registry (the CLI has filled it), so a task from outside takes its own checkpoints as --pretrained."""
    backbones = [name for name, spec in registered().items() if spec.backbone_source]
    fits = {"pretrained": [task], "pretrained_backbone": backbones, "teacher": [task]}
    for name, wanted in fits.items():
        value = getattr(args, name, None)
        found = run_checkpoint_task(value) if value else None
        if found is not None and found not in wanted:
            hint = " (a classifier's weights go to --pretrained-backbone)" if name == "pretrained" and found in \
                backbones else ""
            raise ConfigError(f"--{name.replace('_', '-')} {value}: a {found} checkpoint; `{command}` takes a "
                              f"{' or '.join(wanted) or 'no trained'} model's weights here{hint}")


def run_checkpoint_task(path: str | Path) -> str | None:
    """The task a ``backbonekit train`` checkpoint or safetensors file records, or None for any other weights file
    (and for one that cannot be read: loading it says why). Reads torch, never Lightning."""
    path = Path(path)
    try:
        if path.suffix == ".safetensors":
            from backbonekit.weights import read_metadata

            return read_metadata(path).get("task")
        import torch

        # mmap: the record is read without loading every tensor into memory
        checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # noqa: BLE001 - not ours to judge here
        return None
    hyper = checkpoint.get("hyper_parameters") if isinstance(checkpoint, dict) else None
    return hyper.get("task") if isinstance(hyper, dict) else None


def _check_weight_files(args: argparse.Namespace) -> None:
    """Start weights that are no weights file at all (a YAML given as --pretrained) are named now, from their first
    bytes, not after the model is built: the test ``weights.why_torch_load_failed`` makes first."""
    for name in ("pretrained", "pretrained_backbone", "teacher"):
        value = getattr(args, name, None)
        if not value or Path(value).suffix == ".safetensors":
            continue
        with open(value, "rb") as f:
            head = f.read(2)
        if not zipfile.is_zipfile(value) and head != b"\x80\x02":  # torch's zip archive, or its older pickle
            raise ConfigError(f"--{name.replace('_', '-')} {value}: not a PyTorch file (neither a zip archive nor "
                              "torch's older format): truncated, or another kind of file")


def check_data_exists(args: argparse.Namespace) -> None:
    """``--data`` and ``--val-data`` name something on disk: a task without data sets known by name calls this
    before it imports its data code (torchvision, Lightning), so a mistyped path is said at once."""
    for name in ("data", "val_data"):
        value = getattr(args, name, None)
        if value and not Path(value).exists():
            raise ConfigError(f"--{name.replace('_', '-')} {value}: no such file or folder")


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


# The range of each number a train command takes (low, high, whether each end is allowed), checked before anything
# is imported: outside it torch raises deep inside the model or the loss (--drop-rate 2, --label-smoothing 2), or
# training silently learns nothing. At 1, dropout zeroes the classifier's input and label smoothing makes every
# target uniform: no label reaches the weights.
INF = float("inf")
RANGES = {
    "epochs": (1, INF, True, False),
    "lr": (0, INF, False, False),
    "weight_decay": (0, INF, True, False),
    "clip_grad": (0, INF, True, False),
    "warmup_epochs": (0, INF, True, False),
    "backbone_lr_mult": (0, INF, True, False),
    "lr_steps": (0, INF, True, False),
    "step_size": (1, INF, True, False),
    "label_smoothing": (0, 1, True, False),
    "drop_rate": (0, 1, True, False),
    "drop_path_rate": (0, 1, True, True),  # 1 skips every residual branch: what is left still learns
    "cutmix": (0, INF, True, False),       # Beta(alpha, alpha); 0: off
    "mixup": (0, INF, True, False),
    "ema": (0, 1, False, False),           # a decay: 1 never moves, 0 is no average
    "memory_fraction": (0, 1, False, True),
    "distill_temperature": (0, INF, False, False),
    "distill_alpha": (0, 1, True, True),
    "lambda_u": (0, INF, True, False),
    "unsup_warmup": (0, 1, True, True),    # a share of training
    "mu": (1, INF, True, False),
    "num_nodes": (1, INF, True, False),
}


def range_text(low: float, high: float, low_in: bool, high_in: bool) -> str:
    """``at least 1``, ``positive``, ``in [0, 1)``: how a range reads in an error line."""
    if high == INF:
        return f"at least {low:g}" if low_in else "positive" if low == 0 else f"above {low:g}"
    return f"in {'[' if low_in else '('}{low:g}, {high:g}{']' if high_in else ')'}"


def _check_numbers(args: argparse.Namespace) -> None:
    for name, (low, high, low_in, high_in) in RANGES.items():
        given = getattr(args, name, None)
        for value in given if isinstance(given, (list, tuple)) else [given]:
            if value is None:
                continue
            fits = (low <= value if low_in else low < value) and (value <= high if high_in else value < high)
            if not fits:  # NaN fits nowhere
                raise ConfigError(f"--{name.replace('_', '-')} must be {range_text(low, high, low_in, high_in)}, "
                                  f"got {value:g}")
    check_image_size(getattr(args, "image_size", None))
    batch = str(getattr(args, "batch_size", "auto"))
    if batch != "auto" and (not batch.isdigit() or int(batch) < 1):
        raise ConfigError(f"--batch-size must be a positive number or auto, got {batch}")


def _warn_long_warmup(args: argparse.Namespace) -> None:
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
    _check_weight_files(args)
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
