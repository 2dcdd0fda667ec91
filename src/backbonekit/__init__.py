"""backbonekit: from-scratch CNN backbones with exact weight import, and the tasks built on them.

The public names load on first use (PEP 562), so ``backbonekit --help`` and argument errors answer without
importing torch.
"""
from __future__ import annotations

import importlib

_PUBLIC = {
    # The commands as functions (backbonekit.api): the same options, defaults, checks and run record.
    "train": "backbonekit.api",
    "evaluate": "backbonekit.api",
    "predict": "backbonekit.api",
    "export": "backbonekit.api",
    "quantize": "backbonekit.api",
    "explain": "backbonekit.api",
    "Run": "backbonekit.api",
    "Backbone": "backbonekit.models.backbone",
    "create_backbone": "backbonekit.models.backbone",
    "create_model": "backbonekit.models.registry",
    "default_cfg": "backbonekit.models.registry",
    "list_models": "backbonekit.models.registry",
    "load_model": "backbonekit.models.registry",
    "load_weights": "backbonekit.weights",
    "save_weights": "backbonekit.weights",
}

__all__ = sorted(_PUBLIC)
__version__ = "0.1.0"


def __getattr__(name: str):
    if name in _PUBLIC:
        return getattr(importlib.import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'backbonekit' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
