"""SE-ResNet and SE-ResNeXt (Hu, Shen, Sun 2018) as timm builds them: ResNet v1.5 whose blocks gate their residual
branch with squeeze-excitation after the last BatchNorm (``ResNet(attn_layer="se")``, the block code is in
``resnet.py``). Keys are timm's (``layer1.0.se.fc1.weight`` …), so ``timm.create_model("seresnet50")`` weights load
unrenamed. (timm's ``legacy_seresnet*``, Cadene's ``pretrainedmodels`` layout with ``layer0``/``se_module``, is not
this layout.)
"""
from __future__ import annotations

from backbonekit.models.registry import imagenet_cfg, register_model
from backbonekit.models.resnet import BasicBlock, Bottleneck, ResNet


def _se(**kwargs) -> dict:
    return {"attn_layer": "se", **kwargs}


# timm's seresnet18/34: BasicBlocks gated after bn2 (SE on ``planes`` channels), bicubic, crop 0.875.
@register_model(cfg=imagenet_cfg(224, interpolation="bicubic", classifier="fc"))
def seresnet18(**kwargs) -> ResNet:
    return ResNet(BasicBlock, [2, 2, 2, 2], **_se(**kwargs))


@register_model(cfg=imagenet_cfg(224, interpolation="bicubic", classifier="fc"))
def seresnet34(**kwargs) -> ResNet:
    return ResNet(BasicBlock, [3, 4, 6, 3], **_se(**kwargs))


# timm's defaults: bicubic; seresnet50's weights (a1_in1k) evaluate at crop 0.95.
@register_model(cfg=imagenet_cfg(224, crop_pct=0.95, interpolation="bicubic", classifier="fc"))
def seresnet50(**kwargs) -> ResNet:
    return ResNet(Bottleneck, [3, 4, 6, 3], **_se(**kwargs))


@register_model(cfg=imagenet_cfg(224, interpolation="bicubic", classifier="fc"))
def seresnet101(**kwargs) -> ResNet:
    return ResNet(Bottleneck, [3, 4, 23, 3], **_se(**kwargs))


@register_model(cfg=imagenet_cfg(224, interpolation="bicubic", classifier="fc"))
def seresnet152(**kwargs) -> ResNet:
    return ResNet(Bottleneck, [3, 8, 36, 3], **_se(**kwargs))


@register_model(cfg=imagenet_cfg(224, interpolation="bicubic", classifier="fc"))
def seresnext50_32x4d(**kwargs) -> ResNet:
    return ResNet(Bottleneck, [3, 4, 6, 3], groups=32, width_per_group=4, **_se(**kwargs))
