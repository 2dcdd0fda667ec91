"""``train detect``, ``eval detect`` (a checkpoint, or any detector's result files), ``predict detect`` and
``data synth shapes``."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from backbonekit.explain.command import add_explain_arguments, cmd_explain
from backbonekit.io.output import Formats, add_old_output_flag, add_output_arguments
from backbonekit.training.run_args import add_device_argument, add_run_arguments, add_runtime_argument
from backbonekit.training.train_args import (add_deprecated_arguments, add_input_arguments, add_optimization_arguments,
                                             add_skip_bad_argument, non_negative_int, open_fraction, positive_int,
                                             probability)

DEFAULT_CLASSES = ("Car", "Pedestrian", "Cyclist")  # = kitti.DEFAULT_CLASSES; kept here so --help needs no torch

# What eval and predict detect write (io/output.py: the grammar every task shares). predict's json is
# detections.json: predictions.json is the COCO results file, here as in eval's folder.
EVAL_FORMATS = Formats("eval")
PREDICT_FORMATS = Formats("predict", {
    "json": "detections.json, a list with an object an image: its path and boxes (class, score, x1 y1 x2 y2 in "
            "the image's pixels)",
    "csv": "predictions.csv, a row a box: path,class,score,x1,y1,x2,y2",
    "png": "<image>.png, the image with its boxes",
    "kitti": "kitti/<image>.txt, KITTI result files (16 fields)",
    "coco": "predictions.json, COCO results (the image and category ids of the run's annotations)"},
    default=("png", "kitti", "coco"), files={"json": "detections.json"})
CSV_COLUMNS = ["path", "class", "score", "x1", "y1", "x2", "y2"]


def synth_parsers(verbs: dict):
    """The ``data synth`` sub-parsers (the CLI makes them, shared by every task that writes a synthetic data set)."""
    return verbs["data_synth"]


def add_commands(verbs: dict) -> None:
    p = synth_parsers(verbs).add_parser("shapes", help="for train detect: coloured shapes with boxes, in "
                                                    "KITTI or COCO format")
    p.add_argument("--format", choices=("kitti", "coco"), default="kitti")
    p.add_argument("--out", required=True, help="folder to write (KITTI: <out>/training/…; COCO: <out>/images, "
                                                "<out>/annotations.json)")
    p.add_argument("--num-images", type=positive_int, default=200)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--image-size", type=int, nargs=2, metavar=("H", "W"),
                   help="default 128 384 for kitti, 256 256 for coco")
    p.set_defaults(func=cmd_synth)

    p = verbs["train"].add_parser("detect", help="train EfficientDet on KITTI or COCO-format data")
    add_train_arguments(p)
    p.set_defaults(func=cmd_train)

    p = verbs["predict"].add_parser("detect", help="boxes for images: PNGs with boxes, KITTI result files, COCO JSON")
    p.add_argument("--checkpoint", required=True, help="best.ckpt, last.ckpt or best.safetensors of a run")
    p.add_argument("paths", nargs="+", metavar="PATH", help="images or folders of images")
    add_output_arguments(p, PREDICT_FORMATS, "folder to write into; - prints the one text format asked for, a "
                                             "line an image", out_default="predictions")
    add_old_output_flag(p, "--save", "--format", choices=("png", "kitti", "coco"))
    p.add_argument("--score-threshold", type=probability, default=0.3, help="detections kept (drawn and written)")
    p.add_argument("--annotations", nargs="+", metavar="JSON",
                   help="COCO annotation files whose image ids the COCO results use (default: the run's own COCO "
                        "--data and --val-data; images they do not name get their file stem)")
    p.add_argument("--batch-size", type=positive_int, default=8)
    add_skip_bad_argument(p)
    add_device_argument(p)
    add_runtime_argument(p)
    p.set_defaults(func=cmd_predict)
    add_explain_command(verbs["explain"])

    p = verbs["eval"].add_parser("detect", help="COCO mAP / KITTI AP of a checkpoint or of any detector's results")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--checkpoint", help="a `train detect` checkpoint: scored on the validation split of --data")
    source.add_argument("--predictions", help="a folder of KITTI result files (16 fields) or a COCO results JSON")
    p.add_argument("--split", choices=("val", "all"), default=None,
                   help="with --checkpoint: the run's validation data (its --val-data, or its split of --data by "
                        "the recorded ratio and seed) or all images of --data; default: val for the run's own "
                        "data, all for other --data")
    p.add_argument("--batch-size", type=positive_int, default=8)
    p.add_argument("--data", help="KITTI root (training/label_2) or COCO annotation JSON (or its folder); with "
                                  "--checkpoint, default: the run's own data from its run.yaml")
    add_image_root_argument(p)
    add_skip_bad_argument(p)
    p.add_argument("--classes", nargs="+", default=list(DEFAULT_CLASSES),
                   help="--predictions: KITTI classes to score (with --checkpoint: the checkpoint's)")
    p.add_argument("--recall-points", type=int, choices=(40, 11), default=40, help="KITTI AP: R40 (default) or R11")
    p.add_argument("--placement", choices=("devkit", "recall"), default="devkit",
                   help="KITTI AP: precision samples placed as the devkit does (capped at (n-1)/40 with n < 40 "
                        "objects) or at the recall they reach")
    add_output_arguments(p, EVAL_FORMATS, "folder to write metrics.<format> into (--checkpoint: with the "
                                          "detections, ground truth and plots); default --checkpoint: eval/<split>/ "
                                          "in the run folder; --predictions: the result folder, or beside a results "
                                          "JSON as <name>_metrics.json")
    add_device_argument(p)
    add_runtime_argument(p)
    p.set_defaults(func=cmd_eval)



def add_explain_command(explain) -> None:
    p = explain.add_parser("detect", help="for each detection, a map of what drove its score")
    add_explain_arguments(p)
    p.add_argument("--score-threshold", type=probability, default=0.3, help="boxes at least this likely")
    p.add_argument("--max-boxes", type=positive_int, default=8, help="at most this many boxes an image")
    p.set_defaults(func=lambda args: cmd_explain(args, "detect", score_threshold=args.score_threshold,
                                                 max_boxes=args.max_boxes))

def add_image_root_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument("--image-root", help="COCO: the folder the JSON's file_name entries are relative to (default: "
                                        "images/ beside the JSON, <root>/val2017 for <root>/annotations/"
                                        "instances_val2017.json, else the JSON's folder)")


def add_train_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", help="KITTI folder (training/image_2, label_2), COCO annotation JSON or COCO root "
                                  "(annotations/instances_train2017.json, train2017/); required unless --resume")
    p.add_argument("--val-data", help="COCO: a separate validation JSON (default: COCO's own layout's "
                                      "annotations/instances_val*.json, else split --data by --val-ratio)")
    add_image_root_argument(p)
    p.add_argument("--classes", nargs="+", help=f"KITTI classes to train (default {' '.join(DEFAULT_CLASSES)})")
    p.add_argument("--model", default="efficientdet_d0", help="efficientdet_d0 … efficientdet_d7")
    p.add_argument("--backbone", help="any backbonekit model instead of the variant's EfficientNet, e.g. resnet50")
    p.add_argument("--pretrained", help="detector weights to start from (ours or effdet's; another class count "
                                        "keeps a fresh class head)")
    p.add_argument("--pretrained-backbone", help="backbone weights (torchvision, timm, lukemelas or ours)")
    add_input_arguments(p, "input size; default: the variant's (512 for D0). KITTI: 384 1280")
    p.add_argument("--epochs", type=int, default=50)
    add_optimization_arguments(p, optimizer="adamw", lr=1e-3, weight_decay=1e-4, scheduler="cosine",
                               warmup_epochs=1.0, clip_grad=10.0)
    add_deprecated_arguments(p, "frozen-bn")
    p.add_argument("--norm", default="auto", choices=("auto", "batch", "group"),
                   help="group: GroupNorm in place of every BatchNorm, so validation computes what training does "
                        "whatever the batch size; auto: group from random initialisation (no --pretrained or "
                        "--pretrained-backbone), batch when fine-tuning pretrained weights")
    p.add_argument("--drop-path-rate", type=float, default=None,
                   help="stochastic depth of the variant's EfficientNet backbone (default effdet's 0.2)")
    p.add_argument("--precise-bn-images", type=non_negative_int, default=256,
                   help="training images that re-estimate the BatchNorm statistics before each validation, in "
                        "batches of --precise-bn-batch (0 keeps the running averages of the training batches)")
    p.add_argument("--precise-bn-batch", type=positive_int, default=64)
    p.add_argument("--augment", default="basic", choices=("none", "basic"),
                   help="basic: flip, random scale and crop, colour jitter (box-aware, transforms.v2)")
    p.add_argument("--scale-min", type=float, default=0.5, help="random scale range of the augmentation")
    p.add_argument("--scale-max", type=float, default=1.5)
    p.add_argument("--val-ratio", type=open_fraction, default=0.2,
                   help="held-out share when there is no separate val data")
    p.add_argument("--strict-labels", action="store_true",
                   help="KITTI: refuse an image with no label file (default: leave it out and count it in the data "
                        "line; an image without objects has an empty .txt)")
    add_run_arguments(p, batch_size=8)


def cmd_train(args: argparse.Namespace) -> int:
    from backbonekit.training.preflight import check_before_imports, check_data_exists
    from backbonekit.training.run_record import start_training
    from backbonekit.training.settings import TrainSettings  # the command line's edge: typed from here on

    check_before_imports(args)
    check_data_exists(args)
    from backbonekit.models.registry import require_kind  # torchvision: after the cheap checks

    require_kind(args.model, "detect", "--model", "train detect")
    require_kind(args.backbone, "classify", "--backbone", "train detect")

    def train(a: TrainSettings) -> int:
        from backbonekit.detection.train import train_detector  # Lightning: after every cheap check

        return train_detector(a).exit_code

    return start_training(TrainSettings.from_args(args), "train detect", "detect", train)


def cmd_predict(args: argparse.Namespace) -> int:
    from backbonekit.detection.predict import predict_images
    from backbonekit.io.output import RowWriter, predict_output

    output = predict_output(args, PREDICT_FORMATS)
    rows = RowWriter(output, CSV_COLUMNS, csv_rows)

    def report(row: dict) -> None:
        rows.add(row)
        if not output.to_stdout:  # there the rows themselves are the output
            found = ", ".join(f"{name} {n}" for name, n in row["counts"].items()) or "nothing"
            print(f"{row['path']}: {found}", flush=True)

    own = [f for f in output.formats if f in ("png", "kitti", "coco")]
    summary = predict_images(args.checkpoint, args.paths, output.folder, score_threshold=args.score_threshold,
                             save=own, batch_size=args.batch_size, device=args.device,
                             annotations=args.annotations, skip_bad_images=args.skip_bad_images, on_image=report,
                             runtime=args.runtime, precision=args.runtime_precision)
    written = summary["written"] + [str(path) for path in rows.close()]
    for note in summary["notes"]:
        print(f"note: {note}", file=sys.stderr if output.to_stdout else sys.stdout)
    if summary["skipped"]:
        print(f"skipped {len(summary['skipped'])} unreadable image(s), named above", file=sys.stderr)
    if written:
        print(f"wrote {', '.join(written)} to {output.folder}")
    return 0


def csv_rows(row: dict) -> list[dict]:
    return [{"path": row["path"], "class": d["class"], "score": d["score"], **dict(zip(("x1", "y1", "x2", "y2"),
                                                                                        d["box"]))}
            for d in row["detections"]]


def cmd_synth(args: argparse.Namespace) -> int:
    from backbonekit.detection.synth import summary_line, synthesize_shapes

    counts = synthesize_shapes(args.out, args.format, args.num_images, args.seed, args.image_size)
    print(summary_line(counts, args.format, args.out))
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from backbonekit.io.output import eval_output, write_metrics

    if args.checkpoint:
        return cmd_eval_checkpoint(args)
    if args.data is None:
        from backbonekit.errors import ConfigError

        raise ConfigError("--predictions needs --data (the ground truth to score them against)")
    predictions = Path(args.predictions)
    if not predictions.exists():
        from backbonekit.errors import DataError

        raise DataError(f"--predictions {predictions}: no such file or folder (a folder of KITTI result files or a "
                        "COCO results JSON)")
    _check_formats_match(predictions, args.data)
    if predictions.is_dir():
        from backbonekit.detection.evaluate_kitti import evaluate_kitti_folders

        result = {"format": "kitti", **evaluate_kitti_folders(predictions, args.data, args.classes,
                                                              args.recall_points, args.placement)}
        output = eval_output(args, EVAL_FORMATS, predictions)
        report = format_kitti(result)
    else:
        from backbonekit.detection.coco import resolve_coco_json
        from backbonekit.detection.evaluate_coco import coco_in_percent, evaluate_coco

        result = {"format": "coco", **coco_in_percent(evaluate_coco(resolve_coco_json(args.data), predictions))}
        output = eval_output(args, EVAL_FORMATS, predictions.parent, stem=f"{predictions.stem}_metrics")
        report = format_coco(result)
    print(report)
    print(f"metrics written to {', '.join(map(str, write_metrics(result, output)))}")
    return 0


def _check_formats_match(predictions: Path, data: str) -> None:
    """KITTI result files score against KITTI labels, a COCO results JSON against COCO annotations."""
    from backbonekit.detection.data import data_format
    from backbonekit.errors import ConfigError

    truth = data_format(data)
    given = "kitti" if predictions.is_dir() else "coco"
    if given != truth:
        what = {"kitti": "a folder of KITTI result files", "coco": "a COCO results JSON"}
        raise ConfigError(f"--predictions {predictions} is {what[given]} but --data {data} is {truth.upper()} data: "
                          f"give {what[truth]}")


def cmd_eval_checkpoint(args: argparse.Namespace) -> int:
    from backbonekit.detection.evaluate import evaluate_on
    from backbonekit.io.images import report_skipped
    from backbonekit.io.output import eval_output, write_metrics
    from backbonekit.training.inference import load_for_inference
    from backbonekit.training.task_spec import get_task

    task, _ = load_for_inference(args.checkpoint, get_task("detect"), args.device, args.runtime,
                                 args.runtime_precision, args.batch_size)
    dataset, what, skipped, split = _eval_dataset(args, task.cfg)
    output = eval_output(args, EVAL_FORMATS, Path(args.checkpoint).parent / "eval" / split)
    report_skipped(skipped)
    print(f"scoring {what}")
    metrics = evaluate_on(task, dataset, output.own_folder(), batch_size=args.batch_size, metrics_file=False)
    print(format_coco({"format": "coco", **metrics["coco"]}))
    if "kitti" in metrics:
        print(format_kitti({**metrics["kitti"], "num_images": metrics["images"]}))
    write_metrics(metrics, output)
    print(f"metrics, predictions and plots written to {output.folder}")
    return 0


def _eval_dataset(args: argparse.Namespace, cfg) -> tuple:
    """What ``eval detect --checkpoint`` scores (by default the run's own validation data, from its record), a line
    saying what that is, the images left out by --skip-bad-images, and the split (val or all)."""
    from backbonekit.detection.data import build_detection_data
    from backbonekit.errors import DataError
    from backbonekit.training.run_record import eval_source

    source = eval_source(args.checkpoint, args.data, val_ratio=None, seed=None, val_data=None, image_root=None)
    own = args.data is None or source["what"].startswith("the run's")
    split = args.split or ("val" if own else "all")
    val_data = source["val_data"] if own else None
    image_root = args.image_root or (source["image_root"] if own else None)
    data = build_detection_data(source["data"], tuple(cfg.image_size), classes=_kitti_classes(cfg, source["data"]),
                                val_fraction=source["val_ratio"], seed=source["seed"], augment=False,
                                val_data=val_data, image_root=image_root, skip_bad_images=args.skip_bad_images)
    if data.class_names != list(cfg.class_names):
        raise DataError(f"{source['data']}: classes {data.class_names} differ from the checkpoint's {cfg.class_names}")
    if split == "all":
        dataset = _all_images(source["data"], data, cfg, image_root, args.skip_bad_images)
        return dataset, f"all {len(dataset)} images of {source['data']}", dataset.skipped_images, split
    if val_data:
        what = f"the run's validation data {val_data} ({len(data.val)} images)"
    else:
        what = (f"the validation split of {source['data']} (val-ratio {source['val_ratio']}, seed {source['seed']}; "
                f"{len(data.val)} images)")
    return data.val, what, data.val.skipped_images, split


def _kitti_classes(cfg, data) -> list[str] | None:
    from backbonekit.detection.data import data_format

    return list(cfg.class_names) if data_format(data) == "kitti" else None


def _all_images(data_path, data, cfg, image_root, skip_bad_images: bool):
    from backbonekit.detection.coco import CocoDetection
    from backbonekit.detection.kitti import KittiDetection
    from backbonekit.detection.transforms import eval_transforms

    tf = eval_transforms(tuple(cfg.image_size))
    if data.format == "kitti":
        return KittiDetection(data_path, classes=data.class_names, split="all", transforms=tf,
                              skip_bad_images=skip_bad_images)
    return CocoDetection(data_path, split="all", transforms=tf, image_root=image_root, skip_bad_images=skip_bad_images)


def _fmt(value: float | None, scale: float = 1.0) -> str:
    return "    —" if value is None else f"{value * scale:5.2f}"


def format_kitti(result: dict) -> str:
    lines = [f"KITTI 2D AP in percent (R{result.get('recall_points', 40)}), {result['num_images']} images",
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
             f"mAP@[.5:.95] {_fmt(result['mAP'])}%   mAP@.5 {_fmt(result['mAP50'])}%   "
             f"mAP@.75 {_fmt(result['mAP75'])}%",
             f"{'class':<20}{'AP %':>8}{'AP50 %':>8}"]
    for name, ap in result["per_class"].items():
        lines.append(f"{name:<20}{_fmt(ap):>8}{_fmt(result['per_class_ap50'][name]):>8}")
    return "\n".join(lines)
