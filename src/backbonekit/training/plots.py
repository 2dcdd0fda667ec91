"""Plots of a run: loss and metric curves from results.csv, confusion matrices."""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")  # files only: no display on servers and CI
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from backbonekit.training.units import is_score  # noqa: E402


def plot_results(csv_path: Path, out_path: Path) -> Path | None:
    """One panel per quantity (losses together), x = the epoch as results.csv and the console count it (from 1)."""
    csv_path = Path(csv_path)
    if not csv_path.exists():
        return None
    with open(csv_path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        return None
    epochs = [int(r["epoch"]) for r in rows]
    columns = [c for c in rows[0] if c not in ("epoch", "seconds")]
    losses = [c for c in columns if "loss" in c]
    others = [c for c in columns if c not in losses]
    panels = ([losses] if losses else []) + [[c] for c in others]
    fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 3.2), squeeze=False)
    for ax, keys in zip(axes[0], panels):
        for key in keys:
            values = [float(r[key]) if r.get(key) not in (None, "") else np.nan for r in rows]
            ax.plot(epochs, values, marker="o", markersize=3, label=key)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # no epoch 1.5
        ax.set_title(keys[0] + (" (%)" if is_score(keys[0]) else "") if len(keys) == 1 else "loss")
        if len(keys) > 1:
            ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out_path, dpi=110)
    plt.close(fig)
    return Path(out_path)


def plot_confusion_matrix(matrix, class_names: Sequence[str], out_path: Path, title: str = "confusion matrix") -> Path:
    """Rows: true class, columns: predicted; cells normalised per true class, with counts when there is room."""
    fig = confusion_figure(matrix, class_names, title)
    fig.savefig(out_path, dpi=110)
    plt.close(fig)
    return Path(out_path)


def confusion_figure(matrix, class_names: Sequence[str], title: str):
    m = np.asarray(matrix, dtype=float)
    norm = m / np.clip(m.sum(1, keepdims=True), 1, None)
    n = len(class_names)
    size = min(2 + 0.45 * n, 16)
    # Wide enough for the title (about 0.1 in a character at 12 pt): a few classes make a small square that would
    # cut it off. Constrained layout keeps long tick labels inside the figure.
    fig, ax = plt.subplots(figsize=(max(size, 1 + 0.1 * len(title)), size + 0.5), layout="constrained")
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ticks = range(n)
    ax.set_xticks(ticks, class_names, rotation=90 if n > 10 else 0, fontsize=8)
    ax.set_yticks(ticks, class_names, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    if n <= 30:
        for i in range(n):
            for j in range(n):
                if m[i, j]:
                    ax.text(j, i, int(m[i, j]), ha="center", va="center", fontsize=7,
                            color="white" if norm[i, j] > 0.5 else "black")
    return fig
