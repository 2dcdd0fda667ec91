"""The tasks: the one list of the built-in ones, and any trained file → its task.

Each task folder's ``spec.py`` registers a ``TaskSpec`` (``training.task_spec``); the CLI, ``export``, loading a
trained file and the layering test all read the registry, so a new task needs no edit anywhere else. A task from
another distribution names its ``TaskSpec`` in the ``backbonekit.tasks`` entry-point group (``toy =
"toy_task.spec:SPEC"``), or a program calls ``register_task``. Every checkpoint and ``best.safetensors`` records its
task's name.
"""
from __future__ import annotations

import importlib
import sys
from pathlib import Path

from backbonekit.training.task_spec import TaskSpec, get_task, register_task, registered, unregister_task

BUILTIN = ("backbonekit.classification.spec", "backbonekit.detection.spec", "backbonekit.sequence.spec")
ENTRY_POINTS = "backbonekit.tasks"  # the group other distributions register their tasks in
_entry_points_read = False


def all_tasks() -> dict[str, TaskSpec]:
    """Every task: the built-in ones, then those of installed distributions (read once a process), then any
    registered by a program."""
    builtin = {importlib.import_module(module).SPEC.name for module in BUILTIN}
    global _entry_points_read
    if not _entry_points_read:
        _entry_points_read = True
        _register_entry_points(builtin)
    return registered()


def _register_entry_points(builtin: set[str]) -> None:
    """Each entry point of the group loads to a ``TaskSpec`` named as the entry point. One that cannot be imported,
    is no TaskSpec, or would replace a built-in task is one warning line naming its distribution and entry point,
    and is left out: one broken plug-in must not take the command line down with it. Only the spec module is
    imported (it imports nothing heavy), so ``--help`` still needs no torch."""
    from importlib.metadata import entry_points

    for point in entry_points(group=ENTRY_POINTS):
        before = registered()  # a spec module may register on import (as the built-in ones do)
        where = f"{point.dist.name if point.dist else 'an unknown distribution'}'s entry point " \
                f"{point.name} = {point.value} ({ENTRY_POINTS})"
        try:
            spec = point.load()
        except Exception as e:  # noqa: BLE001 - whatever a plug-in raises, the built-in tasks still work
            problem = f"cannot be loaded ({type(e).__name__}: {' '.join(str(e).split())})"  # one line
        else:
            problem = (f"is a {type(spec).__name__}, not a TaskSpec" if not isinstance(spec, TaskSpec) else
                       f"would replace the built-in task {spec.name!r}" if spec.name in builtin else
                       f"names the task {spec.name!r}: the entry point's name must be the task's"
                       if spec.name != point.name else "")
        if problem:
            print(f"warning: {where} {problem}; task left out", file=sys.stderr)
            for name in set(registered()) - set(before):
                unregister_task(name)
        else:
            register_task(spec)
        for name in builtin:  # never replaced, not even as a side effect of importing a plug-in
            register_task(before[name])


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
