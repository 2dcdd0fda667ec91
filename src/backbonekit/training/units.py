"""One unit for scores: every accuracy and mAP is logged, printed, written and plotted in percent (losses and rates
such as the FixMatch mask rate are not scores and keep their own scale)."""
from __future__ import annotations

UNIT_NOTE = "scores (accuracies, mAP) in percent; losses, rates and learning rates as they are"


def is_score(key: str) -> bool:
    """Whether a logged quantity (``val/top1``, ``val/map_50``, ``val/fixed_acc``, …) is a score in percent."""
    name = key.rsplit("/", 1)[-1]
    return name.startswith(("top", "map")) or name.endswith("acc") or name == "exact_match"


def shown(key: str, value: float) -> str:
    """``value`` as the console shows ``key``: scores as ``97.31%``, everything else to 4 decimals."""
    return f"{value:.2f}%" if is_score(key) else f"{value:.4f}"
