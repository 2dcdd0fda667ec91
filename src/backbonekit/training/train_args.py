"""One grammar for what every ``train TASK`` command sets: the same flag for the same concept in every task
(optimiser, learning rates, schedule with warm-up, weight decay, gradient clipping, freezing, bad inputs, image size,
precision). Each task passes its own defaults. Old spellings keep working and say what replaced them.
"""
from __future__ import annotations

import argparse
import sys

from backbonekit.errors import ConfigError

# Precision as Lightning names it, from any spelling the commands accept (``bench`` says fp32/bf16).
PRECISIONS = {"32": "32", "fp32": "32", "32-true": "32", "bf16": "bf16-mixed", "bf16-mixed": "bf16-mixed",
              "16": "16-mixed", "fp16": "16-mixed", "16-mixed": "16-mixed"}


class Deprecated(argparse.Action):
    """An old spelling: stores into the new option's destination and says which option replaced it."""

    def __init__(self, option_strings, dest, replacement: str, **kwargs):
        self.replacement = replacement
        super().__init__(option_strings, dest, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        print(f"warning: {option_string} is deprecated, use {self.replacement}", file=sys.stderr)
        setattr(namespace, self.dest, True if self.nargs == 0 else values)


def precision(value: str) -> str:
    if value not in PRECISIONS:
        raise argparse.ArgumentTypeError(f"must be one of {', '.join(PRECISIONS)}, got {value}")
    return PRECISIONS[value]


def add_optimization_arguments(p: argparse.ArgumentParser, *, optimizer: str, lr: float | None,
                               weight_decay: float, scheduler: str, warmup_epochs: float | None,
                               backbone_lr_mult: float = 1.0, clip_grad: float = 0.0,
                               lr_steps_help: str = "") -> None:
    g = p.add_argument_group("optimisation (the same flags in every task)")
    g.add_argument("--optimizer", default=optimizer, choices=("sgd", "adamw"), help="SGD is Nesterov, momentum 0.9")
    g.add_argument("--lr", type=float, default=lr, help="learning rate of the head" + (
        "" if lr is not None else " (default: 0.1 for sgd, 1e-3 for adamw)"))
    g.add_argument("--backbone-lr-mult", type=float, default=backbone_lr_mult,
                   help="fine-tuning: the backbone's lr = --lr × this")
    g.add_argument("--weight-decay", type=float, default=weight_decay)
    g.add_argument("--scheduler", default=scheduler, choices=("cosine", "plateau", "step", "none"),
                   help="cosine: to 0 per step; step: ×0.1 at --lr-steps (or every --step-size epochs); plateau: "
                        "×0.1 when val loss stalls")
    g.add_argument("--warmup-epochs", type=float, default=warmup_epochs, help="linear warm-up (cosine and step)")
    g.add_argument("--lr-steps", type=float, nargs="+", default=None, metavar="EPOCH",
                   help="--scheduler step: epochs where the lr is multiplied by 0.1" + lr_steps_help)
    g.add_argument("--step-size", type=int, default=30, help="--scheduler step without --lr-steps: ×0.1 every N epochs")
    g.add_argument("--clip-grad", type=float, default=clip_grad, metavar="NORM",
                   help="clip the gradient norm (0: off)")
    g.add_argument("--freeze-backbone", action="store_true", help="train everything but the backbone")
    g.add_argument("--freeze-bn", action="store_true",
                   help="keep the backbone's BatchNorm statistics and affine weights as loaded (small batches)")


def _number_type(kind, test, rule: str, name: str):
    """An argparse ``type`` that also checks the range, so a bad value is the sub-command's usage and one line."""
    def convert(text: str):
        value = kind(text)  # a ValueError here: argparse says "invalid <name> value"
        if not test(value):
            raise argparse.ArgumentTypeError(f"must be {rule}, got {text}")
        return value
    convert.__name__ = name
    return convert


positive_int = _number_type(int, lambda v: v >= 1, "at least 1", "integer")
non_negative_int = _number_type(int, lambda v: v >= 0, "at least 0", "integer")
probability = _number_type(float, lambda v: 0 <= v <= 1, "between 0 and 1", "number")
open_fraction = _number_type(float, lambda v: 0 < v < 1, "strictly between 0 and 1", "number")


def add_skip_bad_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument("--skip-bad-images", action="store_true",
                   help="leave out images that are missing or unreadable (each named on stderr) instead of stopping")


def add_input_arguments(p: argparse.ArgumentParser, image_size_help: str) -> None:
    p.add_argument("--image-size", type=int, nargs="+", default=None, metavar="S", help=image_size_help +
                   " (one size, or H W)")
    add_skip_bad_argument(p)


def add_deprecated_arguments(p: argparse.ArgumentParser, *names: str) -> None:
    """Old spellings a task had: ``--frozen-bn``, ``--skip-missing``, ``--backbone-lr``."""
    if "frozen-bn" in names:
        p.add_argument("--frozen-bn", dest="freeze_bn", action=Deprecated, nargs=0, replacement="--freeze-bn",
                       help=argparse.SUPPRESS)
    if "skip-missing" in names:
        p.add_argument("--skip-missing", dest="skip_bad_images", action=Deprecated, nargs=0,
                       replacement="--skip-bad-images", help=argparse.SUPPRESS)
    if "backbone-lr" in names:
        p.add_argument("--backbone-lr", type=float, action=Deprecated, replacement="--backbone-lr-mult (= this / --lr)",
                       help=argparse.SUPPRESS)


def image_size(values: list[int] | None, default, task: str, square: bool = False):
    """``--image-size S`` or ``H W`` → an int (square tasks) or (H, W); ``default`` when not given."""
    if not values:
        return default
    check_image_size(values)
    h, w = values[0], values[-1]
    if square:
        if h != w:
            raise ConfigError(f"{task} trains on square images: --image-size {h} (got {h} {w})")
        return h
    return h, w


def check_image_size(values: list[int] | None) -> None:
    if values is not None and (not 1 <= len(values) <= 2 or min(values) < 8):
        raise ConfigError(f"--image-size takes one size or H W of at least 8 pixels, got {' '.join(map(str, values))}")

