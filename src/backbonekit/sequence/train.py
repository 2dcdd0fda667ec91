"""``train sequence``: the official data → SequenceTask, through the shared training routine (best Fixed and best
Adaptive kept apart); then the best checkpoint is scored on the validation split."""
from __future__ import annotations

import json
import sys

from backbonekit.models.registry import default_cfg
from backbonekit.sequence.data import SeqDeepFakeDataset
from backbonekit.sequence.evaluate import evaluate_task, format_report, write_metrics
from backbonekit.sequence.task import BestAdaptive
from backbonekit.training import train_args
from backbonekit.training.engine import FitResult
from backbonekit.training.settings import TrainSettings
from backbonekit.training.task_spec import get_task
from backbonekit.training.train_routine import TrainPlan, train_task


def train_sequence(args: TrainSettings) -> FitResult:
    return train_task(args, get_task("sequence"), plan_sequence, finish_run)


def plan_sequence(args: TrainSettings) -> TrainPlan:
    default_cfg(args.backbone)  # an unknown name fails here, before any data is read
    splits = {}
    image_size = train_args.image_size(args.image_size, 256, "sequence", square=True)
    for split in ("train", "val"):
        splits[split] = SeqDeepFakeDataset(args.data, args.subset, split, image_size=image_size,
                                           skip_missing=args.skip_bad_images)
        splits[split].report_skipped()
    config = dict(backbone=args.backbone, subset=args.subset, pretrained_backbone=args.pretrained_backbone,
                  image_size=image_size, **args.optim_config())
    return TrainPlan(config, splits["train"], splits["val"], monitor="val/fixed_acc",
                     log_keys=("train/loss", "val/loss", "val/adaptive_acc"), callbacks=(BestAdaptive(),),
                     data={"root": str(args.data), "subset": args.subset, "train": len(splits["train"]),
                           "val": len(splits["val"]), "skip_bad_images": args.skip_bad_images})


def finish_run(result: FitResult, best, batch_size: int, plan: TrainPlan) -> None:
    """The best checkpoint scored on the validation split into ``val/metrics.json``."""
    scores = {"fixed_acc": result.best_score}
    for cb in result.trainer.callbacks:
        if isinstance(cb, BestAdaptive) and cb.best_model_score is not None:
            scores["adaptive_acc"] = float(cb.best_model_score)
    print(f"best val Fixed-Acc {_pct(scores.get('fixed_acc'))} (best.ckpt), best val Adaptive-Acc "
          f"{_pct(scores.get('adaptive_acc'))} (best_adaptive.ckpt); results in {result.run_dir}", file=sys.stderr)
    data = plan.data
    metrics = evaluate_task(best, data["root"], data["subset"], "val", batch_size=batch_size,
                            skip_missing=data["skip_bad_images"])
    metrics["checkpoint"] = str(result.best_path)
    write_metrics(metrics, result.run_dir / "val" / "metrics.json")
    summary_path = result.run_dir / "metrics.json"
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    summary["best_checkpoint_val"] = {k: v for k, v in metrics.items() if k != "unmatched"}
    summary_path.write_text(json.dumps(summary, indent=2))
    print(format_report(metrics), file=sys.stderr)


def _pct(v) -> str:
    return "n/a" if v is None else f"{v:.2f}%"
