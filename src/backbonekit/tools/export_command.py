"""``backbonekit export``: any trained task → one ONNX file, checked in onnxruntime.

The task is the one the file records (``backbonekit.tasks``); each task owns its graph and its check (its spec's
``export`` and ``check_export``), the exporting itself is shared (``io/onnx_export.py``).
"""
from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path

from backbonekit.training.train_args import positive_int

FORMATS = ("onnx",)
VERIFY_IMAGES = 3  # not the export's example batch of 2: the check also shows the batch axis is dynamic
TASK_OPTIONS = ("score_threshold", "max_detections")  # flags of some tasks' exports (TaskSpec.export_options)


def add_commands(verbs: dict) -> None:
    p = verbs["_top"].add_parser("export", help="a trained classifier, detector (NMS inside) or sequence model → ONNX")
    p.add_argument("--checkpoint", required=True,
                   help="best.ckpt, last.ckpt or best.safetensors of a `backbonekit train` run (its task is read "
                   "from the file)")
    p.add_argument("--format", default="onnx", help="onnx (the only one so far)")
    p.add_argument("--out", help="file to write (default: beside the checkpoint, <stem>.onnx)")
    p.add_argument("--opset", type=int, default=None, help="ONNX opset (default 18)")
    p.add_argument("--input-dtype", default="uint8", help="uint8 (0–255) or float32 (0–1) images")
    p.add_argument("--score-threshold", type=float, default=None,
                   help="detector: detections kept, frozen into the graph (default: the checkpoint's, 0.001)")
    p.add_argument("--max-detections", type=positive_int, default=None,
                   help="detector: output slots per image (default: the checkpoint's, 100)")
    p.add_argument("--no-verify", action="store_true", help="skip the onnxruntime check")
    p.set_defaults(func=cmd_export)


def cmd_export(args: argparse.Namespace) -> int:
    from backbonekit.errors import ConfigError
    from backbonekit.io.onnx_export import DEFAULT_OPSET
    from backbonekit.io.output import output_folder
    from backbonekit.tasks import all_tasks, load_trained

    if args.format not in FORMATS:
        raise ConfigError(f"--format must be one of {', '.join(FORMATS)}, got {args.format!r}")
    checkpoint = Path(args.checkpoint)
    out = Path(args.out) if args.out else checkpoint.with_suffix(".onnx")
    if out.is_dir():
        example = out / checkpoint.with_suffix(".onnx").name
        raise ConfigError(f"--out {out}: a folder; give the file to write (e.g. {example})")
    output_folder(out.parent, "--out", create=False)  # a file where a folder should be, before the model is loaded
    opset = DEFAULT_OPSET if args.opset is None else args.opset
    kind, trained = load_trained(checkpoint, fuse=True)  # BatchNorm folded into the graph
    spec = all_tasks()[kind]
    if spec.export is None:
        raise ConfigError(f"{checkpoint}: the {kind} task has no export")
    for option in TASK_OPTIONS:
        if getattr(args, option) is not None and option not in spec.export_options:
            raise ConfigError(f"--{option.replace('_', '-')} does not apply to a {kind} model")
    result, what = spec.export(trained, out, opset, args)
    print(f"wrote {result.path} ({result.path.stat().st_size / 1e6:.1f} MB, opset {result.opset}; {what})")
    for role, values in (("input", result.inputs), ("output", result.outputs)):
        for name, shape, dtype in values:
            print(f"  {role:<6} {name:<15} {dtype:<7} [{', '.join(map(str, shape))}]")
    if args.no_verify or spec.check_export is None:
        return 0
    if importlib.util.find_spec("onnxruntime") is None:
        print("not checked: onnxruntime is not installed (pip install onnxruntime)")
        return 0
    if spec.check_export(trained, result.path, args, lambda size: shape_images(size, args.input_dtype)):
        return 0
    print("warning: the ONNX file does not reproduce PyTorch's outputs")
    return 1


def shape_images(image_size: tuple[int, int], input_dtype: str):
    """``data synth shapes`` images (real-looking content, unlike noise) as a (B, 3, H, W) batch."""
    import torch

    from backbonekit.detection.synth import synth_image
    from backbonekit.io.onnx_export import INPUT_DTYPES

    arrays = [synth_image(0, i, image_size, dont_care=False)[0] for i in range(VERIFY_IMAGES)]
    images = torch.stack([torch.from_numpy(a).permute(2, 0, 1) for a in arrays])
    return images if input_dtype == "uint8" else images.to(INPUT_DTYPES[input_dtype]) / 255
