"""``backbonekit export``: a trained classifier, detector or sequence model → one ONNX file, checked in onnxruntime.

The task is the one the file records (``backbonekit.tasks``); each task owns its graph (``detection/export.py``,
``classification/export.py``), the exporting itself is shared (``io/onnx_export.py``).
"""
from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path

FORMATS = ("onnx",)
VERIFY_IMAGES = 3  # not the export's example batch of 2: the check also shows the batch axis is dynamic
# Agreement expected between onnxruntime and PyTorch, whose float32 kernels differ in summation order: boxes to 0.1%
# of the image's longer side (a box decoded from a large anchor and clipped keeps the rounding of its large
# coordinates), scores and probabilities to 1e-3.
BOX_TOLERANCE, SCORE_TOLERANCE = 1e-3, 1e-3


def add_commands(verbs: dict) -> None:
    p = verbs["_top"].add_parser("export", help="a trained classifier, detector (NMS inside) or sequence model → ONNX")
    p.add_argument("--checkpoint", required=True,
                   help="best.ckpt, last.ckpt or best.safetensors of a `train classify`, `detect` or `sequence` run")
    p.add_argument("--format", default="onnx", help="onnx (the only one so far)")
    p.add_argument("--out", help="file to write (default: beside the checkpoint, <stem>.onnx)")
    p.add_argument("--opset", type=int, default=None, help="ONNX opset (default 18)")
    p.add_argument("--input-dtype", default="uint8", help="uint8 (0–255) or float32 (0–1) images")
    p.add_argument("--score-threshold", type=float, default=None,
                   help="detector: detections kept, frozen into the graph (default: the checkpoint's, 0.001)")
    p.add_argument("--max-detections", type=int, default=None,
                   help="detector: output slots per image (default: the checkpoint's, 100)")
    p.add_argument("--no-verify", action="store_true", help="skip the onnxruntime check")
    p.set_defaults(func=cmd_export)


def cmd_export(args: argparse.Namespace) -> int:
    from backbonekit.errors import ConfigError
    from backbonekit.io.onnx_export import DEFAULT_OPSET
    from backbonekit.tasks import load_trained

    if args.format not in FORMATS:
        raise ConfigError(f"--format must be one of {', '.join(FORMATS)}, got {args.format!r}")
    checkpoint = Path(args.checkpoint)
    out = Path(args.out) if args.out else checkpoint.with_suffix(".onnx")
    opset = DEFAULT_OPSET if args.opset is None else args.opset
    kind, trained = load_trained(checkpoint, fuse=True)  # BatchNorm folded into the graph
    if kind == "detect":
        from backbonekit.detection.export import export_detector_onnx

        result = export_detector_onnx(trained, out, opset, score_threshold=args.score_threshold,
                                             max_detections=args.max_detections, input_dtype=args.input_dtype)
        what = "detector: normalisation, EfficientDet, box decoding and per-class NMS in the graph"
    elif kind == "classify":
        from backbonekit.classification.export import export_classifier_onnx

        if args.score_threshold is not None or args.max_detections is not None:
            raise ConfigError("--score-threshold and --max-detections apply to detectors only")
        result = export_classifier_onnx(trained, out, opset, input_dtype=args.input_dtype)
        what = "classifier: normalisation, network, softmax in the graph"
    else:
        from backbonekit.sequence.export import export_sequence_onnx

        if args.score_threshold is not None or args.max_detections is not None:
            raise ConfigError("--score-threshold and --max-detections apply to detectors only")
        result = export_sequence_onnx(trained, out, opset, input_dtype=args.input_dtype)
        what = "sequence model: normalisation, backbone, transformer, 5 greedy decoding steps in the graph"
    print(f"wrote {result.path} ({result.path.stat().st_size / 1e6:.1f} MB, opset {result.opset}; {what})")
    for role, values in (("input", result.inputs), ("output", result.outputs)):
        for name, shape, dtype in values:
            print(f"  {role:<6} {name:<15} {dtype:<7} [{', '.join(map(str, shape))}]")
    if args.no_verify:
        return 0
    if importlib.util.find_spec("onnxruntime") is None:
        print("not checked: onnxruntime is not installed (pip install onnxruntime)")
        return 0
    return verify(kind, trained, result.path, args)


def verify(kind: str, trained, path: Path, args: argparse.Namespace) -> int:
    """onnxruntime against PyTorch on synthetic shape images at the model's input size; 1 if they disagree."""
    check = {"detect": check_detector, "classify": check_classifier, "sequence": check_sequence}[kind]
    if check(trained, path, args):
        return 0
    print("warning: the ONNX file does not reproduce PyTorch's outputs")
    return 1


def check_detector(task, path: Path, args: argparse.Namespace) -> bool:
    from backbonekit.detection.export import JITTER, verify_detector_onnx

    images = shape_images(tuple(task.cfg.image_size), args.input_dtype)
    diff = verify_detector_onnx(task, path, images, score_threshold=args.score_threshold,
                                max_detections=args.max_detections)
    counts = ", ".join(f"{ours}/{theirs}" for ours, theirs in diff["counts"])
    print(f"onnxruntime vs PyTorch on {len(images)} synthetic images: detections {counts} (PyTorch/ONNX), "
          f"max |Δbox| {diff['max_box_diff']:.2e} px, max |Δscore| {diff['max_score_diff']:.2e}"
          + ("" if diff["matched"] else "; the detections differ"))
    box_tolerance = BOX_TOLERANCE * max(images.shape[-2:])
    if detections_agree(diff, box_tolerance):
        return True
    jitter = diff["jitter"]
    if detections_agree(jitter, box_tolerance):
        return False
    print(f"  PyTorch against itself with {JITTER:g} relative noise on the network outputs: max |Δbox| "
          f"{jitter['max_box_diff']:.2e} px, max |Δscore| {jitter['max_score_diff']:.2e}. This checkpoint's scores "
          "tie within float rounding (undertrained?), so rounding picks the boxes NMS keeps: no sign of a faulty "
          "export, and all this check can tell")
    return True


def detections_agree(diff: dict, box_tolerance: float) -> bool:
    return diff["matched"] and diff["max_box_diff"] <= box_tolerance and diff["max_score_diff"] <= SCORE_TOLERANCE


def check_classifier(trained, path: Path, args: argparse.Namespace) -> bool:
    from backbonekit.classification.export import verify_classifier_onnx

    size = trained.cfg.image_size
    images = shape_images((size, size), args.input_dtype)
    diff = verify_classifier_onnx(trained, path, images)
    print(f"onnxruntime vs PyTorch on {len(images)} synthetic images: max |Δlogit| "
          f"{diff['max_logit_diff']:.2e} (logits up to {diff['max_logit']:.2e}), max |Δprobability| "
          f"{diff['max_probability_diff']:.2e}, same top-1: {diff['same_top1']}")
    return diff["max_probability_diff"] <= SCORE_TOLERANCE


def check_sequence(task, path: Path, args: argparse.Namespace) -> bool:
    from backbonekit.sequence.export import verify_sequence_onnx

    size = task.cfg.image_size
    diff = verify_sequence_onnx(task, path, shape_images((size, size), args.input_dtype))
    print(f"onnxruntime vs PyTorch on {diff['rows']} synthetic images: identical edit sequences for "
          f"{diff['rows_equal']}/{diff['rows']}")
    return diff["same_labels"]


def shape_images(image_size: tuple[int, int], input_dtype: str):
    """``data synth shapes`` images (real-looking content, unlike noise) as a (B, 3, H, W) batch."""
    import torch

    from backbonekit.detection.synth import synth_image
    from backbonekit.io.onnx_export import INPUT_DTYPES

    arrays = [synth_image(0, i, image_size, dont_care=False)[0] for i in range(VERIFY_IMAGES)]
    images = torch.stack([torch.from_numpy(a).permute(2, 0, 1) for a in arrays])
    return images if input_dtype == "uint8" else images.to(INPUT_DTYPES[input_dtype]) / 255
