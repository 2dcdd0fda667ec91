"""``backbonekit serve`` for a sequence model: uploaded images → ``predict``'s label and name (the same function),
and the decoder's cross-attention for each predicted edit."""
from __future__ import annotations

import torch

from backbonekit.explain.overlay import to_rgb_array
from backbonekit.sequence.data import build_transform
from backbonekit.sequence.explain import edit_attention
from backbonekit.sequence.predict import sequence_fields
from backbonekit.sequence.vocab import edit_names, sequence_length


class Serving:
    path_field = "file_path"  # predict sequence's name for the image's field

    def __init__(self, model, device, options):
        self.model, self.device = model, device
        self.subset = model.cfg.subset
        self.size = model.cfg.image_size
        self.transform = build_transform(self.size, train=False)

    def describe(self) -> dict:
        size = [self.size, self.size] if isinstance(self.size, int) else list(self.size)
        return {"classes": list(edit_names(self.subset)), "input_size": size, "subset": self.subset}

    def prepare(self, image) -> torch.Tensor:
        return self.transform(image).as_subclass(torch.Tensor)

    def run(self, prepared: list[torch.Tensor]) -> list[dict]:
        return sequence_fields(self.model, torch.stack(prepared), self.subset, self.device)

    def explain(self, trained, image) -> tuple:
        """(the picture the model saw, [(caption, attention map scaled to its peak)] one an edit, what they are)."""
        x = self.prepare(image)
        labels, maps = edit_attention(trained, x[None])
        names = edit_names(self.subset)
        label = labels[0].tolist()
        steps = [(f"step {k + 1}: {names[int(e)]}", (maps[0, k] / maps[0, k].max().clamp_min(1e-12)).numpy())
                 for k, e in enumerate(label[:sequence_length(label)])]
        return to_rgb_array(x), steps, "decoder cross-attention per step (last layer, mean of heads)"
