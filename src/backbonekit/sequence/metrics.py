"""Fixed-Acc and Adaptive-Acc of the official SeqDeepFake evaluation, plus per-length accuracy and first-edit confusion.

Both accuracies are sums over the whole split (correct positions / compared positions), not means of per-image ratios:
- Fixed-Acc compares all 5 positions of prediction and label.
- Adaptive-Acc compares the first L = max(#nonzero label, #nonzero prediction) positions; an original image predicted
  as original has L = 0 and counts as 1 correct of 1.

``SequenceAccuracy`` is a torchmetrics ``Metric``, so its sums are reduced across processes under DDP.
"""
from __future__ import annotations

import torch
from torchmetrics import Metric

from backbonekit.sequence.vocab import MAX_EDITS, NUM_EDIT_TYPES


def sequence_scores(preds: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-image counts for (B, 5) id tensors: fixed_correct, adaptive_correct, adaptive_total, exact, length."""
    preds, labels = torch.as_tensor(preds).long(), torch.as_tensor(labels).long()
    if preds.shape != labels.shape or preds.ndim != 2 or preds.shape[1] != MAX_EDITS:
        raise ValueError(f"expected two (B, {MAX_EDITS}) tensors, got {tuple(preds.shape)} and {tuple(labels.shape)}")
    same = preds == labels
    span = torch.maximum((labels != 0).sum(1), (preds != 0).sum(1))
    in_span = torch.arange(MAX_EDITS, device=preds.device)[None] < span[:, None]
    adaptive_correct = (same & in_span).sum(1)
    both_original = span == 0
    return {
        "fixed_correct": same.sum(1),
        "adaptive_correct": torch.where(both_original, 1, adaptive_correct),
        "adaptive_total": span.clamp(min=1),
        "exact": same.all(1).long(),
        "length": (labels != 0).sum(1),
    }


def fixed_adaptive(preds, labels) -> tuple[float, float]:
    """(Fixed-Acc, Adaptive-Acc) of a whole split in one call."""
    s = sequence_scores(preds, labels)
    fixed = s["fixed_correct"].sum().item() / (MAX_EDITS * len(s["length"]))
    adaptive = s["adaptive_correct"].sum().item() / s["adaptive_total"].sum().item()
    return fixed, adaptive


class SequenceAccuracy(Metric):
    """Accumulates per batch; ``compute()`` returns Fixed-Acc, Adaptive-Acc, exact-match and per-length figures.

    ``confusion[i, j]`` counts images whose first true edit is ``i`` and first predicted edit is ``j`` (0 = original).
    """

    full_state_update = False
    higher_is_better = True

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        n = MAX_EDITS + 1  # true lengths 0..5
        for name in ("count", "fixed_correct", "adaptive_correct", "adaptive_total", "exact"):
            self.add_state(name, default=torch.zeros(n, dtype=torch.long), dist_reduce_fx="sum")
        k = NUM_EDIT_TYPES + 1
        self.add_state("confusion", default=torch.zeros(k, k, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, preds: torch.Tensor, labels: torch.Tensor) -> None:
        s = sequence_scores(preds.to(self.count.device), labels.to(self.count.device))
        length = s["length"]
        self.count += torch.bincount(length, minlength=MAX_EDITS + 1)
        for name in ("fixed_correct", "adaptive_correct", "adaptive_total", "exact"):
            getattr(self, name).index_add_(0, length, s[name])
        k = NUM_EDIT_TYPES + 1
        first = labels[:, 0].long().to(self.count.device) * k + preds[:, 0].long().to(self.count.device)
        self.confusion += torch.bincount(first.clamp(0, k * k - 1), minlength=k * k).view(k, k)

    def compute(self) -> dict:
        total = self.count.sum().clamp(min=1)
        out = {
            "fixed_acc": (self.fixed_correct.sum() / (MAX_EDITS * total)).item(),
            "adaptive_acc": (self.adaptive_correct.sum() / self.adaptive_total.sum().clamp(min=1)).item(),
            "exact_match": (self.exact.sum() / total).item(),
            "count": int(self.count.sum()),
            "per_length": {},
            "first_edit_confusion": self.confusion.tolist(),
        }
        for n in range(MAX_EDITS + 1):
            c = int(self.count[n])
            if c:
                out["per_length"][n] = {
                    "count": c,
                    "exact_match": int(self.exact[n]) / c,
                    "fixed_acc": int(self.fixed_correct[n]) / (MAX_EDITS * c),
                    "adaptive_acc": int(self.adaptive_correct[n]) / int(self.adaptive_total[n]),
                }
        return out
