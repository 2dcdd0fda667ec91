"""Weights in, weights out.

``load_weights`` reads a state dict in any supported layout (ours, torchvision, timm, lukemelas
``efficientnet_pytorch``), renames it to ours and loads it strictly, so a mismatch is an error that names the keys
rather than a silently half-initialised model. ``save_weights`` writes safetensors with enough metadata for
``backbonekit.load_model`` to rebuild the model. A leaf: it knows no architecture; each registers its layouts here.
"""
from __future__ import annotations

import json
import os
import re
import tempfile
import warnings
import zipfile
from pathlib import Path
from typing import Callable

import torch
import torch.nn as nn

from backbonekit.errors import WeightsError

StateDict = dict[str, torch.Tensor]

# Training checkpoints wrap the weights; these are the keys used by Lightning, timm, torchvision references, DETR…
WRAPPER_KEYS = ("state_dict", "model", "model_state_dict", "model_state", "net", "module", "params")
EMA_KEYS = ("state_dict_ema", "model_ema", "ema")
PREFIXES = ("module.", "_orig_mod.")  # DataParallel/DDP and torch.compile


# ----------------------------------------------------------------------------------------------------- reading

def read_state_dict(source: str | os.PathLike | dict, *, prefer_ema: bool = False) -> StateDict:
    """A flat ``{name: tensor}`` from a file or a (possibly wrapped) dict, with DDP/compile prefixes removed."""
    obj = _read_file(Path(source)) if isinstance(source, (str, os.PathLike)) else source
    where = str(source) if isinstance(source, (str, os.PathLike)) else "state dict"
    state = _unwrap(obj, prefer_ema, where)
    return {_strip_prefixes(k): v for k, v in state.items() if isinstance(v, torch.Tensor)}


def _read_file(path: Path) -> dict:
    if not path.is_file():
        raise WeightsError(f"{path}: no such file")
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(path)
        except (SafetensorError, OSError, ValueError) as e:
            raise WeightsError(f"{path}: not a readable safetensors file ({e})") from None
    try:
        # weights_only: a .pth can carry arbitrary pickled code; we accept tensors and plain containers only.
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any failure to deserialise means the file is unusable
        raise WeightsError(f"{path}: {why_torch_load_failed(path, e)}") from None


def why_torch_load_failed(path: Path, e: Exception) -> str:
    """One line for a file ``torch.load(weights_only=True)`` refused; never torch's advice to unpickle it anyway."""
    with open(path, "rb") as f:
        head = f.read(2)
    # torch has written zip archives since 1.6; older files (some published weights) are pickles, protocol 2.
    if not zipfile.is_zipfile(path) and head != b"\x80\x02":
        return "not a PyTorch file (neither a zip archive nor torch's older format): truncated, or another kind of file"
    text = str(e)
    if "weights_only" in text or "Unsupported global" in text:
        return ("holds Python objects besides tensors and plain data, which are never unpickled here: save "
                "`model.state_dict()` (or safetensors) instead")
    return f"not a readable PyTorch file ({_first_line(e)})"


def _unwrap(obj, prefer_ema: bool, where: str) -> dict:
    if not isinstance(obj, dict):
        raise WeightsError(f"{where}: expected a state dict, found {type(obj).__name__}")
    for _ in range(3):  # nested wrappers, e.g. {"model": {"state_dict": …}}
        if any(isinstance(v, torch.Tensor) for v in obj.values()):
            return obj
        keys = (EMA_KEYS + WRAPPER_KEYS) if prefer_ema else (WRAPPER_KEYS + EMA_KEYS)
        inner = next((obj[k] for k in keys if isinstance(obj.get(k), dict)), None)
        if inner is None:
            break
        obj = inner
    if not any(isinstance(v, torch.Tensor) for v in obj.values()):
        raise WeightsError(f"{where}: no tensors found (top-level keys: {', '.join(map(str, list(obj)[:8]))})")
    return obj


def _strip_prefixes(key: str) -> str:
    changed = True
    while changed:
        changed = False
        for prefix in PREFIXES:
            if key.startswith(prefix):
                key, changed = key[len(prefix):], True
    return key


def _first_line(e: Exception) -> str:
    return str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__


# ------------------------------------------------------------------------------------------------ layouts

# signature key → (layout name, converter to our names). Each architecture registers the layouts of the libraries
# whose weights it takes, beside its own code (``models/efficientnet.py``, ``models/efficientdet.py``); ResNet
# weights of torchvision and timm already use our names.
LAYOUTS: dict[str, tuple[str, Callable[[StateDict, nn.Module], StateDict]]] = {}


def register_layout(signature: str, name: str, convert: Callable[[StateDict, nn.Module], StateDict]) -> None:
    """State dicts holding the key ``signature`` are of layout ``name`` and renamed to ours by ``convert``."""
    LAYOUTS.setdefault(signature, (name, convert))


def detect_layout(sd: StateDict) -> str:
    for signature, (name, _) in LAYOUTS.items():
        if signature in sd:
            return name
    return "backbonekit (or a library using our names, e.g. torchvision/timm ResNet)"


def convert_state_dict(sd: StateDict, model: nn.Module) -> StateDict:
    """Rename a state dict of any supported layout to the names of ``model`` (ours)."""
    for signature, (_, convert) in LAYOUTS.items():
        if signature in sd:
            return convert(sd, model)
    return dict(sd)


# ------------------------------------------------------------------------------------------------ loading

def load_weights(model: nn.Module, source: str | os.PathLike | dict, *, prefer_ema: bool = False) -> nn.Module:
    """Load weights of any supported layout into ``model`` (in place; also returned).

    A classifier of another class count is not loaded: the model's starts at zero, with a warning (a model without
    classifier keeps its own weights); every other key must match by name and shape.
    """
    name = getattr(model, "model_name", type(model).__name__)
    where = str(source) if isinstance(source, (str, os.PathLike)) else "state dict"
    sd = read_state_dict(source, prefer_ema=prefer_ema)
    layout = detect_layout(sd)
    sd = convert_state_dict(sd, model)
    sd = _strip_common_prefix(sd, model.state_dict())
    expected = model.state_dict()
    # Parts the source network cannot have (a deformable conv's offset predictor) keep their initialisation, chosen
    # so that the outputs start as the source's.
    for key in getattr(model, "keys_kept_if_missing", lambda: ())():
        sd.setdefault(key, expected[key])
    sd, own_classifier = _drop_classifier_if_different(sd, expected, model, where)
    for k in own_classifier:
        sd[k] = expected[k]
    for k in _replaced_stem(sd, expected, model, where):
        sd[k] = expected[k]

    # FrozenBatchNorm2d keeps no step counter; BatchNorm may be loaded from weights saved without one.
    missing = [k for k in expected if k not in sd and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in sd if k not in expected and not k.endswith("num_batches_tracked")]
    mismatched = [f"{k} {tuple(sd[k].shape)} vs {tuple(v.shape)}" for k, v in expected.items()
                  if k in sd and sd[k].shape != v.shape]
    if missing or unexpected or mismatched:
        raise WeightsError(f"{where}: weights (layout: {layout}) do not fit {name}: "
                           + "; ".join(_describe(label, keys) for label, keys in
                                       (("missing", missing), ("unexpected", unexpected),
                                        ("shape mismatch", mismatched)) if keys))
    for k, v in expected.items():
        if k.endswith("num_batches_tracked") and k not in sd:
            sd[k] = v
    model.load_state_dict({k: v for k, v in sd.items() if k in expected}, strict=True)
    if own_classifier:
        _start_small(model)
    return model


def _start_small(model: nn.Module) -> None:
    """A classifier the weights did not bring starts at zero, as BiT's fine-tuning does: its first logits are 0 (every
    class equally likely) and the backbone's first gradients are not noise from a random head. With the
    architecture's own init (uniform ±1/√classes: std 0.29 for 4 classes) the logits on EfficientNet-Lite0's
    pretrained features started with std 3.6–4.6, and a frozen backbone at ``--lr 1e-3`` reached 8–17 % on 4 photo
    classes that logistic regression on the same features separates perfectly. A linear head learns from zero (its
    gradient is features × error); a model built without weights keeps its architecture's init."""
    head = model.get_classifier() if hasattr(model, "get_classifier") else None
    if isinstance(head, nn.Linear):
        with torch.no_grad():
            head.weight.zero_()
            if head.bias is not None:
                head.bias.zero_()


def _strip_common_prefix(sd: StateDict, expected: StateDict) -> StateDict:
    # Checkpoints of a LightningModule or a wrapper name the net by an attribute ("model.", "backbone.", …).
    for _ in range(2):
        if not sd or any(k in expected for k in sd):
            return sd
        heads = {k.split(".", 1)[0] for k in sd}
        if len(heads) != 1 or not all("." in k for k in sd):
            return sd
        sd = {k.split(".", 1)[1]: v for k, v in sd.items()}
    return sd


def _drop_classifier_if_different(sd: StateDict, expected: StateDict, model: nn.Module,
                                  where: str) -> tuple[StateDict, list[str]]:
    """Drop a classifier trained for another class count; returns the weights and the model keys kept as they are."""
    prefix = getattr(model, "classifier_name", None)
    keys = [k for k in sd if prefix and k.startswith(prefix + ".")]
    if not keys or all(k in expected and expected[k].shape == sd[k].shape for k in keys):
        return sd, []
    own = [k for k in expected if k.startswith(prefix + ".")]
    weight, features = sd.get(f"{prefix}.weight"), getattr(model, "num_features", None)
    if own and weight is not None and weight.ndim == 2 and weight.shape[1] == features:
        warnings.warn(f"{where}: classifier for {weight.shape[0]} classes does not fit {model.num_classes}; "
                      "a new one starts at zero", stacklevel=3)
    elif own:
        return sd, []  # another architecture: let the key and shape check report it
    return {k: v for k, v in sd.items() if k not in keys}, own


def _replaced_stem(sd: StateDict, expected: StateDict, model: nn.Module, where: str) -> list[str]:
    """The keys of a small stem (``stem="small"``) that keep their own initialisation: all of them when the weights
    bring a stem of other shapes (an ImageNet 7×7 one), none when they fit (a small-stem model's own weights)."""
    keys = getattr(model, "replaced_stem_keys", lambda: [])()
    if not any(k in sd and sd[k].shape != expected[k].shape for k in keys):
        return []
    shapes = ", ".join(f"{k} {'×'.join(map(str, sd[k].shape))}" for k in keys if k in sd)
    warnings.warn(f"{where}: {getattr(model, 'model_name', type(model).__name__)} has a small stem: the weights' "
                  f"stem ({shapes}) does not fit it, so the stem starts fresh; every other layer loaded", stacklevel=3)
    return keys


def _describe(label: str, keys: list[str], shown: int = 5) -> str:
    more = f" … (+{len(keys) - shown} more)" if len(keys) > shown else ""
    return f"{len(keys)} {label} ({', '.join(keys[:shown])}{more})"


# ------------------------------------------------------------------------------------------------- saving

def save_weights(model: nn.Module, path: str | os.PathLike, metadata: dict | None = None) -> Path:
    """Write the weights as safetensors (atomically) with the metadata ``load_model`` needs to rebuild the model."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    cfg = getattr(model, "pretrained_cfg", {})
    meta = {"format": "backbonekit",
            "architecture": getattr(model, "model_name", type(model).__name__),
            "model_kwargs": json.dumps(getattr(model, "model_kwargs", {})),
            "num_classes": str(getattr(model, "num_classes", "")),
            "mean": json.dumps(list(cfg.get("mean", ()))), "std": json.dumps(list(cfg.get("std", ()))),
            "input_size": json.dumps(list(cfg.get("input_size", ())))}
    meta.update({k: v if isinstance(v, str) else json.dumps(v) for k, v in (metadata or {}).items()})
    tensors = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata=meta)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def read_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The string metadata of a safetensors file (what ``save_weights`` wrote: architecture, class names …)."""
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{path}: no such file")
    try:
        with safe_open(path, "pt") as f:
            return dict(f.metadata() or {})
    except (SafetensorError, OSError) as e:
        raise WeightsError(f"{path}: not a readable safetensors file ({e})") from None
