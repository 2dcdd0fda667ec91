"""``train sequence``: the official data → SequenceTask → the engine (best Fixed and best Adaptive kept apart); then
the best checkpoint is scored on the validation split and exported as ``best.safetensors``."""
from __future__ import annotations

import argparse
import json
import sys

import lightning.pytorch as pl

from backbonekit.models.registry import default_cfg
from backbonekit.sequence.data import SeqDeepFakeDataset
from backbonekit.sequence.evaluate import evaluate_checkpoint, format_report, write_metrics
from backbonekit.sequence.task import BestAdaptive, SequenceTask, load
from backbonekit.training.autobatch import batch_size_scope, resolve_batch_size
from backbonekit.training.autobatch_step import AUTOBATCH_STEP, autobatch_recipe
from backbonekit.training.engine import EngineConfig, FitResult, fit
from backbonekit.training.loaders import make_loaders
from backbonekit.training import train_args
from backbonekit.training.run_args import engine_options
from backbonekit.training.task_spec import get_task
from backbonekit.training.task_io import save_task_weights


def train_sequence(args: argparse.Namespace) -> FitResult:
    with batch_size_scope():
        return _train(args)


def _train(args: argparse.Namespace) -> FitResult:
    default_cfg(args.backbone)  # an unknown name fails here, before any data is read
    pl.seed_everything(args.seed, workers=True, verbose=False)
    splits = {}
    image_size = train_args.image_size(args.image_size, 256, "sequence", square=True)
    for split in ("train", "val"):
        splits[split] = SeqDeepFakeDataset(args.data, args.subset, split, image_size=image_size,
                                           skip_missing=args.skip_bad_images)
        if splits[split].skipped:
            print(f"{split}: skipped {len(splits[split].skipped)} row(s) whose image is missing, e.g. "
                  f"line {splits[split].skipped[0][1]} {splits[split].skipped[0][0]}", file=sys.stderr)
    config = dict(backbone=args.backbone, subset=args.subset, pretrained_backbone=args.pretrained_backbone,
                  image_size=image_size, optimizer=args.optimizer, lr=args.lr,
                  backbone_lr=args.lr * train_args.backbone_lr_mult(args), weight_decay=args.weight_decay,
                  epochs=args.epochs, scheduler=args.scheduler, warmup_epochs=args.warmup_epochs,
                  lr_steps=args.lr_steps, step_size=args.step_size, freeze_backbone=args.freeze_backbone,
                  freeze_bn=args.freeze_bn)
    recipe = autobatch_recipe(get_task("sequence"), config, args.precision)
    batch_size = resolve_batch_size(args.batch_size, AUTOBATCH_STEP, recipe, max_batch=len(splits["train"]),
                                    max_memory=args.max_memory, memory_fraction=args.memory_fraction)
    task = SequenceTask(**config)
    train_loader, val_loader = make_loaders(splits["train"], splits["val"], batch_size, workers=args.workers)
    engine = EngineConfig(task="sequence", epochs=args.epochs, monitor="val/fixed_acc", mode="max",
                          log_keys=("train/loss", "val/loss", "val/adaptive_acc"),
                          gradient_clip_val=train_args.clip(args), **engine_options(args))
    hparams = {"task": config, "data": {"root": str(args.data), "train": len(splits["train"]),
                                        "val": len(splits["val"]), "batch_size": batch_size}}
    result = fit(task, train_loader, val_loader, engine, hparams=hparams, extra_callbacks=[BestAdaptive()])
    if result.trainer.is_global_zero:
        best = {"fixed_acc": result.best_score}
        for cb in result.trainer.callbacks:
            if isinstance(cb, BestAdaptive) and cb.best_model_score is not None:
                best["adaptive_acc"] = float(cb.best_model_score)
        print(f"best val Fixed-Acc {_pct(best.get('fixed_acc'))} (best.ckpt), best val Adaptive-Acc "
              f"{_pct(best.get('adaptive_acc'))} (best_adaptive.ckpt); results in {result.run_dir}", file=sys.stderr)
        if result.best_path is not None and result.best_path.exists():
            finish_run(result, args, batch_size)
    return result


def finish_run(result: FitResult, args: argparse.Namespace, batch_size: int) -> None:
    """The best checkpoint: scored on the validation split into ``val/metrics.json`` and exported as safetensors."""
    metrics = evaluate_checkpoint(result.best_path, args.data, args.subset, "val", batch_size=batch_size,
                                  skip_missing=args.skip_bad_images)
    write_metrics(metrics, result.run_dir / "val" / "metrics.json")
    best = load(result.best_path)
    save_task_weights(best, dict(best.hparams), result.run_dir / "best.safetensors")
    summary_path = result.run_dir / "metrics.json"
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    summary["best_checkpoint_val"] = {k: v for k, v in metrics.items() if k != "unmatched"}
    summary_path.write_text(json.dumps(summary, indent=2))
    print(format_report(metrics), file=sys.stderr)


def _pct(v) -> str:
    return "n/a" if v is None else f"{100 * v:.2f}"
