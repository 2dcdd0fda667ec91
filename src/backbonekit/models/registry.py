"""One registry for every architecture: ``create_model(name)``, ``list_models(pattern)`` and ``default_cfg(name)``.

Each entry holds the constructor and the model's default configuration (input size, mean/std, classifier name,
task), so a caller can read a default without building a model (for D7, a B6 backbone) to read one constant.
"""
from __future__ import annotations

import difflib
import fnmatch
import importlib
from typing import Callable

import torch.nn as nn

from backbonekit.errors import ConfigError

_ENTRYPOINTS: dict[str, Callable[..., nn.Module]] = {}
_DEFAULT_CFGS: dict[str, dict] = {}
# The kind (``default_cfg(name)["task"]``) of a network that ends in class logits: every backbone is one, and what the
# survey and ``--stem`` apply to. The kind names the task that trains it; code outside the tasks asks for it here.
CLASSIFIER = "classify"

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def imagenet_cfg(size: int | tuple[int, int], crop_pct: float = 0.875, interpolation: str = "bilinear",
                 **extra) -> dict:
    """A classifier's default configuration; ``extra`` adds fields (``classifier``, ``mean``, ``std``, ``task`` …)."""
    h, w = (size, size) if isinstance(size, int) else size
    cfg = {"input_size": (3, h, w), "mean": IMAGENET_MEAN, "std": IMAGENET_STD, "crop_pct": crop_pct,
           "interpolation": interpolation, "classifier": "classifier", "task": CLASSIFIER}
    cfg.update(extra)
    return cfg


def register_model(fn: Callable[..., nn.Module] | None = None, *, cfg: dict | None = None):
    """Decorator (``@register_model`` or ``@register_model(cfg=imagenet_cfg(224, classifier="fc"))``): the
    function's name becomes the model name."""
    def register(f: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if f.__name__ in _ENTRYPOINTS:
            raise ValueError(f"model {f.__name__!r} registered twice")
        _ENTRYPOINTS[f.__name__] = f
        _DEFAULT_CFGS[f.__name__] = dict(cfg if cfg is not None else imagenet_cfg(224))
        return f
    return register(fn) if fn is not None else register


def list_models(pattern: str = "*", task: str | None = None) -> list[str]:
    """Registered model names matching a shell-style pattern (``"efficientnet_b*"``), optionally of one task."""
    _import_all()
    return sorted(n for n in _ENTRYPOINTS
                  if fnmatch.fnmatch(n, pattern) and (task is None or _DEFAULT_CFGS[n]["task"] == task))


def model_entrypoint(name: str) -> Callable[..., nn.Module]:
    """The constructor registered as ``name``; an unknown name is a ``ConfigError`` naming the closest ones."""
    _import_all()
    try:
        return _ENTRYPOINTS[name]
    except KeyError:
        close = difflib.get_close_matches(name, _ENTRYPOINTS, n=3)
        hint = f" Did you mean: {', '.join(close)}?" if close else " See `backbonekit models` for the list."
        raise ConfigError(f"unknown model {name!r}.{hint}") from None


def default_cfg(name: str) -> dict:
    """The registered defaults of ``name`` (a copy): input_size, mean, std, crop_pct, interpolation, classifier, task."""
    model_entrypoint(name)
    return dict(_DEFAULT_CFGS[name])


def create_model(name: str, *, pretrained: str | dict | None = None, **kwargs) -> nn.Module:
    """Build a registered model; ``pretrained`` is a weight file or state dict in any supported layout.

    Keyword arguments override the architecture's defaults (``num_classes``, ``drop_rate``, ``norm_layer`` …).
    """
    model = model_entrypoint(name)(**kwargs)
    model.model_name = name
    # The registered defaults, updated by what this instance knows better (a custom φ's resolution, a detector's
    # backbone statistics).
    model.pretrained_cfg = {**_DEFAULT_CFGS[name], **getattr(model, "pretrained_cfg", {})}
    # What rebuilds the architecture (load_model reads it back); weight paths are not part of it.
    model.model_kwargs = {k: v for k, v in kwargs.items()
                          if isinstance(v, (int, float, str, bool, list, tuple)) and not k.startswith("pretrained")}
    if pretrained is not None:
        from backbonekit.weights import load_weights

        load_weights(model, pretrained)
    return model


def load_model(path, **overrides) -> nn.Module:
    """Rebuild a model saved by ``save_weights`` (architecture and options from its metadata) and load it."""
    import json

    from backbonekit.errors import WeightsError
    from backbonekit.weights import load_weights, read_metadata

    meta = read_metadata(path)
    if meta.get("format") != "backbonekit" or "architecture" not in meta:
        raise WeightsError(f"{path}: no backbonekit metadata; use create_model(name, pretrained=…) instead")
    kwargs = json.loads(meta.get("model_kwargs", "{}"))
    if meta.get("num_classes", "").lstrip("-").isdigit():
        kwargs["num_classes"] = int(meta["num_classes"])
    kwargs.update(overrides)
    model = create_model(meta["architecture"], **kwargs)
    load_weights(model, path)
    model.metadata = meta
    return model


# Modules whose @register_model functions run on import: every architecture lives in models/.
MODEL_MODULES = (
    "backbonekit.models.resnet",
    "backbonekit.models.senet",
    "backbonekit.models.efficientnet",
    "backbonekit.models.alexnet",
    "backbonekit.models.vgg",
    "backbonekit.models.googlenet",
    "backbonekit.models.densenet",
    "backbonekit.models.efficientdet",
    "backbonekit.models.seqfakeformer",
)


def _import_all() -> None:
    for name in MODEL_MODULES:
        importlib.import_module(name)


WELL_KNOWN = ("resnet18", "resnet50", "efficientnet_b0", "efficientnet_b4", "efficientdet_d0", "efficientdet_d1")


def require_kind(name: str | None, kind: str, flag: str, command: str) -> None:
    """``ConfigError`` unless ``name`` (when given) is a registered model of ``kind`` (its default_cfg task):
    ``train classify --model efficientdet_d0`` is refused naming the models that fit, before anything is built."""
    if not name:
        return
    found = default_cfg(name)["task"]  # an unknown name: its own error, with close matches
    if found != kind:
        names = list_models(task=kind)
        fitting = ", ".join([n for n in WELL_KNOWN if n in names] or names[:4])
        raise ConfigError(f"{flag} {name} is a {found} model; `{command}` needs a {kind} model here (e.g. {fitting}; "
                          "`backbonekit models` lists them)")
