"""Which layer a map is taken from: by default a level of the backbone's ``feature_info`` (the deepest one whose
map still has room to show where, for a classifier), or any named module the user gives with ``--layer``.

Names are looked up in the model the task runs (``root``): for a classifier the backbone itself (``layer4``), for a
detector or sequence model the backbone sits under a prefix (``backbone.body.layer4``)."""
from __future__ import annotations

import difflib

import torch
import torch.nn as nn

from backbonekit.errors import ConfigError


def default_level(backbone: nn.Module, image_size: int | None = None, reduction: int | None = None) -> str:
    """The last module of a level of ``backbone``: the level with ``reduction`` (its stride) if given, else the
    deepest level whose map has at least 2×2 positions at ``image_size`` (a 1×1 map is the same everywhere: layer4
    of a ResNet at 32²), measured where the backbone can run."""
    info = getattr(backbone, "feature_info", None)
    if not info:
        raise ConfigError(f"{type(backbone).__name__} has no feature_info: give --layer NAME")
    if reduction is not None:
        chosen = [level for level in info if level["reduction"] == reduction] or info
    else:
        sides = [image_size // level["reduction"] if image_size else 2 for level in info]
        measured = _level_sides(backbone, image_size) if image_size else None
        if measured is not None and len(measured) == len(info):
            # The measured size only rules a level out, never in: a padded net's map is rounded up (2×2 at 48² at
            # stride 32), its second row mostly padding.
            sides = [min(a, b) for a, b in zip(sides, measured)]
        chosen = [level for level, side in zip(info, sides) if side >= 2] or info[:1]
    return chosen[-1]["module"].split(",")[-1]


def _level_sides(backbone: nn.Module, image_size: int) -> list[int] | None:
    """The shorter side of each level's map at ``image_size``, measured by one forward of a blank image: the
    nominal reduction can be optimistic (AlexNet's stride-32 level is 1×1 at 64², not 2×2, its unpadded convs and
    pools lose a border). None where it cannot be measured (no ``forward_levels``, an input too small to pass)."""
    forward = getattr(backbone, "forward_levels", None)
    weight = next(backbone.parameters(), None)
    if forward is None or weight is None:
        return None
    was_training = backbone.training
    backbone.eval()  # BatchNorm must not take this image into its running statistics
    try:
        with torch.no_grad():
            levels = forward(torch.zeros(1, 3, image_size, image_size, device=weight.device, dtype=weight.dtype))
    except (RuntimeError, NotImplementedError):
        return None
    finally:
        backbone.train(was_training)
    return [min(level.shape[-2:]) for level in levels]


def level_names(backbone: nn.Module, prefix: str = "") -> list[str]:
    """The top-level module names of each level, in order: the short list an error shows."""
    return [prefix + name for info in getattr(backbone, "feature_info", []) for name in info["module"].split(",")]


def level_labels(backbone: nn.Module) -> list[str]:
    """One name per level (its last module): the row labels of a feature-map grid."""
    return [info["module"].split(",")[-1] for info in backbone.feature_info]


def find_layer(backbone: nn.Module, name: str | None = None, image_size: int | None = None, *,
               root: nn.Module | None = None, prefix: str = "", reduction: int | None = None) -> tuple[str, nn.Module]:
    """(name, module) of ``name`` in ``root`` (default: ``backbone``, which lies at ``prefix`` inside it); no name:
    ``prefix`` + ``default_level``. An unknown name is a ConfigError listing the backbone's levels and the closest
    names there are."""
    root = backbone if root is None else root
    name = name or prefix + default_level(backbone, image_size, reduction)
    modules = dict(root.named_modules())
    if name in modules and name:
        return name, modules[name]
    close = difflib.get_close_matches(name, list(modules), n=5, cutoff=0.5)
    raise ConfigError(f"--layer {name}: no such layer in {type(root).__name__}. The backbone's levels: "
                      f"{', '.join(level_names(backbone, prefix)) or '(none)'}; any module inside them works too "
                      f"(e.g. {_example_inner(modules)})" + (f"; closest: {', '.join(close)}" if close else ""))


def _example_inner(modules: dict[str, nn.Module]) -> str:
    convs = [n for n, m in modules.items() if isinstance(m, nn.Conv2d)]
    return convs[-1] if convs else next(iter(modules), "")
