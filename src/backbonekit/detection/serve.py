"""``backbonekit serve`` for a detector: uploaded images letterboxed and detected as ``predict`` does (the same
functions), the boxes in each image's own pixels; and a CAM of each box's score."""
from __future__ import annotations

import torch
from torchvision import tv_tensors

from backbonekit.detection.explain import DEFAULT_METHOD, box_maps, detect_with_anchors
from backbonekit.detection.predict import detection_fields, empty_target, letterboxed_batch
from backbonekit.detection.transforms import eval_transforms, unletterbox_detections
from backbonekit.explain.overlay import to_rgb_array
from backbonekit.io.images import image_to_tensor


class Serving:
    def __init__(self, model, device, options):
        self.model, self.device = model, device
        self.names = list(model.cfg.class_names)
        self.size = tuple(model.cfg.image_size)
        self.transform = eval_transforms(self.size)
        self.score_threshold, self.max_boxes = options.score_threshold, options.max_boxes
        self.method, self.layer = options.method or DEFAULT_METHOD, options.layer

    def describe(self) -> dict:
        return {"classes": self.names, "input_size": list(self.size), "score_threshold": self.score_threshold}

    def letterbox(self, image) -> tuple:
        original = tv_tensors.Image(image_to_tensor(image))
        return self.transform(original, empty_target(original))

    def prepare(self, image) -> tuple:
        return self.letterbox(image)

    def run(self, prepared: list[tuple]) -> list[dict]:
        batch = letterboxed_batch(prepared).to(self.device)
        found = self.model.detect(batch, score_threshold=self.score_threshold)
        return [detection_fields(unletterbox_detections(det, target["letterbox"]), self.names)
                for det, (_, target) in zip(found, prepared)]

    def explain(self, trained, image) -> tuple:
        """(the letterboxed picture the detector saw, [(caption, map)] one a box, what the maps are)."""
        x = self.letterbox(image)[0].as_subclass(torch.Tensor)
        found = detect_with_anchors(trained, x, self.score_threshold, self.max_boxes)
        maps = box_maps(trained, x, found, self.method, self.layer)
        captions = [f"{self.names[c]} {s:.2f} at {[round(v) for v in b]}" for c, s, b in
                    zip(found["labels"].tolist(), found["scores"].tolist(), found["boxes"].tolist())]
        return to_rgb_array(x), list(zip(captions, maps)), f"{self.method} of each box's score (letterboxed input)"
