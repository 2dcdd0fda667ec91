"""``predict classify``: top-k class names and probabilities for image files or folders, streamed a batch at a
time; with ``skip_bad_images`` an unreadable file is named on stderr and the others still get their results."""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import torch

from backbonekit.classification.data import build_eval_transform
from backbonekit.errors import ConfigError
from backbonekit.io.images import find_images, read_in_batches
from backbonekit.training.inference import load_for_inference
from backbonekit.training.task_spec import get_task


def predict_images(checkpoint: str | Path, paths: list[str], top_k: int = 5, batch_size: int = 32,
                   compile: bool = False, device: str | None = None, skip_bad_images: bool = False,
                   runtime: str = "torch", precision: str = "fp32") -> Iterator[dict]:
    if compile and runtime != "torch":
        raise ConfigError(f"--compile applies to --runtime torch, not {runtime}")
    images = find_images(paths)  # before loading: another runtime exports the checkpoint into its run folder
    trained, device = load_for_inference(checkpoint, get_task("classify"), device, runtime, precision,
                                         batch_size)
    if compile:
        trained.model.compile()
    names = list(trained.cfg.class_names)
    transform = build_eval_transform(trained.cfg.image_size)
    k = max(1, min(top_k, len(names)))
    for chunk in read_in_batches(images, batch_size, skip_bad_images):
        batch = torch.stack([transform(image) for _, image in chunk])
        for (path, _), top in zip(chunk, top_classes(trained, batch, names, k, device)):
            yield {"path": str(path), "top": top}


def top_classes(trained, batch: torch.Tensor, names: list[str], k: int, device) -> list[list[tuple[str, float]]]:
    """Each image's ``k`` most likely (class name, probability): the one computation ``predict`` and ``serve``
    share, so that both give the same numbers."""
    with torch.inference_mode():
        probs = trained(batch.to(device)).softmax(-1).cpu()
    values, indices = probs.topk(k, dim=-1)
    return [[(names[c], round(p, 6)) for p, c in zip(v, i)] for v, i in zip(values.tolist(), indices.tolist())]
