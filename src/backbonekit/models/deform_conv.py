"""Deformable convolution v1 (Dai et al. 2017) and v2 (Zhu et al. 2019) on ``torchvision.ops.deform_conv2d``.

``DeformConv2d`` is an ``nn.Conv2d`` (same ``weight``/``bias`` keys, so a plain conv's weights load into it, and
``fuse_batchnorm`` folds a following BatchNorm into it) plus a predictor ``conv_offset``: a conv of the same kernel,
stride, padding and dilation giving, at every output position, 2·k² sampling offsets (v1) and k² modulation scalars
(v2). The predictor starts at zero: offsets 0 and, for v2, modulation 2·sigmoid(0) = 1, so a freshly converted
network computes exactly what the plain convolution did and learns to deform from there. (The DCNv2 paper and its
reference code use sigmoid(m), i.e. modulation 0.5 at start, which would halve every converted layer's output; the
factor 2 keeps the range (0, 2) and makes the start an identity.)

Used by ResNet stages: ``create_model("resnet50", deform_stages=(3, 4), deform_version=2)``.
"""
from __future__ import annotations

import torch
import torch.nn as nn
from torchvision.ops import deform_conv2d

from backbonekit.weights import load_weights, read_state_dict


class DeformConv2d(nn.Conv2d):
    """A deformable (v1) or modulated deformable (v2) convolution; ``conv_offset`` predicts the offsets (and mask)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size=3, stride=1, padding=1, dilation=1,
                 groups: int = 1, bias: bool = False, version: int = 2, offset_groups: int = 1):
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, padding=padding, dilation=dilation,
                         groups=groups, bias=bias)
        if version not in (1, 2):
            raise ValueError(f"deformable convolution version must be 1 or 2, got {version}")
        if in_channels % offset_groups:
            raise ValueError(f"offset_groups {offset_groups} must divide in_channels {in_channels}")
        self.version, self.offset_groups = version, offset_groups
        kh, kw = self.kernel_size
        per_position = 3 if version == 2 else 2  # (dy, dx) and, for v2, a modulation scalar
        self.conv_offset = nn.Conv2d(in_channels, per_position * offset_groups * kh * kw, self.kernel_size,
                                     stride=self.stride, padding=self.padding, dilation=self.dilation, bias=True)
        self.reset_offset()

    def reset_offset(self) -> None:
        """Zero the predictor: no deformation and (v2) modulation exactly 1, i.e. a plain convolution."""
        nn.init.zeros_(self.conv_offset.weight)
        nn.init.zeros_(self.conv_offset.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pred = self.conv_offset(x)
        mask = None
        if self.version == 2:
            n = 2 * self.offset_groups * self.kernel_size[0] * self.kernel_size[1]
            pred, mask = pred[:, :n], 2.0 * torch.sigmoid(pred[:, n:])
        # torchvision's CPU kernel indexes memory with the offsets: a NaN offset (a diverged run) is a segmentation
        # fault there, not a NaN loss. Sample with finite offsets and mark the output NaN instead (no host sync).
        nan = torch.isnan(pred).any()
        out = deform_conv2d(x, torch.nan_to_num(pred), self.weight, self.bias, stride=self.stride,
                            padding=self.padding, dilation=self.dilation, mask=mask)
        return out.masked_fill(nan, float("nan"))

    def extra_repr(self) -> str:
        return super().extra_repr() + f", version={self.version}"


def offset_keys(model: nn.Module) -> list[str]:
    """State-dict keys of every offset/mask predictor in ``model`` (the keys a plain network's weights lack)."""
    return [f"{name}.conv_offset.{p}" for name, m in model.named_modules() if isinstance(m, DeformConv2d)
            for p in ("weight", "bias")]


def load_plain_weights(model: nn.Module, source, **kwargs) -> nn.Module:
    """Load the weights of the same network without deformable convs (torchvision/timm ResNet …) into ``model``.

    Every key must still match by name and shape, as in ``load_weights``; only the offset predictors, which plain
    weights cannot have, keep their zero initialisation (so the outputs equal the plain network's at start).
    """
    sd = dict(read_state_dict(source))
    own = model.state_dict()
    for key in offset_keys(model):
        sd.setdefault(key, own[key])
    return load_weights(model, sd, **kwargs)


def _register_flops() -> None:
    # torch's FlopCounterMode knows aten ops only; count a deformable conv as the convolution it computes
    # (2 FLOPs per multiply-add of the kernel; the bilinear sampling and the predictor conv, an aten conv, aside).
    try:
        from torch.utils.flop_counter import register_flop_formula

        @register_flop_formula(torch.ops.torchvision.deform_conv2d)
        def _deform_conv2d_flops(input_shape, weight_shape, *args, out_shape=None, **kwargs) -> int:
            batch, cout, hout, wout = out_shape
            _, cin_per_group, kh, kw = weight_shape
            return 2 * batch * cout * hout * wout * cin_per_group * kh * kw
    except (ImportError, AttributeError, RuntimeError, ValueError):  # an older torch, or registered already
        pass


_register_flops()

__all__ = ["DeformConv2d", "offset_keys", "load_plain_weights"]
