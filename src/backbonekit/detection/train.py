"""``train detect``: KITTI / COCO data → DetectionTask, through the shared training routine; then the best checkpoint
is scored on the validation split (COCO mAP, KITTI AP on KITTI data, PR curves, predicted vs true boxes)."""
from __future__ import annotations

import json
import sys

from backbonekit.detection.data import build_detection_data
from backbonekit.detection.evaluate import evaluate_on
from backbonekit.detection.transforms import collate
from backbonekit.errors import ConfigError
from backbonekit.io.images import report_skipped
from backbonekit.models.registry import default_cfg
from backbonekit.training import train_args
from backbonekit.training.engine import FitResult
from backbonekit.training.settings import TrainSettings
from backbonekit.training.task_spec import get_task
from backbonekit.training.train_routine import TrainPlan, train_task


# The epoch line's columns: training then validation, each loss before its parts, then mAP from loose to strict.
EPOCH_COLUMNS = ("train/loss", "train/cls_loss", "train/box_loss", "val/loss", "val/map", "val/map_50", "val/map_75")


def train_detector(args: TrainSettings) -> FitResult:
    return train_task(args, get_task("detect"), plan_detection, finish_run)


def norm_choice(args: TrainSettings) -> str:
    """``--norm auto``: GroupNorm from random initialisation, BatchNorm when pretrained weights carry their own."""
    if args.norm != "auto":
        return args.norm
    return "batch" if (args.pretrained or args.pretrained_backbone) else "group"


def plan_detection(args: TrainSettings) -> TrainPlan:
    defaults = default_cfg(args.model)  # an unknown name fails here, before any data is read
    if defaults["task"] != "detect":
        raise ConfigError(f"--model must be a detector (efficientdet_d0 … efficientdet_d7), got {args.model!r}")
    if args.backbone:
        default_cfg(args.backbone)
    image_size = train_args.image_size(args.image_size, tuple(defaults["input_size"][1:]), "detect")
    if min(image_size) < 32:
        raise ConfigError(f"--image-size: a detector needs at least 32 pixels a side, got {image_size}")
    data = build_detection_data(args.data, image_size, classes=args.classes, val_fraction=args.val_ratio,
                                seed=args.seed, augment=args.augment != "none", val_data=args.val_data,
                                scale_range=(args.scale_min, args.scale_max), image_root=args.image_root,
                                skip_bad_images=args.skip_bad_images, strict_labels=args.strict_labels)
    report_skipped(data.skipped)
    print(data_summary(data), file=sys.stderr)
    config = dict(model=args.model, num_classes=len(data.class_names), class_names=data.class_names,
                  category_ids=data.category_ids, backbone=args.backbone, pretrained=args.pretrained,
                  pretrained_backbone=args.pretrained_backbone, image_size=list(image_size),
                  **args.optim_config(), norm=norm_choice(args), drop_path_rate=args.drop_path_rate,
                  precise_bn_images=args.precise_bn_images, precise_bn_batch=args.precise_bn_batch)
    return TrainPlan(config, data.train, data.val, monitor="val/map",
                     log_keys=EPOCH_COLUMNS, collate_fn=collate,
                     data={"source": data.source, "format": data.format, "train": len(data.train),
                           "val": len(data.val), "val_ratio": args.val_ratio, "seed": args.seed,
                           "augment": args.augment, "skipped_images": len(data.skipped),
                           "unlabelled_images": len(data.unlabelled)},
                     metadata={"class_names": json.dumps(data.class_names), "image_size": json.dumps(list(image_size))})


def data_summary(data) -> str:
    """One line: where the data is, how many images each split has, and the images left out for want of labels."""
    line = (f"data: {data.source} ({data.format.upper()}), {len(data.train)} training and {len(data.val)} "
            "validation images")
    if data.unlabelled:
        first = ", ".join(p.name for p in data.unlabelled[:3]) + (", …" if len(data.unlabelled) > 3 else "")
        line += (f"; {len(data.unlabelled)} image(s) with no label file left out ({first}; --strict-labels refuses "
                 "them)")
    return line


def finish_run(result: FitResult, best, batch_size: int, plan: TrainPlan) -> None:
    """The best checkpoint scored on the validation split into the run folder."""
    metrics = evaluate_on(best, plan.val_set, result.run_dir / "val", batch_size=batch_size)
    for name in ("pr_curves.png", "val_predictions.png"):  # beside results.png, where users look first
        if (result.run_dir / "val" / name).exists():
            (result.run_dir / "val" / name).replace(result.run_dir / name)
    summary_path = result.run_dir / "metrics.json"
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    summary["best_checkpoint_val"] = metrics
    summary_path.write_text(json.dumps(summary, indent=2))
    coco = metrics["coco"]
    line = f"best checkpoint on val: mAP@[.5:.95] {_score(coco['mAP'])}, mAP@.5 {_score(coco['mAP50'])}"
    if "kitti" in metrics:
        mean = metrics["kitti"]["mean"]
        line += f", KITTI AP (moderate) {_score(mean['moderate'])}"
    print(f"{line}; results in {result.run_dir}/", file=sys.stderr)


def _score(value: float | None) -> str:
    """n/a where nothing could be scored (no ground truth of any class in the validation images)."""
    return "n/a" if value is None else f"{value:.2f}%"
