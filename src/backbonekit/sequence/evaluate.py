"""Scoring: a predictions CSV (annotation format, e.g. from another model) against a split's annotations, with the
same metric code as training, and a readable report of the result."""
from __future__ import annotations

import json
from pathlib import Path

import torch

from backbonekit.errors import DataError
from backbonekit.sequence.data import read_annotations
from backbonekit.sequence.metrics import SequenceAccuracy
from backbonekit.sequence.vocab import edit_names


def _key(file_path: str) -> str:
    return Path(file_path.strip()).as_posix().removeprefix("./")


def score_predictions(predictions: str | Path, root: str | Path, subset: str, split: str = "test") -> dict:
    """Fixed/Adaptive-Acc etc. over the rows of ``predictions`` whose ``file_path`` is in the annotations.

    The result also lists ``unmatched`` predictions (no such annotation) and counts ``missing`` annotations (no
    prediction); both are reported, neither is scored.
    """
    edit_names(subset)
    if not Path(root).is_dir():
        raise DataError(f"--data {root}: {'a file' if Path(root).exists() else 'no such folder'}, not a SeqDeepFake "
                        f"data root (one holding {subset}/annotations/{split}.csv)")
    truth = {_key(f): label for f, label, _ in read_annotations(Path(root) / subset / "annotations" / f"{split}.csv")}
    seen: dict[str, int] = {}
    preds, labels, unmatched = [], [], []
    for file_path, label, line in read_annotations(predictions, kind="predictions"):
        key = _key(file_path)
        if key in seen:
            raise DataError(f"{predictions} line {line}: {file_path} already predicted on line {seen[key]}")
        seen[key] = line
        if key in truth:
            preds.append(label)
            labels.append(truth[key])
        else:
            unmatched.append({"line": line, "file_path": file_path})
    if not preds:
        raise DataError(f"{predictions}: no row matches an annotation of {subset}/{split} "
                        f"(file_path must be relative to the data root, e.g. {next(iter(truth), '?')})")
    metric = SequenceAccuracy()
    metric.update(torch.tensor(preds), torch.tensor(labels))
    result = in_percent(metric.compute())
    result.update(subset=subset, split=split, unmatched=unmatched, missing=len(truth) - len(preds))
    return result


SCORES = ("fixed_acc", "adaptive_acc", "exact_match")


def in_percent(result: dict) -> dict:
    """``SequenceAccuracy.compute()``'s fractions (the official code's) as percent, as every score is shown."""
    out = {k: 100 * v if k in SCORES else v for k, v in result.items()}
    out["per_length"] = {n: {k: 100 * v if k in SCORES else v for k, v in row.items()}
                         for n, row in result.get("per_length", {}).items()}
    return {"unit": "percent", **out}


def format_report(result: dict) -> str:
    """Plain-text summary: headline accuracies, per-length table, first-edit confusion."""
    names = ("original",) + edit_names(result["subset"])[1:]
    lines = [f"{result['subset']}/{result['split']}: {result['count']} images  "
             f"Fixed-Acc {result['fixed_acc']:.2f}%  Adaptive-Acc {result['adaptive_acc']:.2f}%  "
             f"exact {result['exact_match']:.2f}%",
             "length  count  exact %  fixed %  adaptive %"]
    for n, row in sorted(result["per_length"].items(), key=lambda kv: int(kv[0])):
        lines.append(f"{n:>6}  {row['count']:>5}  {row['exact_match']:7.2f}  {row['fixed_acc']:7.2f}  "
                     f"{row['adaptive_acc']:10.2f}")
    lines.append("first edit: true (rows) vs predicted (columns)")
    width = max(len(n) for n in names)
    lines.append(" " * width + " " + " ".join(f"{n[:8]:>8}" for n in names))
    for name, row in zip(names, result["first_edit_confusion"]):
        lines.append(f"{name:>{width}} " + " ".join(f"{v:>8}" for v in row))
    if result.get("unmatched"):
        shown = ", ".join(f"line {u['line']} {u['file_path']}" for u in result["unmatched"][:5])
        more = f" (+{len(result['unmatched']) - 5} more)" if len(result["unmatched"]) > 5 else ""
        lines.append(f"{len(result['unmatched'])} prediction row(s) match no annotation: {shown}{more}")
    if result.get("missing"):
        lines.append(f"{result['missing']} annotated image(s) have no prediction (not scored)")
    return "\n".join(lines)


def write_metrics(result: dict, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2))
    return path


def evaluate_task(task, root: str | Path, subset: str, split: str = "test", *, batch_size: int = 32,
                  skip_missing: bool = False, device: str | None = None) -> dict:
    """Greedy-decode a split with a trained ``SequenceTask`` (eval mode) and score it."""
    from torch.utils.data import DataLoader

    from backbonekit.sequence.data import SeqDeepFakeDataset, build_transform
    from backbonekit.training.inference import pick_device

    device = pick_device(device)
    if isinstance(task, torch.nn.Module):  # not an ONNX runtime's model
        task.to(device)
    ds = SeqDeepFakeDataset(root, subset, split, transform=build_transform(task.cfg.image_size, train=False),
                            skip_missing=skip_missing)
    ds.report_skipped()
    # One process scores the whole split (after DDP training only rank 0 does): no syncing with the others.
    metric = SequenceAccuracy(sync_on_compute=False)
    with torch.inference_mode():
        for images, labels in DataLoader(ds, batch_size=batch_size):
            metric.update(task(images.to(device)).cpu(), labels)
    result = in_percent(metric.compute())
    result.update(subset=subset, split=split, backbone=task.cfg.backbone,
                  skipped=len(ds.skipped), unmatched=[], missing=0)
    return result
