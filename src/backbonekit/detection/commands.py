"""``data synth shapes`` and ``eval detect --predictions`` (scoring any detector's output files).

Training-model evaluation (``eval detect --checkpoint``), ``train``/``predict``/``export detect`` arrive with the
EfficientDet task.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

DEFAULT_CLASSES = ("Car", "Pedestrian", "Cyclist")  # = kitti.DEFAULT_CLASSES; kept here so --help needs no torch


def synth_parsers(verbs: dict):
    """The ``data synth`` sub-parsers, shared with the other tasks that write synthetic data (whoever comes first
    creates them)."""
    if "data_synth" not in verbs:
        p = verbs["data"].add_parser("synth", help="write a small synthetic data set")
        verbs["data_synth"] = p.add_subparsers(dest="dataset", required=True, metavar="DATASET")
    return verbs["data_synth"]


def add_commands(verbs: dict) -> None:
    p = synth_parsers(verbs).add_parser("shapes", help="coloured shapes with boxes, in KITTI or COCO format")
    p.add_argument("--format", choices=("kitti", "coco"), default="kitti")
    p.add_argument("--out", required=True, help="folder to write (KITTI: <out>/training/…; COCO: <out>/images, "
                                                "<out>/annotations.json)")
    p.add_argument("--num-images", type=int, default=200)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--image-size", type=int, nargs=2, metavar=("H", "W"),
                   help="default 128 384 for kitti, 256 256 for coco")
    p.set_defaults(func=cmd_synth)

    p = verbs["eval"].add_parser("detect", help="COCO mAP / KITTI AP of a detector's result files")
    p.add_argument("--predictions", required=True,
                   help="a folder of KITTI result files (16 fields) or a COCO results JSON")
    p.add_argument("--data", required=True,
                   help="KITTI root (training/label_2) or COCO annotation JSON (or its folder)")
    p.add_argument("--classes", nargs="+", default=list(DEFAULT_CLASSES), help="KITTI classes to score")
    p.add_argument("--recall-points", type=int, choices=(40, 11), default=40, help="KITTI AP: R40 (default) or R11")
    p.add_argument("--placement", choices=("devkit", "recall"), default="devkit",
                   help="KITTI AP: precision samples placed as the devkit does (capped at (n-1)/40 with n < 40 "
                        "objects) or at the recall they reach")
    p.add_argument("--out", help="metrics JSON to write (default: metrics.json inside a result folder, "
                                 "<name>_metrics.json beside a results JSON)")
    p.set_defaults(func=cmd_eval)


def cmd_synth(args: argparse.Namespace) -> int:
    from backbonekit.detection.synth import synthesize_shapes

    counts = synthesize_shapes(args.out, args.format, args.num_images, args.seed, args.image_size)
    objects = ", ".join(f"{k} {v}" for k, v in counts.items() if k != "images")
    print(f"wrote {counts['images']} images to {args.out} ({args.format}; {objects})")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    predictions = Path(args.predictions)
    if predictions.is_dir():
        from backbonekit.detection.evaluate_kitti import evaluate_kitti_folders

        result = {"format": "kitti", **evaluate_kitti_folders(predictions, args.data, args.classes,
                                                              args.recall_points, args.placement)}
        out = Path(args.out) if args.out else predictions / "metrics.json"
        report = format_kitti(result)
    else:
        from backbonekit.detection.coco import resolve_coco_json
        from backbonekit.detection.evaluate_coco import evaluate_coco

        result = {"format": "coco", **evaluate_coco(resolve_coco_json(args.data), predictions)}
        out = Path(args.out) if args.out else predictions.with_name(predictions.stem + "_metrics.json")
        report = format_coco(result)
    print(report)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"metrics written to {out}")
    return 0


def _fmt(value: float | None, scale: float = 1.0) -> str:
    return "    —" if value is None else f"{value * scale:5.2f}"


def format_kitti(result: dict) -> str:
    lines = [f"KITTI 2D AP (R{result.get('recall_points', 40)}), {result['num_images']} images",
             f"{'class':<16}{'easy':>8}{'moderate':>10}{'hard':>8}   objects (mod.)"]
    for cls, aps in result["ap"].items():
        lines.append(f"{cls:<16}{_fmt(aps['easy']):>8}{_fmt(aps['moderate']):>10}{_fmt(aps['hard']):>8}"
                     f"   {result['num_gt'][cls]['moderate']}")
    mean = result["mean"]
    lines.append(f"{'mean':<16}{_fmt(mean['easy']):>8}{_fmt(mean['moderate']):>10}{_fmt(mean['hard']):>8}")
    few = sorted({c for c, n in result["num_gt"].items() if 0 < min(n.values()) < 40})
    if few and result.get("placement") == "devkit":
        lines.append(f"note: fewer than 40 objects of {', '.join(few)} at some difficulty: the devkit's AP is capped "
                     "at (n-1)/40 there; --placement recall gives the AP at the recall reached")
    return "\n".join(lines)


def format_coco(result: dict) -> str:
    lines = [f"COCO box mAP, {result['num_images']} images, {result['num_detections']} detections",
             f"mAP@[.5:.95] {_fmt(result['mAP'], 100)}   mAP@.5 {_fmt(result['mAP50'], 100)}   "
             f"mAP@.75 {_fmt(result['mAP75'], 100)}",
             f"{'class':<20}{'AP':>8}{'AP50':>8}"]
    for name, ap in result["per_class"].items():
        lines.append(f"{name:<20}{_fmt(ap, 100):>8}{_fmt(result['per_class_ap50'][name], 100):>8}")
    return "\n".join(lines)
