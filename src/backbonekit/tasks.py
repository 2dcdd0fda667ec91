"""The tasks: the one list of the built-in ones, and any trained file → its task.

Each task folder's ``spec.py`` registers a ``TaskSpec`` (``training.task_spec``); the CLI, ``export``, loading a
trained file and the layering test all read the registry, so a new task (built in, or registered from outside with
``register_task``) needs no edit anywhere else. Every checkpoint and ``best.safetensors`` records its task's name.
"""
from __future__ import annotations

import importlib
from pathlib import Path

from backbonekit.training.task_spec import TaskSpec, get_task, registered

BUILTIN = ("backbonekit.classification.spec", "backbonekit.detection.spec", "backbonekit.sequence.spec")


def all_tasks() -> dict[str, TaskSpec]:
    """Every task: the built-in ones, then any registered from outside."""
    for module in BUILTIN:
        importlib.import_module(module)
    return registered()


def explain(checkpoint: str | Path, images, task: str | None = None, **options) -> list[Path]:
    """The explanation PNGs written for ``images`` (files or folders) by a trained ``checkpoint``, its task read from
    the file (``task`` given: another task's checkpoint is refused); ``options``: the fields of
    ``backbonekit.explain.ExplainOptions`` (method, layer, out, top_k, score_threshold, max_boxes, feature_maps …)."""
    from backbonekit.explain import ExplainOptions
    from backbonekit.explain.command import explain_files

    all_tasks()
    return list(explain_files(checkpoint, [str(p) for p in images], task, ExplainOptions(**options)))


def load_trained(path: str | Path, fuse: bool = False) -> tuple[str, object]:
    """(task name, the trained task in eval mode) for any ``backbonekit train`` checkpoint or safetensors file; the
    file is read once."""
    from backbonekit.training.task_io import read_trained

    all_tasks()
    config, state = read_trained(path)
    spec = get_task(config.get("task"), path)
    return spec.name, spec.load(path, fuse=fuse, read=(config, state))
