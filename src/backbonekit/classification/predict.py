"""``predict classify``: top-k class names and probabilities for image files or folders."""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import torch

from backbonekit.classification.data import build_eval_transform
from backbonekit.io.images import find_images, load_image
from backbonekit.training.inference import load_for_inference
from backbonekit.training.task_spec import get_task


def predict_images(checkpoint: str | Path, paths: list[str], top_k: int = 5, batch_size: int = 32,
                   compile: bool = False, device: str | None = None) -> Iterator[dict]:
    trained, device = load_for_inference(checkpoint, get_task("classify"), device)
    if compile:
        trained.model.compile()
    names = list(trained.cfg.class_names)
    transform = build_eval_transform(trained.cfg.image_size)
    files = find_images(paths)
    k = max(1, min(top_k, len(names)))
    for start in range(0, len(files), batch_size):
        chunk = files[start:start + batch_size]
        batch = torch.stack([transform(load_image(f)) for f in chunk])
        with torch.inference_mode():
            probs = trained(batch.to(device)).softmax(-1).cpu()
        values, indices = probs.topk(k, dim=-1)
        for path, v, i in zip(chunk, values.tolist(), indices.tolist()):
            yield {"path": str(path), "top": [(names[c], round(p, 6)) for p, c in zip(v, i)]}
