"""``backbonekit explain``: where a trained network looks. Class activation maps (grad-cam's GradCAM, GradCAM++,
LayerCAM, EigenCAM) for a classifier's top classes and for each of a detector's boxes, the decoder's cross-attention
for each edit a sequence model predicts, and the activations of every backbone level.

In Python::

    from backbonekit.tasks import explain
    files = explain("runs/classify/exp/best.ckpt", ["cat.jpg"], method="gradcam++")

Each task implements ``explain`` in its own folder (``classification/explain.py`` …) and registers it in its
``TaskSpec``; this package holds what they share (methods, layers, overlays, feature maps).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


METHODS = ("gradcam", "gradcam++", "layercam", "eigencam")


@dataclass
class ExplainOptions:
    method: str | None = None        # gradcam | gradcam++ | layercam | eigencam; None: the task's default
    layer: str | None = None         # a module name of the model; None: the task's default level
    out: str | Path | None = None    # default: explain/ in the checkpoint's run folder
    top_k: int = 3                   # classify: maps for the k most likely classes
    score_threshold: float = 0.3     # detect: boxes at least this likely
    max_boxes: int = 8               # detect: at most this many boxes an image
    feature_maps: int = 0            # > 0: also the first N channels of every backbone level
    device: str | None = None
    skip_bad_images: bool = False

