"""One registry for every architecture: ``create_model(name)`` and ``list_models(pattern)``, as in timm."""
from __future__ import annotations

import difflib
import fnmatch
from typing import Callable

import torch.nn as nn

from backbonekit.errors import ConfigError

_ENTRYPOINTS: dict[str, Callable[..., nn.Module]] = {}


def register_model(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    """Decorator: the function's name becomes the model name."""
    if fn.__name__ in _ENTRYPOINTS:
        raise ValueError(f"model {fn.__name__!r} registered twice")
    _ENTRYPOINTS[fn.__name__] = fn
    return fn


def list_models(pattern: str = "*") -> list[str]:
    """Registered model names matching a shell-style pattern, e.g. ``list_models("efficientnet_b*")``."""
    _import_all()
    return sorted(n for n in _ENTRYPOINTS if fnmatch.fnmatch(n, pattern))


def model_entrypoint(name: str) -> Callable[..., nn.Module]:
    _import_all()
    try:
        return _ENTRYPOINTS[name]
    except KeyError:
        close = difflib.get_close_matches(name, _ENTRYPOINTS, n=3)
        hint = f" Did you mean: {', '.join(close)}?" if close else " See `backbonekit models` for the list."
        raise ConfigError(f"unknown model {name!r}.{hint}") from None


def create_model(name: str, *, pretrained: str | dict | None = None, **kwargs) -> nn.Module:
    """Build a registered model; ``pretrained`` is a weight file or state dict in any supported layout.

    Keyword arguments override the architecture's defaults (``num_classes``, ``drop_rate``, ``norm_layer`` …).
    """
    model = model_entrypoint(name)(**kwargs)
    model.model_name = name
    # What rebuilds the architecture (load_model reads it back); weight paths are not part of it.
    model.model_kwargs = {k: v for k, v in kwargs.items()
                          if isinstance(v, (int, float, str, bool, list, tuple)) and not k.startswith("pretrained")}
    if pretrained is not None:
        from backbonekit.weights import load_weights

        load_weights(model, pretrained)
    return model


# Modules whose @register_model functions run on import. Task models (detectors, sequence models) live with their
# task but share the one registry, so `create_model("efficientdet_d0")` works like `create_model("resnet50")`.
MODEL_MODULES = (
    "backbonekit.models.resnet",
    "backbonekit.models.efficientnet",
    "backbonekit.detection.efficientdet",
    "backbonekit.sequence.seqfakeformer",
)


def _import_all() -> None:
    import importlib

    for name in MODEL_MODULES:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name != name:  # a task module not written yet is fine; a missing dependency is not
                raise
