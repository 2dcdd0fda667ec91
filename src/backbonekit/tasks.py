"""The tasks by name, for the commands that take any trained file (``export``): each task records its name in its
checkpoints and ``best.safetensors``, and its ``task.py`` has ``load(path)``."""
from __future__ import annotations

import importlib
from pathlib import Path

from backbonekit.errors import WeightsError
from backbonekit.training.task_io import recorded_config

TASK_MODULES = {
    "classify": "backbonekit.classification.task",
    "detect": "backbonekit.detection.task",
    "sequence": "backbonekit.sequence.task",
}


def load_trained(path: str | Path, fuse: bool = False):
    """(task name, the trained task in eval mode) for any ``backbonekit train`` checkpoint or safetensors file."""
    task = recorded_config(path).get("task")
    if task not in TASK_MODULES:
        raise WeightsError(f"{path}: unknown task {task!r} (known: {', '.join(TASK_MODULES)})")
    return task, importlib.import_module(TASK_MODULES[task]).load(path, fuse=fuse)
