"""``explain detect``: for each detection, a map of what drove that box's score.

The score of a box is the sigmoid of one logit: its class at the anchor it was decoded from. The map is a CAM of that
logit (its anchor index comes out of postprocessing) at a backbone level, by default the finest one the BiFPN takes
in (stride 8, P3): it resolves small boxes, and every box's evidence, whatever level its anchor is on, flows back
through it. Drawn over the letterboxed input the detector saw, one panel per box."""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numpy as np
import torch
import torch.nn as nn
from PIL import ImageDraw
from torchvision import tv_tensors

from backbonekit.detection.plots import class_colours
from backbonekit.detection.postprocess import postprocess
from backbonekit.detection.predict import empty_target
from backbonekit.detection.transforms import eval_transforms
from backbonekit.errors import ConfigError
from backbonekit.explain.cam import cam_maps
from backbonekit.explain.feature_maps import feature_map_file
from backbonekit.explain.images import each_image, output_name
from backbonekit.explain.layers import find_layer, level_names
from backbonekit.explain.overlay import heat_overlay, save_panels, to_rgb_array
from backbonekit.io.images import image_to_tensor

BACKBONE = "backbone.body."  # where the classifier that serves as backbone sits in EfficientDet
FINEST_STRIDE = 8
# benchmarks/explain_detect_box_mass.py (D0 on synthetic shapes, 92 matched boxes): the share of a box's map inside
# its box was 69.2% with LayerCAM, 35.7% Grad-CAM, 38.9% Grad-CAM++ and EigenCAM (chance 17.2%). Grad-CAM averages a
# channel's gradient over the whole map, so one box's weights light every instance of its class; LayerCAM weighs each
# position by its own gradient.
DEFAULT_METHOD = "layercam"


class BoxLogits(nn.Module):
    """The trained detector with one output per kept box: the logit its score came from (row i: box i's)."""

    def __init__(self, trained, anchors: torch.Tensor, labels: torch.Tensor):
        super().__init__()
        self.trained, self.anchors, self.labels = trained, anchors, labels

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        logits, _ = self.trained(images)  # (B, N, C) in anchor order
        return logits[:, self.anchors, self.labels]


def detector_layer(trained, layer: str | None = None) -> tuple[str, nn.Module]:
    name, module = find_layer(trained.model.backbone.body, layer, root=trained.model, prefix=BACKBONE,
                              reduction=FINEST_STRIDE)
    if layer is not None:
        check_one_map(trained, name, module)
    return name, module


def check_one_map(trained, name: str, module: nn.Module) -> None:
    """A CAM needs a module that returns one (B, C, h, w) map a forward. The heads' modules run once per pyramid
    level, and grad-cam keeps only the first pass (P3's): a box decoded on a coarser level got a blank map and no
    error. A BiFPN cell returns a list (grad-cam failed inside). Both are refused here, found by one forward of a
    blank image."""
    outputs = []
    handle = module.register_forward_hook(lambda m, i, o: outputs.append(o))
    weight = next(trained.parameters())
    try:
        with torch.no_grad():
            trained(torch.zeros(1, 3, *trained.cfg.image_size, dtype=torch.uint8, device=weight.device))
    finally:
        handle.remove()
    if len(outputs) == 1 and torch.is_tensor(outputs[0]) and outputs[0].dim() == 4:
        return
    if len(outputs) > 1:
        why = f"runs {len(outputs)} times a forward (shared by the pyramid levels)"
    else:
        why = "does not run" if not outputs else f"returns a {type(outputs[0]).__name__}, not one map"
    raise ConfigError(f"--layer {name}: {why}; give a module that returns one map a forward: a backbone level "
                      f"({', '.join(level_names(trained.model.backbone.body, BACKBONE))}), a module inside one, or "
                      "a BiFPN node (fpn.cells.N.nodes.M)")


@torch.no_grad()
def detect_with_anchors(trained, image: torch.Tensor, score_threshold: float, max_boxes: int) -> dict:
    """Detections of one uint8 (3, H, W) image at the detector's size, with the anchor each box came from."""
    device = next(trained.parameters()).device
    cls, box = trained.model(trained.normalize(image[None].to(device)))
    found = postprocess(cls, box, trained.anchors.boxes, tuple(image.shape[-2:]), score_threshold=score_threshold,
                        max_detections=trained.cfg.max_detections, with_anchors=True)[0]
    return {k: v[:max_boxes].cpu() for k, v in found.items()}


def box_maps(trained, image: torch.Tensor, detections: dict, method: str = DEFAULT_METHOD,
             layer: str | None = None) -> np.ndarray:
    """(K, H, W) maps in [0, 1], one per detection of ``detections`` (from ``detect_with_anchors``) of ``image``."""
    return _box_maps(trained, image, detections, method, detector_layer(trained, layer)[1])


def _box_maps(trained, image: torch.Tensor, detections: dict, method: str, module: nn.Module) -> np.ndarray:
    k = len(detections["scores"])
    if k == 0:
        return np.zeros((0, *image.shape[-2:]), np.float32)
    device = next(trained.parameters()).device
    model = BoxLogits(trained, detections["anchors"].to(device), detections["labels"].to(device))
    batch = image[None].expand(k, -1, -1, -1).to(device).float() / 255
    targets = [lambda row, i=i: row[i] for i in range(k)]
    return cam_maps(model, module, batch, targets, method)


def explain_detector(trained, paths: list[str], options) -> Iterator[Path]:
    names = list(trained.cfg.class_names)
    colours = class_colours(len(names))
    method = options.method or DEFAULT_METHOD
    layer_name, module = detector_layer(trained, options.layer)  # a wrong --layer is said before any image is read
    transform = eval_transforms(tuple(trained.cfg.image_size))
    taken = set()
    for path, image in each_image(paths, options.skip_bad_images):
        original = tv_tensors.Image(image_to_tensor(image))
        letterboxed, _ = transform(original, empty_target(original))
        x = letterboxed.as_subclass(torch.Tensor)
        found = detect_with_anchors(trained, x, options.score_threshold, options.max_boxes)
        maps = _box_maps(trained, x, found, method, module)
        picture = to_rgb_array(x)
        panels = [(picture, f"{path.name}: {len(maps)} box(es) ≥ {options.score_threshold:g}")]
        for heat, box, label, score in zip(maps, found["boxes"], found["labels"].tolist(), found["scores"].tolist()):
            panels.append((outlined(heat_overlay(picture, heat), box, colours[label]), f"{names[label]} {score:.2f}"))
        title = f"{method} of each box's score at {layer_name}"
        yield save_panels(panels, options.out / output_name(path, taken, "_boxes.png"), title, columns=4)
        if options.feature_maps:
            backbone = trained.model.backbone
            yield feature_map_file(backbone.body, x, trained.normalize, options.out / output_name(
                path, taken, "_features.png"), options.feature_maps, last=backbone.out_indices[-1])


def outlined(picture: np.ndarray, box: torch.Tensor, colour: tuple[int, int, int]) -> np.ndarray:
    from PIL import Image

    drawn = Image.fromarray(picture)
    width = max(1, round(max(picture.shape[:2]) / 160))
    ImageDraw.Draw(drawn).rectangle([float(v) for v in box], outline=colour, width=width)
    return np.asarray(drawn)
