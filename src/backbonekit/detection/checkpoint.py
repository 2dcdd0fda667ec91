"""Rebuild a trained detector from a run's ``.ckpt`` (Lightning, loaded weights_only) or ``best.safetensors``.

What comes back is the ``DetectionTask`` in eval mode: it holds the model, the anchors of its input size, the
normalisation and the class names, and ``detect(images)`` runs the whole inference.
"""
from __future__ import annotations

import json
from pathlib import Path

from backbonekit.detection.task import DetectionTask
from backbonekit.errors import WeightsError
from backbonekit.training.checkpoint_io import load_checkpoint_file
from backbonekit.weights import load_weights, read_metadata

CONFIG_KEY = "detect_config"  # safetensors metadata: the task configuration as JSON


def load_detector(path: str | Path) -> DetectionTask:
    path = Path(path)
    if path.suffix == ".safetensors":
        meta = read_metadata(path)
        if CONFIG_KEY not in meta:
            raise WeightsError(f"{path}: no detector configuration in its metadata (not written by `train detect`)")
        task = _task(json.loads(meta[CONFIG_KEY]), path)
        load_weights(task.model, path)
        return task.eval()
    ckpt = load_checkpoint_file(path)
    hp = ckpt.get("hyper_parameters")
    if not isinstance(hp, dict) or "box_loss_weight" not in hp or "state_dict" not in ckpt:
        raise WeightsError(f"{path}: not a `train detect` checkpoint (no detector hyper_parameters/state_dict)")
    task = _task(hp, path)
    try:
        task.load_state_dict(ckpt["state_dict"])
    except RuntimeError as e:
        raise WeightsError(f"{path}: weights do not fit {hp['model']}: {str(e).splitlines()[0]}") from None
    return task.eval()


def _task(config: dict, path: Path) -> DetectionTask:
    # The weight files training started from are not needed (and may be gone): the checkpoint holds the weights.
    try:
        return DetectionTask(**{**config, "pretrained": None, "pretrained_backbone": None})
    except TypeError as e:
        raise WeightsError(f"{path}: detector configuration not understood ({e})") from None
