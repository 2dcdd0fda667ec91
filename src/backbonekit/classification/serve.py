"""``backbonekit serve`` for a classifier: uploaded images → ``predict``'s top-k (the same function computes
both), and the class activation map of each of an image's top classes."""
from __future__ import annotations

import torch

from backbonekit.classification.data import build_eval_transform
from backbonekit.classification.explain import class_maps
from backbonekit.classification.predict import top_classes
from backbonekit.explain.overlay import to_rgb_array


class Serving:
    def __init__(self, model, device, options):
        self.model, self.device = model, device
        self.names = list(model.cfg.class_names)
        self.size = model.cfg.image_size
        self.transform = build_eval_transform(self.size)
        self.k = max(1, min(options.top_k, len(self.names)))
        self.method = options.method or "gradcam"
        self.layer = options.layer

    def describe(self) -> dict:
        return {"classes": self.names, "input_size": [self.size, self.size], "top_k": self.k}

    def prepare(self, image) -> torch.Tensor:
        return self.transform(image)

    def run(self, prepared: list[torch.Tensor]) -> list[dict]:
        return [{"top": top} for top in top_classes(self.model, torch.stack(prepared), self.names, self.k,
                                                    self.device)]

    def explain(self, trained, image) -> tuple:
        """(the picture the model saw, [(caption, map in [0, 1])] one a top class, what the maps are)."""
        x = self.transform(image)[None]
        device = next(trained.parameters()).device
        with torch.inference_mode():
            probs = trained(x.to(device)).softmax(-1)[0].cpu()
        top = probs.topk(self.k)
        maps = class_maps(trained, x.expand(self.k, -1, -1, -1), top.indices.tolist(), self.method, self.layer)
        captions = [f"{self.names[c]} {p:.2f}" for c, p in zip(top.indices.tolist(), top.values.tolist())]
        return to_rgb_array(x[0]), list(zip(captions, maps)), f"{self.method} of each top class"
