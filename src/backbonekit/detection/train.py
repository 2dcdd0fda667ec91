"""``train detect``: KITTI / COCO data → DetectionTask → the engine; then the best checkpoint is scored on the
validation split (COCO mAP, KITTI AP on KITTI data, PR curves, predicted vs true boxes) and exported as
``best.safetensors``."""
from __future__ import annotations

import argparse
import json
import sys

import lightning.pytorch as pl

from backbonekit.detection.data import build_detection_data
from backbonekit.detection.evaluate import evaluate_on
from backbonekit.detection.task import DetectionTask, load
from backbonekit.detection.transforms import collate
from backbonekit.errors import ConfigError
from backbonekit.models.registry import default_cfg
from backbonekit.training.autobatch import batch_size_scope, resolve_batch_size
from backbonekit.training.autobatch_step import AUTOBATCH_STEP, autobatch_recipe
from backbonekit.training.engine import EngineConfig, FitResult, fit
from backbonekit.training.loaders import make_loaders
from backbonekit.training import train_args
from backbonekit.training.run_args import engine_options
from backbonekit.training.task_spec import get_task
from backbonekit.training.task_io import save_task_weights


def train_detector(args: argparse.Namespace) -> FitResult:
    with batch_size_scope():
        return _train(args)


def norm_choice(args: argparse.Namespace) -> str:
    """``--norm auto``: GroupNorm from random initialisation, BatchNorm when pretrained weights carry their own."""
    if args.norm != "auto":
        return args.norm
    return "batch" if (args.pretrained or args.pretrained_backbone) else "group"


def _train(args: argparse.Namespace) -> FitResult:
    defaults = default_cfg(args.model)  # an unknown name fails here, before any data is read
    if defaults["task"] != "detect":
        raise ConfigError(f"--model must be a detector (efficientdet_d0 … efficientdet_d7), got {args.model!r}")
    if args.backbone:
        default_cfg(args.backbone)
    pl.seed_everything(args.seed, workers=True, verbose=False)
    image_size = train_args.image_size(args.image_size, tuple(defaults["input_size"][1:]), "detect")
    if min(image_size) < 32:
        raise ConfigError(f"--image-size: a detector needs at least 32 pixels a side, got {image_size}")
    data = build_detection_data(args.data, image_size, classes=args.classes, val_fraction=args.val_ratio,
                                seed=args.seed, augment=args.augment != "none", val_data=args.val_data,
                                scale_range=(args.scale_min, args.scale_max))
    config = dict(model=args.model, num_classes=len(data.class_names), class_names=data.class_names,
                  category_ids=data.category_ids, backbone=args.backbone, pretrained=args.pretrained, pretrained_backbone=args.pretrained_backbone,
                  image_size=list(image_size),
                  optimizer=args.optimizer, lr=args.lr, weight_decay=args.weight_decay, scheduler=args.scheduler,
                  warmup_epochs=args.warmup_epochs, step_size=args.step_size, lr_steps=args.lr_steps,
                  epochs=args.epochs, backbone_lr_mult=train_args.backbone_lr_mult(args), frozen_bn=args.freeze_bn,
                  freeze_backbone=args.freeze_backbone, norm=norm_choice(args), drop_path_rate=args.drop_path_rate,
                  precise_bn_images=args.precise_bn_images, precise_bn_batch=args.precise_bn_batch)
    recipe = autobatch_recipe(get_task("detect"), config, args.precision)
    batch_size = resolve_batch_size(args.batch_size, AUTOBATCH_STEP, recipe, max_batch=len(data.train),
                                    max_memory=args.max_memory, memory_fraction=args.memory_fraction)
    task = DetectionTask(**config)
    train_loader, val_loader = make_loaders(data.train, data.val, batch_size, workers=args.workers,
                                            collate_fn=collate)
    engine = EngineConfig(task="detect", epochs=args.epochs, monitor="val/map", mode="max",
                          log_keys=("train/loss", "val/loss", "val/map", "val/map_50"),
                          gradient_clip_val=train_args.clip(args),
                          **engine_options(args))
    hparams = {"task": {k: v for k, v in config.items() if k != "class_names"}, "class_names": data.class_names,
               "data": {"source": data.source, "format": data.format, "train": len(data.train),
                        "val": len(data.val), "batch_size": batch_size, "val_ratio": args.val_ratio,
                        "seed": args.seed, "augment": args.augment}}
    result = fit(task, train_loader, val_loader, engine, hparams=hparams)
    if result.trainer.is_global_zero and result.best_path is not None and result.best_path.exists():
        finish_run(result, data, batch_size)
    return result


def finish_run(result: FitResult, data, batch_size: int) -> None:
    """The best checkpoint: scored on the validation split into the run folder, and exported as safetensors."""
    best = load(result.best_path)
    metrics = evaluate_on(best, data.val, result.run_dir / "val", batch_size=batch_size)
    for name in ("pr_curves.png", "val_predictions.png"):  # beside results.png, where users look first
        if (result.run_dir / "val" / name).exists():
            (result.run_dir / "val" / name).replace(result.run_dir / name)
    save_task_weights(best, dict(best.hparams), result.run_dir / "best.safetensors",
                      extra={"class_names": json.dumps(best.cfg.class_names),
                             "image_size": json.dumps(list(best.cfg.image_size))})
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
    return "n/a" if value is None else f"{value:.4f}"
