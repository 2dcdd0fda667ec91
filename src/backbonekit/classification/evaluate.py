"""``eval classify``: accuracy of a trained checkpoint on a data set's validation split."""
from __future__ import annotations

import argparse
from pathlib import Path

import torch
import torchmetrics
from torch.utils.data import DataLoader

from backbonekit.classification.data import build_classification_data
from backbonekit.training.inference import load_for_inference
from backbonekit.training.task_spec import get_task
from backbonekit.errors import ConfigError
from backbonekit.io.images import report_skipped
from backbonekit.io.output import Formats, eval_output, write_metrics
from backbonekit.training.run_record import eval_source, recorded_settings


def evaluate_classifier(args: argparse.Namespace, formats: Formats) -> dict:
    """``formats``: what the command declared it writes (passed in: this module sits below the command's)."""
    runtime = getattr(args, "runtime", "torch")
    if getattr(args, "compile", False) and runtime != "torch":
        raise ConfigError(f"--compile applies to --runtime torch, not {runtime}")
    split = getattr(args, "split", "val")
    output = eval_output(args, formats, Path(args.checkpoint).parent / "eval" / split)
    # A run's split refused before loading (another runtime exports the checkpoint into the run folder); without a
    # record, after it, so that an unreadable checkpoint is said first.
    def source_of():
        return eval_source(args.checkpoint, args.data, val_ratio=args.val_ratio, seed=args.seed)
    source = source_of() if recorded_settings(args.checkpoint) is not None else None
    trained, device = load_for_inference(args.checkpoint, get_task("classify"), getattr(args, "device", None), runtime,
                                         getattr(args, "runtime_precision", "fp32"), args.batch_size)
    if getattr(args, "compile", False):
        trained.model.compile()
    class_names = list(trained.cfg.class_names)
    source = source or source_of()
    data = build_classification_data(source["data"], image_size=trained.cfg.image_size, augment="none",
                                     val_ratio=source["val_ratio"], seed=source["seed"],
                                     skip_bad_images=args.skip_bad_images)
    report_skipped(data.skipped)
    if split == "test" and data.test is None:
        raise ConfigError(f"--split test: {source['data']} has no test split apart from its validation data (the "
                          "MNIST family's IDX folders have one: the t10k files)")
    scored = data.test if split == "test" else data.val
    if split == "test":
        print(f"scoring {source['data']}: the official test split ({len(scored)} images, never seen in training "
              "or validation)")
    else:
        print(f"scoring {source['what']}: {source['data']}, validation split (val-ratio {source['val_ratio']}, "
              f"seed {source['seed']}; {len(scored)} images)")
    if data.class_names != class_names:
        missing = sorted(set(data.class_names) - set(class_names))
        extra = sorted(set(class_names) - set(data.class_names))
        raise ConfigError(f"{args.checkpoint} was trained on other classes than {args.data}: "
                          f"data only {missing or '-'}, checkpoint only {extra or '-'}"
                          + ("" if missing or extra else " (same names, different order)"))
    n = len(class_names)
    top1 = torchmetrics.Accuracy("multiclass", num_classes=n)
    top5 = torchmetrics.Accuracy("multiclass", num_classes=n, top_k=min(5, n))
    per_class = torchmetrics.Accuracy("multiclass", num_classes=n, average=None)
    loader = DataLoader(scored, batch_size=args.batch_size, num_workers=args.workers)
    with torch.inference_mode():
        for x, y in loader:
            logits = trained(x.to(device)).cpu()
            for metric in (top1, top5, per_class):
                metric.update(logits, y)
    what = "the official test split" if split == "test" else f"validation split ({source['what']})"
    result = {"checkpoint": str(args.checkpoint), "data": source["data"], "split": what,
              "val_ratio": source["val_ratio"], "seed": source["seed"], "images": len(scored),
              "unit": "percent", "top1": 100 * top1.compute().item(), "top5": 100 * top5.compute().item(),
              "per_class": dict(zip(class_names, (100 * per_class.compute()).tolist())),
              "skipped_images": len(data.skipped)}
    _print(result, write_metrics(result, output))
    return result


def _print(result: dict, written: list[Path]) -> None:
    from rich.table import Table

    from backbonekit.io.console import make_console

    title = f"{result['split']}, {result['images']} images: top-1 {result['top1']:.2f}%"
    if len(result["per_class"]) > 5:  # with 5 classes or fewer top-5 is 100% by definition
        title += f"  top-5 {result['top5']:.2f}%"
    table = Table("class", "accuracy (%)", title=title)
    for name, acc in result["per_class"].items():
        table.add_row(name, f"{acc:.2f}")
    console = make_console()
    console.print(table)
    console.print(f"wrote {', '.join(map(str, written))}")
