"""EfficientDet anchors and the box encoding the box net learns (matching: ``detection/matching.py``).

Anchors (EfficientDet paper, effdet): on each level P3…P7 (stride 2^level), at every feature-map cell centre, 3 octave scales
(2^0, 2^(1/3), 2^(2/3)) × 3 aspect multipliers (x, y) = (1, 1), (1.4, 0.7), (0.7, 1.4); the base side is
``anchor_scale`` (4) × stride. Feature sizes halve with rounding up, as a stride-2 SAME conv does, so any (H, W)
works — non-square and not a multiple of 128 included — and a level's true stride is image size / feature size.
The order, which the heads' flattened outputs must follow (see ``flatten_level_outputs``), is
level → row → column → (scale, ratio): the same as effdet's, so its weights and ours agree anchor for anchor.

All boxes here are xyxy pixels (effdet uses yxyx internally; its *codes* are (ty, tx, th, tw), and so are ours).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

# Longest side ratio exp() may produce when decoding: beyond this a code is noise (torchvision uses the same bound).
MAX_LOG_RATIO = math.log(1000.0 / 16)


@dataclass(frozen=True)
class AnchorConfig:
    min_level: int = 3
    max_level: int = 7
    num_scales: int = 3
    aspect_ratios: tuple[tuple[float, float], ...] = ((1.0, 1.0), (1.4, 0.7), (0.7, 1.4))  # (x, y) multipliers
    anchor_scale: float = 4.0

    @property
    def num_anchors(self) -> int:
        """Anchors per feature-map cell."""
        return self.num_scales * len(self.aspect_ratios)


def feature_sizes(image_size: tuple[int, int], max_level: int) -> list[tuple[int, int]]:
    """(h, w) of levels 0…max_level: each halves with rounding up, like a stride-2 conv with SAME padding."""
    sizes = [tuple(image_size)]
    for _ in range(max_level):
        h, w = sizes[-1]
        sizes.append(((h + 1) // 2, (w + 1) // 2))
    return sizes


def generate_anchors(image_size: tuple[int, int], config: AnchorConfig = AnchorConfig()) -> torch.Tensor:
    """All anchors for an (H, W) input as (N, 4) xyxy float32, in head order (level, row, column, scale·ratio)."""
    sizes = feature_sizes(image_size, config.max_level)
    height, width = image_size
    per_level = []
    for level in range(config.min_level, config.max_level + 1):
        rows, cols = sizes[level]
        stride_y, stride_x = height / rows, width / cols  # = 2^level when the size divides evenly
        # Cell centres; float64 so the float32 result matches a numpy reference to the last bit.
        cy = stride_y / 2 + torch.arange(rows, dtype=torch.float64) * stride_y
        cx = stride_x / 2 + torch.arange(cols, dtype=torch.float64) * stride_x
        cy, cx = torch.meshgrid(cy, cx, indexing="ij")
        half_sizes = []
        for octave in range(config.num_scales):
            for ax, ay in config.aspect_ratios:
                base = config.anchor_scale * 2 ** (octave / config.num_scales)
                half_sizes.append((base * stride_x * ax / 2, base * stride_y * ay / 2))
        half = torch.tensor(half_sizes, dtype=torch.float64)  # (A, 2): half width, half height
        centres = torch.stack([cx, cy], -1).reshape(-1, 1, 2)  # (cells, 1, 2)
        per_level.append(torch.cat([centres - half, centres + half], -1).reshape(-1, 4))
    return torch.cat(per_level).float()


class Anchors(nn.Module):
    """The anchors of one input size as a buffer (so they follow ``.to(device)``), plus their per-level counts."""

    def __init__(self, image_size: tuple[int, int], config: AnchorConfig = AnchorConfig()):
        super().__init__()
        self.image_size = tuple(image_size)
        self.config = config
        sizes = feature_sizes(self.image_size, config.max_level)
        self.level_sizes = [sizes[level] for level in range(config.min_level, config.max_level + 1)]
        self.register_buffer("boxes", generate_anchors(self.image_size, config), persistent=False)

    @property
    def num_per_level(self) -> list[int]:
        return [h * w * self.config.num_anchors for h, w in self.level_sizes]

    def __len__(self) -> int:
        return self.boxes.shape[0]


def flatten_level_outputs(cls_outputs: list[torch.Tensor], box_outputs: list[torch.Tensor], num_classes: int):
    """Per-level head maps (B, A·C, h, w) and (B, A·4, h, w) → (B, N, C) and (B, N, 4) in anchor order.

    Channel ``a·C + c`` is anchor ``a``'s class ``c`` (effdet's layout), so a permute to channels-last and a reshape
    put every anchor's values on one row.
    """
    batch = cls_outputs[0].shape[0]
    cls = torch.cat([x.permute(0, 2, 3, 1).reshape(batch, -1, num_classes) for x in cls_outputs], 1)
    box = torch.cat([x.permute(0, 2, 3, 1).reshape(batch, -1, 4) for x in box_outputs], 1)
    return cls, box


def _centres_sizes(boxes: torch.Tensor):
    x1, y1, x2, y2 = boxes.unbind(-1)
    return (x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1


def encode_boxes(boxes: torch.Tensor, anchors: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """xyxy boxes relative to their anchors → codes (ty, tx, th, tw): centre offset in anchor sizes, log size ratio.

    No variance scaling (TF EfficientDet and effdet use none). ``eps`` keeps the log finite for empty boxes.
    """
    cx, cy, w, h = _centres_sizes(boxes)
    acx, acy, aw, ah = _centres_sizes(anchors)
    aw, ah, w, h = aw + eps, ah + eps, w + eps, h + eps
    return torch.stack([(cy - acy) / ah, (cx - acx) / aw, torch.log(h / ah), torch.log(w / aw)], -1)


def decode_boxes(codes: torch.Tensor, anchors: torch.Tensor) -> torch.Tensor:
    """Codes (ty, tx, th, tw) → xyxy boxes; the inverse of ``encode_boxes``."""
    acx, acy, aw, ah = _centres_sizes(anchors)
    ty, tx, th, tw = codes.unbind(-1)
    cy, cx = ty * ah + acy, tx * aw + acx
    h = torch.exp(th.clamp(max=MAX_LOG_RATIO)) * ah
    w = torch.exp(tw.clamp(max=MAX_LOG_RATIO)) * aw
    return torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], -1)
