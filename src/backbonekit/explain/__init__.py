"""``backbonekit explain``: where a trained network looks. Class activation maps (grad-cam's GradCAM, GradCAM++,
LayerCAM, EigenCAM) for a classifier's top classes and for each of a detector's boxes, the decoder's cross-attention
for each edit a sequence model predicts, and the activations of every backbone level.

In Python::

    from backbonekit.explain import explain
    files = explain("runs/classify/exp/best.ckpt", ["cat.jpg"], method="gradcam++")

Each task implements ``explain`` in its own folder (``classification/explain.py`` …) and registers it in its
``TaskSpec``; this package holds what they share (methods, layers, overlays, feature maps).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence


METHODS = ("gradcam", "gradcam++", "layercam", "eigencam")


@dataclass
class ExplainOptions:
    method: str | None = None        # gradcam | gradcam++ | layercam | eigencam; None: the task's default
    layer: str | None = None         # a module name of the backbone; default: the last level of its feature_info
    out: str | Path | None = None    # default: explain/ in the checkpoint's run folder
    top_k: int = 3                   # classify: maps for the k most likely classes
    score_threshold: float = 0.3     # detect: boxes at least this likely
    max_boxes: int = 10              # detect: at most this many boxes an image
    feature_maps: int = 0            # > 0: also the first N channels of every backbone level
    device: str | None = None
    skip_bad_images: bool = False
    extra: dict = field(default_factory=dict)


def explain(checkpoint: str | Path, images: Sequence[str | Path], task: str | None = None, **options) -> list[Path]:
    """The explanation files written for ``images`` by the trained ``checkpoint`` (its task read from the file;
    ``task`` given: another task's checkpoint is refused)."""
    from backbonekit.explain.command import explain_files

    return list(explain_files(checkpoint, [str(p) for p in images], task, ExplainOptions(**options)))
