"""Which layer a map is taken from: by default a level of the backbone's ``feature_info`` (the deepest one whose
map is at least ``MIN_MAP_SIDE`` positions a side, for a classifier), or any named module the user gives with
``--layer``.

Names are looked up in the model the task runs (``root``): for a classifier the backbone itself (``layer4``), for a
detector or sequence model the backbone sits under a prefix (``backbone.body.layer4``)."""
from __future__ import annotations

import difflib

import torch
import torch.nn as nn

from backbonekit.errors import ConfigError

# The shortest side a classifier's default map may have. Measured by benchmarks/explain_classify_localisation.py
# (ResNet-18 at 96², the CAM peak inside the object's box, gradcam; two runs): 3×3 35.5/35.0%, 6×6 87.0/88.5%,
# 12×12 93.5/93.5%. 7 is the least side that rules the 6×6 out, and it keeps layer4 (7×7) at 224², the level
# grad-cam's own examples use.
MIN_MAP_SIDE = 7


def default_level(backbone: nn.Module, image_size: int | None = None, reduction: int | None = None) -> str:
    """The last module of a level of ``backbone``: the level with ``reduction`` (its stride) if given, else the
    deepest level whose map is at least ``MIN_MAP_SIDE``×``MIN_MAP_SIDE`` at ``image_size`` (a coarser map peaks at
    one of a few cell centres, most objects' boxes holding none), measured where the backbone can run; the finest
    level where none is that large."""
    info = getattr(backbone, "feature_info", None)
    if not info:
        raise ConfigError(f"{type(backbone).__name__} has no feature_info: give --layer NAME")
    if reduction is not None:
        chosen = [level for level in info if level["reduction"] == reduction] or info
    else:
        sides = [image_size // level["reduction"] if image_size else MIN_MAP_SIDE for level in info]
        measured = _level_sides(backbone, image_size) if image_size else None
        if measured is not None and len(measured) == len(info):
            # The measured size only rules a level out, never in: a padded net's map is rounded up (2×2 at 48² at
            # stride 32), its second row mostly padding.
            sides = [min(a, b) for a, b in zip(sides, measured)]
        chosen = [level for level, side in zip(info, sides) if side >= MIN_MAP_SIDE] or info[:1]
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


def map_size(model: nn.Module, layer: nn.Module, image_size: int) -> tuple[int, int] | None:
    """(h, w) of ``layer``'s output when ``model`` runs a blank ``image_size``² image: the size a figure names.
    None for a layer that gives no map (not a tensor of at least 3 dimensions)."""
    sizes = []
    handle = layer.register_forward_hook(
        lambda m, i, o: sizes.append(tuple(o.shape[-2:]) if isinstance(o, torch.Tensor) and o.dim() >= 3 else None))
    weight = next(model.parameters())
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(1, 3, image_size, image_size, device=weight.device, dtype=weight.dtype))
    finally:
        handle.remove()
        model.train(was_training)
    return sizes[0] if sizes else None


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
