"""``train classify``: data → ClassificationTask → the engine, then best.safetensors and the confusion matrix."""
from __future__ import annotations

import argparse
import json
import os
import sys

import lightning.pytorch as pl

from backbonekit.classification.data import build_classification_data
from backbonekit.classification.task import ClassificationTask, load
from backbonekit.classification.transforms import mixing_collate
from backbonekit.models.registry import default_cfg
from backbonekit.training.autobatch import batch_size_scope, resolve_batch_size
from backbonekit.training.autobatch_step import AUTOBATCH_STEP, autobatch_recipe
from backbonekit.training.engine import EngineConfig, FitResult, fit
from backbonekit.training.loaders import make_loaders
from backbonekit.training.run_args import engine_options
from backbonekit.training.task_io import save_task_weights


def train_classifier(args: argparse.Namespace) -> FitResult:
    with batch_size_scope():
        return _train(args)


def _train(args: argparse.Namespace) -> FitResult:
    defaults = default_cfg(args.model)  # an unknown name fails here, before any data is read
    pl.seed_everything(args.seed, workers=True, verbose=False)
    image_size = args.image_size or defaults["input_size"][-1]
    data = build_classification_data(args.data, image_size=image_size, augment=args.augment,
                                     val_ratio=args.val_ratio, seed=args.seed, skip_bad_images=args.skip_bad_images)
    if data.skipped:
        print(f"skipped {len(data.skipped)} unreadable image(s), e.g. {data.skipped[0][0]}: {data.skipped[0][1]}",
              file=sys.stderr)
    lr = args.lr if args.lr is not None else (0.1 if args.optimizer == "sgd" else 1e-3)
    config = dict(model=args.model, num_classes=len(data.class_names), class_names=data.class_names,
                  pretrained=args.pretrained, image_size=image_size, optimizer=args.optimizer, lr=lr, weight_decay=args.weight_decay,
                  scheduler=args.scheduler, warmup_epochs=args.warmup_epochs, step_size=args.step_size,
                  epochs=args.epochs, freeze_backbone=args.freeze_backbone, backbone_lr_mult=args.backbone_lr_mult,
                  label_smoothing=args.label_smoothing, drop_rate=args.drop_rate, drop_path_rate=args.drop_path_rate)
    recipe = autobatch_recipe(ClassificationTask, config, args.precision)
    batch_size = resolve_batch_size(args.batch_size, AUTOBATCH_STEP, recipe, max_batch=len(data.train),
                                    max_memory=args.max_memory, memory_fraction=args.memory_fraction)
    task = ClassificationTask(**config)

    collate = mixing_collate(len(data.class_names), args.cutmix, args.mixup)
    train_loader, val_loader = make_loaders(data.train, data.val, batch_size, workers=args.workers,
                                            collate_fn=collate, mixing=collate is not None)

    engine = EngineConfig(task="classify", epochs=args.epochs, monitor="val/top1", mode="max",
                          log_keys=("train/loss", "val/loss", "val/top1", "val/top5"), **engine_options(args))
    hparams = {"task": {k: v for k, v in config.items() if k != "class_names"}, "class_names": data.class_names,
               "data": {"source": data.source, "path": args.data, "train": len(data.train), "val": len(data.val),
                        "batch_size": batch_size, "augment": args.augment, "cutmix": args.cutmix,
                        "mixup": args.mixup}}
    result = fit(task, train_loader, val_loader, engine, hparams=hparams)
    if result.trainer.is_global_zero and result.best_path is not None and result.best_path.exists():
        _export_best(result, config)
    return result


def _export_best(result: FitResult, config: dict) -> None:
    from backbonekit.training.plots import plot_confusion_matrix

    trained = load(result.best_path)
    save_task_weights(trained, dict(trained.hparams), result.run_dir / "best.safetensors",
                      extra={"class_names": json.dumps(config["class_names"]),
                             "image_size": str(config["image_size"])})
    task = result.trainer.lightning_module
    confusion = getattr(task, "last_confusion", None)
    if confusion is not None:
        plot_confusion_matrix(confusion.numpy(), config["class_names"], result.run_dir / "confusion_matrix.png",
                              title="confusion matrix (last validation)")
    per_class = getattr(task, "last_per_class", None)
    summary_path = result.run_dir / "metrics.json"
    if per_class is not None and summary_path.exists():
        summary = json.loads(summary_path.read_text())
        summary["final_per_class_top1"] = dict(zip(config["class_names"], per_class.tolist()))
        summary_path.write_text(json.dumps(summary, indent=2))
    print(f"results in {result.run_dir}{os.sep}", file=sys.stderr)
