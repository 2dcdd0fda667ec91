"""Which layer a map is taken from: by default the last level of the model's ``feature_info`` (the deepest feature
map before the head, where class evidence is still spatial), or any named module the user gives with ``--layer``."""
from __future__ import annotations

import difflib

import torch.nn as nn

from backbonekit.errors import ConfigError


def default_layer_name(model: nn.Module, image_size: int | None = None) -> str:
    """The last module of the model's deepest level (``layer4`` of a ResNet) whose map still has at least 2×2
    positions at ``image_size`` (a 1×1 map is the same everywhere: layer3 of a ResNet at 32²)."""
    info = getattr(model, "feature_info", None)
    if not info:
        raise ConfigError(f"{type(model).__name__} has no feature_info: give --layer NAME")
    spatial = [level for level in info if not image_size or image_size // level["reduction"] >= 2]
    return (spatial or info[:1])[-1]["module"].split(",")[-1]


def level_names(model: nn.Module) -> list[str]:
    """The top-level module names of each level, in order: the short list an error shows."""
    return [name for info in getattr(model, "feature_info", []) for name in info["module"].split(",")]


def level_labels(model: nn.Module) -> list[str]:
    """One name per level (its last module): the row labels of a feature-map grid."""
    return [info["module"].split(",")[-1] for info in model.feature_info]


def find_layer(model: nn.Module, name: str | None = None, image_size: int | None = None) -> tuple[str, nn.Module]:
    """(name, module) of ``name`` in ``model`` (default: ``default_layer_name`` at ``image_size``); an unknown name
    is a ConfigError that lists the levels and the closest names there are."""
    name = name or default_layer_name(model, image_size)
    modules = dict(model.named_modules())
    if name in modules and name:
        return name, modules[name]
    close = difflib.get_close_matches(name, list(modules), n=5, cutoff=0.5)
    raise ConfigError(f"--layer {name}: no such layer in {type(model).__name__}. Its levels: "
                      f"{', '.join(level_names(model)) or '(none)'}; any module inside them works too (e.g. "
                      f"{_example_inner(modules)})" + (f"; closest: {', '.join(close)}" if close else ""))


def _example_inner(modules: dict[str, nn.Module]) -> str:
    convs = [n for n, m in modules.items() if isinstance(m, nn.Conv2d)]
    return convs[-1] if convs else next(iter(modules), "")
