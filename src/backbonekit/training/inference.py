"""The steps ``eval`` and ``predict`` share for every task: the trained file read once and loaded for inference
(BatchNorm folded, eval mode) on the best device there is, and where an evaluation's figures are written."""
from __future__ import annotations

import json
from pathlib import Path

import torch

from backbonekit.errors import ConfigError
from backbonekit.training.task_spec import TaskSpec


def pick_device(requested: str | None = None) -> torch.device:
    """``auto``/None: the GPU when there is one, else the CPU; or ``cpu``, ``cuda``, ``cuda:1``."""
    if requested in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(requested)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"--device {requested}: no CUDA device on this machine (use --device cpu or auto)")
    return device


def load_for_inference(checkpoint: str | Path, spec: TaskSpec, device: str | None = None):
    """(the trained task in eval mode with BatchNorm folded, on ``device``; that device)."""
    if not Path(checkpoint).is_file():
        raise ConfigError(f"--checkpoint {checkpoint}: no such file")
    where = pick_device(device)
    return spec.load(checkpoint, fuse=True).to(where), where


def write_eval(result: dict, checkpoint: str | Path, out: str | Path | None) -> Path:
    """``metrics.json`` in ``out`` or in ``eval/`` of the checkpoint's run folder (not beside the checkpoint: that
    metrics.json is the training run's own record)."""
    folder = Path(out) if out else Path(checkpoint).parent / "eval"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "metrics.json"
    path.write_text(json.dumps(result, indent=2))
    return path
