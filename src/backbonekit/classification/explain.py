"""``explain classify``: for each image, the class activation map of each of its top-k classes over the image,
and optionally the activations of every backbone level."""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from backbonekit.classification.data import build_eval_transform
from backbonekit.explain.cam import cam_maps
from backbonekit.explain.feature_maps import feature_map_file
from backbonekit.explain.images import each_image, output_name
from backbonekit.explain.layers import find_layer, map_size
from backbonekit.explain.overlay import heat_overlay, save_panels, to_rgb_array


def class_maps(trained, images: torch.Tensor, classes: list[int] | None = None, method: str = "gradcam",
               layer: str | None = None) -> np.ndarray:
    """(N, H, W) maps in [0, 1] of what drove class ``classes[i]`` (default: the top class) in image i of
    ``images`` (uint8 (N, 3, H, W) at the model's input size)."""
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    _, module = find_layer(trained.model, layer, images.shape[-1])
    device = next(trained.parameters()).device
    targets = None if classes is None else [ClassifierOutputTarget(int(c)) for c in classes]
    return cam_maps(trained, module, images.to(device).float() / 255, targets, method)


def explain_classifier(trained, paths: list[str], options) -> Iterator[Path]:
    names = list(trained.cfg.class_names)
    transform = build_eval_transform(trained.cfg.image_size)
    method = options.method or "gradcam"
    # A wrong --layer is said before any image is read.
    layer_name, layer = find_layer(trained.model, options.layer, trained.cfg.image_size)
    # The map's size says how coarse it is: a 3×3 map can only peak at one of nine cells.
    size = map_size(trained.model, layer, trained.cfg.image_size)
    where = f"{layer_name} ({size[0]}×{size[1]})" if size else layer_name
    k = max(1, min(options.top_k, len(names)))
    device = next(trained.parameters()).device
    taken = set()
    for path, image in each_image(paths, options.skip_bad_images):
        x = transform(image)[None]
        with torch.inference_mode():
            probs = trained(x.to(device)).softmax(-1)[0].cpu()
        top = probs.topk(k)
        maps = class_maps(trained, x.expand(k, -1, -1, -1), top.indices.tolist(), method, layer_name)
        picture = to_rgb_array(x[0])
        panels = [(picture, path.name)] + [
            (heat_overlay(picture, m), f"{names[c]} {p:.2f}")
            for m, c, p in zip(maps, top.indices.tolist(), top.values.tolist())]
        title = f"{method} at {where} · top {k} of {len(names)} classes"
        yield save_panels(panels, options.out / output_name(path, taken, "_cam.png"), title,
                          colorbar=f"{method} (1: the map's peak)")
        if options.feature_maps:
            yield feature_map_file(trained.model, x[0], trained.normalize,
                                   options.out / output_name(path, taken, "_features.png"), options.feature_maps)
