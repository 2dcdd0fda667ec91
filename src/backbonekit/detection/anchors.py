"""EfficientDet anchors, anchor ↔ ground-truth matching, and the box encoding the box net learns.

Anchors (REFERENCE §2): on each level P3…P7 (stride 2^level), at every feature-map cell centre, 3 octave scales
(2^0, 2^(1/3), 2^(2/3)) × 3 aspect multipliers (x, y) = (1, 1), (1.4, 0.7), (0.7, 1.4); the base side is
``anchor_scale`` (4) × stride. Feature sizes halve with rounding up, as a stride-2 SAME conv does, so any (H, W)
works — non-square and not a multiple of 128 included — and a level's true stride is image size / feature size.
The order, which the heads' flattened outputs must follow (see ``flatten_level_outputs``), is
level → row → column → (scale, ratio): the same as effdet's, so its weights and ours agree anchor for anchor.

All boxes here are xyxy pixels (effdet uses yxyx internally; its *codes* are (ty, tx, th, tw), and so are ours).

Matching (effdet's ``ArgMaxMatcher`` rule, written with ``torchvision.ops.box_iou``):
- IoU ≥ ``fg_iou`` (0.5) with some box → positive for the box of highest IoU;
- IoU < ``bg_iou`` → background; in between → ignored. effdet and the TF original use ``bg_iou = fg_iou = 0.5``
  (no ignored band); RetinaNet's 0.4 is one argument away;
- every ground-truth box is then forced onto its best anchor even below ``fg_iou`` (so small boxes get trained);
- a background anchor covered by an ignore region (DontCare, a neighbour class, a crowd box) for at least
  ``ignore_ioa`` of its own area is ignored instead: it must not be taught "background" where an object may be.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from torchvision.ops import box_area, box_iou

BACKGROUND = -1
IGNORE = -2
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


def intersection_over_first(first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
    """(N, M): area of first[i] ∩ second[j] divided by the area of first[i] (0 for empty first boxes)."""
    lt = torch.max(first[:, None, :2], second[None, :, :2])
    rb = torch.min(first[:, None, 2:], second[None, :, 2:])
    inter = (rb - lt).clamp(min=0).prod(-1)
    return inter / box_area(first).clamp(min=1e-9)[:, None]


def match_anchors(anchors: torch.Tensor, gt_boxes: torch.Tensor, ignore_boxes: torch.Tensor | None = None,
                  fg_iou: float = 0.5, bg_iou: float = 0.5, ignore_ioa: float = 0.5) -> torch.Tensor:
    """For each anchor the index of its ground-truth box, or ``BACKGROUND`` (-1) or ``IGNORE`` (-2)."""
    if bg_iou > fg_iou:
        raise ValueError(f"bg_iou ({bg_iou}) must not exceed fg_iou ({fg_iou})")
    matches = torch.full((anchors.shape[0],), BACKGROUND, dtype=torch.long, device=anchors.device)
    if gt_boxes.numel():
        iou = box_iou(gt_boxes, anchors)  # (G, N)
        best_iou, best_gt = iou.max(0)
        matches = torch.where(best_iou >= fg_iou, best_gt, matches)
        matches[(best_iou >= bg_iou) & (best_iou < fg_iou)] = IGNORE
        # Force every box onto its best anchor. When two boxes share one, the box that overlaps it most keeps it.
        best_anchor = iou.argmax(1)
        chosen = torch.zeros_like(iou, dtype=torch.bool)
        chosen[torch.arange(len(gt_boxes), device=iou.device), best_anchor] = True
        forced = chosen.any(0)
        owner = torch.where(chosen, iou, torch.full_like(iou, -1.0)).argmax(0)
        matches = torch.where(forced, owner, matches)
    if ignore_boxes is not None and ignore_boxes.numel():
        covered = intersection_over_first(anchors, ignore_boxes).max(1).values >= ignore_ioa
        matches[(matches == BACKGROUND) & covered] = IGNORE
    return matches


def build_targets(anchors: torch.Tensor, gt_boxes: torch.Tensor, gt_labels: torch.Tensor,
                  ignore_boxes: torch.Tensor | None = None, **match_args):
    """Training targets of one image: class per anchor (label ≥ 0, -1 background, -2 ignored) and box codes
    (zero where not positive). Empty boxes are dropped first: they overlap nothing and would claim a random anchor."""
    gt_boxes = torch.as_tensor(gt_boxes, dtype=torch.float32, device=anchors.device).reshape(-1, 4)
    gt_labels = torch.as_tensor(gt_labels, dtype=torch.long, device=anchors.device).reshape(-1)
    if ignore_boxes is not None:
        ignore_boxes = torch.as_tensor(ignore_boxes, dtype=torch.float32, device=anchors.device).reshape(-1, 4)
    keep = box_area(gt_boxes) > 0
    gt_boxes, gt_labels = gt_boxes[keep], gt_labels[keep]
    matches = match_anchors(anchors, gt_boxes, ignore_boxes, **match_args)
    positive = matches >= 0
    cls_targets = matches.clone()
    box_targets = torch.zeros(anchors.shape[0], 4, device=anchors.device)
    if positive.any():
        cls_targets[positive] = gt_labels[matches[positive]]
        box_targets[positive] = encode_boxes(gt_boxes[matches[positive]], anchors[positive])
    return cls_targets, box_targets


def build_batch_targets(anchors: torch.Tensor, targets: list[dict], **match_args):
    """``build_targets`` for a batch of target dicts (``boxes``, ``labels``, optional ``ignore_boxes``) →
    (B, N) class targets and (B, N, 4) box targets."""
    cls, box = zip(*(build_targets(anchors, t["boxes"], t["labels"], t.get("ignore_boxes"), **match_args)
                     for t in targets))
    return torch.stack(cls), torch.stack(box)
