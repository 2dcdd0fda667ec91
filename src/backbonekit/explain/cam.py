"""Class activation maps by the grad-cam library (pytorch-grad-cam): the methods by their CLI names, and one call
that returns a map in [0, 1] per image at the input's resolution.

A target is anything grad-cam accepts: a callable from one image's model output to a scalar (for a class:
``ClassifierOutputTarget``; a detector wraps its model so the output is the scores of its boxes, see
``detection.explain``). EigenCAM needs no target: it is the first principal component of the layer's activations.
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn as nn

from backbonekit.errors import ConfigError
from backbonekit.explain import METHODS


def cam_class(method: str):
    try:
        from pytorch_grad_cam import EigenCAM, GradCAM, GradCAMPlusPlus, LayerCAM
    except ImportError as e:
        raise ConfigError("explain needs the grad-cam package: pip install 'backbonekit[explain]'") from e
    classes = {"gradcam": GradCAM, "gradcam++": GradCAMPlusPlus, "layercam": LayerCAM, "eigencam": EigenCAM}
    if method not in classes:
        raise ConfigError(f"--method must be one of {', '.join(METHODS)}, got {method!r}")
    return classes[method]


def cam_maps(model: nn.Module, layer: nn.Module, images: torch.Tensor, targets: Sequence[Callable] | None,
             method: str = "gradcam") -> np.ndarray:
    """(N, H, W) float32 maps in [0, 1], one per image of ``images`` (N, 3, H, W, normalised as the model expects);
    ``targets[i]`` scores image i's output (None: the top class)."""
    model.eval()
    # grad-cam needs gradients at the layer: parameters frozen for inference would give none. They are frozen again
    # afterwards, as they were (the caller's model is not left changed).
    frozen = [p for p in model.parameters() if not p.requires_grad]
    try:
        with torch.enable_grad(), cam_class(method)(model=model, target_layers=[layer]) as cam:
            for p in frozen:
                p.requires_grad_(True)
            maps = cam(input_tensor=images, targets=list(targets) if targets is not None else None)
    finally:
        for p in frozen:
            p.requires_grad_(False)
    return np.nan_to_num(maps.astype(np.float32))
