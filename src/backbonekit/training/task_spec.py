"""The task interface and its registry: what a task gives the shared routines (CLI, train, loading, export, the
batch-size trial), in one place.

A task is a folder with a ``spec.py`` that builds a ``TaskSpec`` and registers it. The spec module imports nothing
heavy at module level (the CLI reads every spec to build its parser, and ``--help`` needs no torch): each entry is a
small function that imports the task's code when called.

The registry is the one place that imports a task by name: a ``--batch-size auto`` trial runs in a fresh process and
finds its task again from the spec module the recipe names (``resolve``).
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Callable

from backbonekit.errors import WeightsError


@dataclass(frozen=True)
class TaskSpec:
    name: str                                  # recorded in every checkpoint (``task``), the CLI's TASK word
    module: str                                # the spec module itself (``package.spec``), importable in a subprocess
    add_commands: Callable[[dict], None]       # the task's sub-commands under the verbs (train/eval/predict/data)
    task_class: Callable[[], type]             # → its LightningModule class: ``Class(**config)``
    load: Callable[..., Any]                   # (path, fuse=False) → the trained LightningModule in eval mode
    export: Callable[..., tuple] | None = None  # (trained, out, opset, args) → (ExportResult, one-line description)
    check_export: Callable[..., bool] | None = None  # (trained, onnx path, args) → outputs agree with PyTorch
    export_options: tuple[str, ...] = ()       # `export` flags only this task takes (others refuse them)
    onnx_model: Callable[..., Any] | None = None  # (OnnxRunner of its exported file) → used as predict uses `load`
    explain: Callable[..., Any] | None = None  # (trained task, image paths, ExplainOptions) → files, as written
    backbone_source: bool = False              # its checkpoints are what another task's --pretrained-backbone takes
    int8: Callable[[], Any] | None = None      # () → its int8 module: calibration, score (training/int8.py)
    serving: Callable[..., Any] | None = None  # (inference model, device, ServeOptions) → what `serve` runs (serve/)


_TASKS: dict[str, TaskSpec] = {}


def register_task(spec: TaskSpec) -> TaskSpec:
    """Adds a task (again under the same name: replaced, so a module may be re-imported)."""
    _TASKS[spec.name] = spec
    return spec


def unregister_task(name: str) -> None:
    _TASKS.pop(name, None)


def registered() -> dict[str, TaskSpec]:
    return dict(_TASKS)


def get_task(name: str | None, source: object = "") -> TaskSpec:
    if name not in _TASKS:
        where = f"{source}: " if source else ""
        raise WeightsError(f"{where}unknown task {name!r} (known: {', '.join(_TASKS)})")
    return _TASKS[name]


def resolve(module: str, name: str) -> TaskSpec:
    """The spec ``name`` registered by importing ``module`` (a trial process starts with an empty registry); a module
    named by an entry point need not register its spec itself (the entry point's reader did): it is found in it."""
    if name not in _TASKS:
        found = vars(importlib.import_module(module)).values()
        if name not in _TASKS:
            for spec in found:
                if isinstance(spec, TaskSpec) and spec.name == name:
                    register_task(spec)
    return get_task(name)
