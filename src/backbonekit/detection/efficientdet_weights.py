"""effdet (rwightman/efficientdet-pytorch) state dicts → our EfficientDet names, so effdet users keep their weights.

    backbone.conv_stem… / blocks.s.j…                     → backbone.body.… (the timm EfficientNet renaming)
    fpn.resample.{L}.conv.{conv,bn}.…                      → fpn.extra.{L - backbone maps}.{conv,bn}.…
    fpn.cell.r.fnode.n.combine.resample.{id}.conv.{conv,bn} → fpn.cells.r.nodes.n.resample.{position of id}.{conv,bn}
    fpn.cell.r.fnode.n.combine.edge_weights                → fpn.cells.r.nodes.n.weights
    fpn.cell.r.fnode.n.after_combine.conv.{conv_dw,conv_pw,bn} → fpn.cells.r.nodes.n.conv.{dw,pw,bn}
    {class,box}_net.conv_rep.i.{conv_dw,conv_pw}           → {class,box}_net.convs.i.{dw,pw}
    {class,box}_net.bn_rep.i.level.bn.…  (or level-first bn_rep.level.i.…) → {class,box}_net.norms.level.i.…
    {class,box}_net.predict.{conv_dw,conv_pw}              → {class,box}_net.predict.{dw,pw}

A class net trained for another class count keeps the model's own fresh predictor (with a warning): fine-tuning
COCO weights on KITTI then needs no manual surgery.
"""
from __future__ import annotations

import re
import warnings

import torch.nn as nn

from backbonekit import weights
from backbonekit.detection.bifpn import bifpn_nodes
from backbonekit.errors import WeightsError

SIGNATURE = "class_net.conv_rep.0.conv_dw.weight"  # present in every effdet model, absent from ours
_SEPARABLE = {"conv_dw": "dw", "conv_pw": "pw", "bn": "bn"}


def convert_effdet_state_dict(sd: weights.StateDict, model: nn.Module) -> weights.StateDict:
    if not hasattr(model, "fpn") or not hasattr(model, "class_net"):
        raise WeightsError(f"these are effdet EfficientDet weights; "
                           f"{getattr(model, 'model_name', type(model).__name__)} is not an EfficientDet")
    num_inputs = len(model.backbone.channels)
    spec = bifpn_nodes(model.fpn.config.num_levels)
    backbone = {k[len("backbone."):]: v for k, v in sd.items() if k.startswith("backbone.")}
    out = {f"backbone.body.{k}": v for k, v in weights.convert_state_dict(backbone, model.backbone.body).items()}
    for key, value in sd.items():
        if key.startswith("backbone."):
            continue
        out[_rename(key, num_inputs, spec)] = value
    _keep_own_predictor_if_different(out, model)
    return out


def _rename(key: str, num_inputs: int, spec) -> str:
    if m := re.fullmatch(r"fpn\.resample\.(\d+)\.conv\.(conv|bn)\.(\w+)", key):
        return f"fpn.extra.{int(m[1]) - num_inputs}.{m[2]}.{m[3]}"
    if m := re.fullmatch(r"fpn\.cell\.(\d+)\.fnode\.(\d+)\.(.+)", key):
        r, n, rest = m[1], int(m[2]), m[3]
        node = f"fpn.cells.{r}.nodes.{n}"
        if m := re.fullmatch(r"combine\.resample\.(\d+)\.conv\.(conv|bn)\.(\w+)", rest):
            return f"{node}.resample.{spec[n][1].index(int(m[1]))}.{m[2]}.{m[3]}"
        if rest == "combine.edge_weights":
            return f"{node}.weights"
        if m := re.fullmatch(r"after_combine\.conv\.(conv_dw|conv_pw|bn)\.(\w+)", rest):
            return f"{node}.conv.{_SEPARABLE[m[1]]}.{m[2]}"
    if m := re.fullmatch(r"(class_net|box_net)\.(conv_rep|predict)\.(?:(\d+)\.)?(conv_dw|conv_pw)\.(\w+)", key):
        where = f"convs.{m[3]}" if m[2] == "conv_rep" else "predict"
        return f"{m[1]}.{where}.{_SEPARABLE[m[4]]}.{m[5]}"
    if m := re.fullmatch(r"(class_net|box_net)\.bn_rep\.(\d+)\.(\d+)\.bn\.(\w+)", key):  # repeat-first (default)
        return f"{m[1]}.norms.{m[3]}.{m[2]}.{m[4]}"
    if m := re.fullmatch(r"(class_net|box_net)\.bn_rep\.(\d+)\.(\d+)\.(\w+)", key):  # head_bn_level_first=True
        return f"{m[1]}.norms.{m[2]}.{m[3]}.{m[4]}"
    return key  # unknown: load_weights reports it as unexpected


def _keep_own_predictor_if_different(sd: weights.StateDict, model: nn.Module) -> None:
    own = model.state_dict()
    keys = ("class_net.predict.pw.weight", "class_net.predict.pw.bias")
    if all(k in sd for k in keys) and sd[keys[0]].shape != own[keys[0]].shape:
        warnings.warn(f"effdet class net predicts {sd[keys[1]].numel() // model.anchor_config.num_anchors} classes, "
                      f"the model {model.num_classes}: the class predictor keeps its fresh initialisation",
                      stacklevel=4)
        for k in keys:
            sd[k] = own[k]


# Registering the layout makes create_model("efficientdet_d0", pretrained=effdet_state_dict_or_file) work.
weights.LAYOUTS.setdefault(SIGNATURE, ("effdet EfficientDet", convert_effdet_state_dict))
