"""``backbonekit quantize``: a trained checkpoint of any task → int8 for onnxruntime or OpenVINO, through the accuracy
gate (``training/int8.py``): written beside the checkpoint only when the run's validation score drops by at most
``--max-drop`` points."""
from __future__ import annotations

import argparse

from backbonekit.training.train_args import positive_int

RUNTIMES = ("onnxruntime", "openvino")


def add_commands(verbs: dict) -> None:
    p = verbs["_top"].add_parser("quantize", help="a trained checkpoint → int8 (onnxruntime or OpenVINO), kept only "
                                 "if its validation score drops by at most --max-drop points")
    p.add_argument("--checkpoint", required=True, help="best.ckpt, last.ckpt or best.safetensors of a `backbonekit "
                   "train` run (calibrated on its training images, scored on its validation split)")
    p.add_argument("--runtime", default="onnxruntime", help="onnxruntime, openvino, or both (comma-separated): the "
                   "runtime each int8 file is quantised for and scored on")
    p.add_argument("--calibration-images", type=positive_int, default=300,
                   help="images the activation ranges are measured on (at least 16)")
    p.add_argument("--calibration-data", metavar="DIR", help="a folder of images to calibrate on instead of the "
                   "run's training images (needed when those are gone)")
    p.add_argument("--max-drop", type=float, default=1.0,
                   help="points of the task's score (top-1, mAP, Fixed-Acc) int8 may lose; more: refused, nothing "
                   "written")
    p.add_argument("--keep-float", default="auto", help="layer types left float: auto (each type measured alone "
                   "and kept float when it loses more than its share of --max-drop), none, or a list of conv, "
                   "depthwise, se, linear, other (ops without weights)")
    p.add_argument("--scope", default="backbone", choices=("backbone", "all"),
                   help="backbone: a detector's heads and post-processing and a sequence model's transformer stay "
                   "float; all: quantise them too")
    p.add_argument("--batch-size", type=positive_int, default=32, help="batch size of the scoring")
    p.set_defaults(func=cmd_quantize)


def cmd_quantize(args: argparse.Namespace) -> int:
    from pathlib import Path

    from backbonekit.errors import ConfigError
    from backbonekit.tasks import all_tasks, load_trained
    from backbonekit.training.int8 import Int8Options, quantize_checkpoint

    runtimes = [r.strip() for r in args.runtime.split(",") if r.strip()]
    wrong = [r for r in runtimes if r not in RUNTIMES]
    if wrong or not runtimes:
        raise ConfigError(f"--runtime takes {' or '.join(RUNTIMES)} (comma-separated), got {args.runtime!r}")
    if not Path(args.checkpoint).is_file():
        what = "a folder" if Path(args.checkpoint).is_dir() else "no such file"
        raise ConfigError(f"--checkpoint {args.checkpoint}: {what}")
    kind, _ = load_trained(Path(args.checkpoint))
    for runtime in runtimes:
        options = Int8Options(runtime=runtime, calibration_images=args.calibration_images,
                              calibration_data=args.calibration_data, max_drop=args.max_drop,
                              keep_float=args.keep_float, scope=args.scope, batch_size=args.batch_size)
        quantize_checkpoint(args.checkpoint, all_tasks()[kind], options)
    return 0
