"""``train sequence``: the official data → SequenceTask → the engine (best Fixed and best Adaptive kept apart)."""
from __future__ import annotations

import argparse
import sys

import lightning.pytorch as pl
from torch.utils.data import DataLoader

from backbonekit.sequence.data import SeqDeepFakeDataset
from backbonekit.sequence.task import BestAdaptive, SequenceTask
from backbonekit.training.engine import EngineConfig, FitResult, fit
from backbonekit.training.run_args import engine_options


def train_sequence(args: argparse.Namespace) -> FitResult:
    pl.seed_everything(args.seed, workers=True, verbose=False)
    splits = {}
    for split in ("train", "val"):
        splits[split] = SeqDeepFakeDataset(args.data, args.subset, split, image_size=args.image_size,
                                           skip_missing=args.skip_missing)
        if splits[split].skipped:
            print(f"{split}: skipped {len(splits[split].skipped)} row(s) whose image is missing, e.g. "
                  f"line {splits[split].skipped[0][1]} {splits[split].skipped[0][0]}", file=sys.stderr)
    config = dict(backbone=args.backbone, subset=args.subset, pretrained_backbone=args.pretrained_backbone,
                  image_size=args.image_size, lr=args.lr, backbone_lr=args.backbone_lr,
                  weight_decay=args.weight_decay, epochs=args.epochs, warmup_epochs=args.warmup_epochs,
                  lr_steps=args.lr_steps)
    task = SequenceTask(**config)
    loader_args = dict(num_workers=args.workers, persistent_workers=args.workers > 0)
    train_loader = DataLoader(splits["train"], batch_size=args.batch_size, shuffle=True, **loader_args)
    val_loader = DataLoader(splits["val"], batch_size=args.batch_size, shuffle=False, **loader_args)
    engine = EngineConfig(task="sequence", epochs=args.epochs, monitor="val/fixed_acc", mode="max",
                          log_keys=("train/loss", "val/loss", "val/adaptive_acc"),
                          gradient_clip_val=0.1,  # the official recipe clips the gradient norm at 0.1
                          **engine_options(args))
    hparams = {"task": config, "data": {"root": str(args.data), "train": len(splits["train"]),
                                        "val": len(splits["val"]), "batch_size": args.batch_size}}
    result = fit(task, train_loader, val_loader, engine, hparams=hparams, extra_callbacks=[BestAdaptive()])
    if result.trainer.is_global_zero:
        best = {"fixed_acc": result.best_score}
        for cb in result.trainer.callbacks:
            if isinstance(cb, BestAdaptive) and cb.best_model_score is not None:
                best["adaptive_acc"] = float(cb.best_model_score)
        print(f"best val Fixed-Acc {_pct(best.get('fixed_acc'))} (best.ckpt), best val Adaptive-Acc "
              f"{_pct(best.get('adaptive_acc'))} (best_adaptive.ckpt); results in {result.run_dir}", file=sys.stderr)
    return result


def _pct(v) -> str:
    return "n/a" if v is None else f"{100 * v:.2f}"
