"""A trained task saved and loaded the same way for every task: ``.ckpt`` (Lightning, read weights_only) or
``best.safetensors`` (the model's weights with the task's configuration in the metadata).

Every task records its name (``task`` field of its configuration) in both, so ``export``, ``eval`` and
``predict`` dispatch on what the file says, not on a guess from its keys.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch.nn as nn

from backbonekit.errors import WeightsError
from backbonekit.nn.fuse import fuse_batchnorm
from backbonekit.training.checkpoint_io import load_checkpoint_file
from backbonekit.weights import load_weights, read_metadata, save_weights

CONFIG_KEY = "task_config"  # safetensors metadata: the task configuration as JSON
# Weight files training started from are not needed to rebuild a trained task (and may be gone).
START_WEIGHTS = ("pretrained", "pretrained_backbone", "teacher")


def read_trained(path: str | Path) -> tuple[dict, dict | None]:
    """(the task configuration with its ``task`` field, the checkpoint's state dict) of a trained file, read once;
    the state is None for ``best.safetensors`` (its weights load straight into the model)."""
    path = Path(path)
    if path.suffix == ".safetensors":
        meta = read_metadata(path)
        if CONFIG_KEY not in meta:
            raise WeightsError(f"{path}: no task configuration in its metadata (not written by `backbonekit train`)")
        return json.loads(meta[CONFIG_KEY]), None
    ckpt = load_checkpoint_file(path)
    hp = ckpt.get("hyper_parameters")
    if not isinstance(hp, dict) or "task" not in hp or "state_dict" not in ckpt:
        raise WeightsError(f"{path}: not a `backbonekit train` checkpoint (no task hyper_parameters/state_dict)")
    return dict(hp), ckpt["state_dict"]


def recorded_config(path: str | Path) -> dict:
    """The task configuration stored in a checkpoint or a ``best.safetensors`` (with its ``task`` field)."""
    return read_trained(path)[0]


def load_task(path: str | Path, task_class: type, task: str, fuse: bool = False, read: tuple | None = None) -> nn.Module:
    """``task_class`` rebuilt from its recorded configuration with the trained weights, in eval mode; with ``fuse``
    BatchNorm is folded into the convolutions (inference only: what ``predict``, ``eval`` and ``export`` run).
    ``read``: what ``read_trained(path)`` gave, when the caller has read the file already."""
    path = Path(path)
    config, state = read if read is not None else read_trained(path)
    config = dict(config)
    if config.get("task") != task:
        raise WeightsError(f"{path}: a `{config.get('task')}` checkpoint, not `{task}`")
    config.update({k: None for k in START_WEIGHTS if k in config})
    try:
        module = task_class(**config)
    except TypeError as e:
        raise WeightsError(f"{path}: task configuration not understood ({e})") from None
    if state is None:
        load_weights(module.model, path)
    else:
        # A teacher's weights are not part of the trained model (distillation keeps it outside the state dict).
        try:
            module.load_state_dict(state)
        except RuntimeError as e:
            raise WeightsError(f"{path}: weights do not fit {task_class.__name__}: {str(e).splitlines()[0]}") from None
    module.eval()
    if fuse:
        fuse_batchnorm(module.model, inplace=True)  # the module was built here: no one else holds it
    return module


def save_task_weights(module: nn.Module, config: dict, path: str | Path, extra: dict | None = None) -> Path:
    """``module.model``'s weights as safetensors, with the configuration that rebuilds the task."""
    meta = {"task": config["task"], CONFIG_KEY: json.dumps(config), **(extra or {})}
    return save_weights(module.model, path, metadata=meta)
