"""A trained classifier's weights in the peer library's own model (torchvision or timm): the peer's architecture with
the run's classes (and, for a small-stem ResNet, the same 3×3 stride-1 stem without max-pool, as CIFAR ResNets are
built), loaded with our trained weights under the peer's names.

The names come from the mapping our weight loader applies to the peer's state dicts (``weights.convert_state_dict``:
peer names → ours), read backwards: every tensor of the peer's state dict is filled with its own index, renamed to
ours, and each of our tensors then says which of the peer's it came from. The peer is kept only when its logits
equal ours on the given images; otherwise there is no peer, and the reason says why.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from backbonekit.errors import BackbonekitError
from backbonekit.weights import convert_state_dict

AGREEMENT = 1e-3  # largest |Δlogit| over the largest |logit|: the same function, computed in another order


class PeerTask(nn.Module):
    """The peer's network behind the trained task's own normalisation, with the task's ``cfg``: exported, quantised
    and scored exactly as the task itself (``classification/export.py``)."""

    def __init__(self, trained, network: nn.Module, label: str):
        super().__init__()
        self.model, self.normalize, self.cfg = network, trained.normalize, trained.cfg
        self.model.model_name = label  # the exported file's ``architecture``

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model(self.normalize(images))


def peer_task(trained, library: str, images: torch.Tensor) -> tuple[PeerTask | None, str]:
    """(``trained``, an unfused ``ClassificationTask``, as the peer's model holding its weights, or None; why not)."""
    name = trained.cfg.model
    try:
        network = _peer_network(name, library, trained.cfg.num_classes, getattr(trained.cfg, "stem", "imagenet"))
    except BackbonekitError as e:
        return None, str(e)
    mapped, why = peer_state_dict(trained.model, network)
    if mapped is None:
        return None, f"{library} {name}: {why}"
    network.load_state_dict(mapped)
    task = PeerTask(trained, network.eval(), f"{library} {name}").eval()
    with torch.inference_mode():
        ours, theirs = trained(images), task(images)
    difference = float((ours - theirs).abs().max() / ours.abs().max().clamp_min(1e-30))
    if difference > AGREEMENT:
        return None, f"{library} {name} with our weights computes other logits (|Δ|/max {difference:.1e})"
    return task, ""


def _peer_network(name: str, library: str, num_classes: int, stem: str) -> nn.Module:
    from backbonekit.errors import ConfigError
    from backbonekit.tools.bench import build_peer

    if library == "torchvision":
        import torchvision

        if getattr(torchvision.models, name, None) is None:
            raise ConfigError(f"torchvision has no model {name!r}")
        network = getattr(torchvision.models, name)(num_classes=num_classes)
    elif library == "timm":
        network = build_peer(name, library)  # checks the name
        network.reset_classifier(num_classes)
    else:
        network = build_peer(name, library)  # names the peers it takes
    if stem == "small":
        if not (isinstance(getattr(network, "conv1", None), nn.Conv2d) and hasattr(network, "maxpool")):
            raise ConfigError(f"{library} {name} has no small-stem form here (ResNets only)")
        network.conv1 = nn.Conv2d(network.conv1.in_channels, network.conv1.out_channels, 3, 1, 1, bias=False)
        network.maxpool = nn.Identity()
    return network.eval()


def peer_state_dict(ours: nn.Module, peer: nn.Module) -> tuple[dict | None, str]:
    """(the peer's state dict holding ``ours``'s tensors, or None; why not)."""
    theirs = peer.state_dict()
    keys = list(theirs)
    marked = {key: torch.full_like(value, index + 1) for index, (key, value) in enumerate(theirs.items())}
    renamed, own = convert_state_dict(marked, ours), ours.state_dict()
    mapped = {}
    for key, value in renamed.items():
        if key not in own or value.numel() == 0:
            continue
        index = int(value.flatten()[0]) - 1
        if not 0 <= index < len(keys) or not bool((value == value.flatten()[0]).all()):
            return None, f"our {key} is no single tensor of the peer's"
        if own[key].numel() != theirs[keys[index]].numel():
            return None, f"our {key} {tuple(own[key].shape)} vs its {keys[index]} {tuple(theirs[keys[index]].shape)}"
        mapped[keys[index]] = own[key].reshape(theirs[keys[index]].shape).to(theirs[keys[index]].dtype)
    missing = [k for k in keys if k not in mapped and not k.endswith("num_batches_tracked")]
    if missing:
        return None, f"{len(missing)} of its tensors have no counterpart in ours (e.g. {missing[0]})"
    return {**theirs, **mapped}, ""
