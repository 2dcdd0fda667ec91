"""Rebuild a trained classifier from a run's ``.ckpt`` (Lightning, loaded weights_only) or ``.safetensors``."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch.nn as nn

from backbonekit.errors import WeightsError
from backbonekit.models.registry import create_model
from backbonekit.training.checkpoint_io import load_checkpoint_file
from backbonekit.weights import load_model, load_weights, read_metadata


@dataclass
class TrainedClassifier:
    model: nn.Module
    class_names: list[str]
    image_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]


def load_classifier(path: str | Path) -> TrainedClassifier:
    path = Path(path)
    if path.suffix == ".safetensors":
        meta = read_metadata(path)
        if "class_names" not in meta:
            raise WeightsError(f"{path}: no class names in its metadata (not written by `train classify`)")
        model = load_model(path).eval()
        return TrainedClassifier(model, json.loads(meta["class_names"]), int(json.loads(meta["image_size"])),
                                 tuple(json.loads(meta["mean"])), tuple(json.loads(meta["std"])))
    ckpt = load_checkpoint_file(path)
    hp = ckpt.get("hyper_parameters")
    if not isinstance(hp, dict) or "model" not in hp or "state_dict" not in ckpt:
        raise WeightsError(f"{path}: not a `train classify` checkpoint (no hyper_parameters/state_dict)")
    model = create_model(hp["model"], num_classes=hp["num_classes"])
    load_weights(model, ckpt["state_dict"])
    return TrainedClassifier(model.eval(), list(hp["class_names"]), int(hp["image_size"]), tuple(hp["mean"]),
                             tuple(hp["std"]))
