"""Anchor ↔ ground-truth matching and the training targets of the class and box nets.

Matching (effdet's ``ArgMaxMatcher`` rule, written with ``torchvision.ops.box_iou``):
- IoU ≥ ``fg_iou`` (0.5) with some box → positive for the box of highest IoU;
- IoU < ``bg_iou`` → background; in between → ignored. effdet and the TF original use ``bg_iou = fg_iou = 0.5``
  (no ignored band); RetinaNet's 0.4 is one argument away;
- every ground-truth box is then forced onto its best anchor even below ``fg_iou`` (so small boxes get trained);
- a background anchor covered by an ignore region (DontCare, a neighbour class, a crowd box) for at least
  ``ignore_ioa`` of its own area is ignored instead: it must not be taught "background" where an object may be.
"""
from __future__ import annotations

import torch
from torchvision.ops import box_area, box_iou

from backbonekit.models.anchors import encode_boxes

BACKGROUND = -1
IGNORE = -2


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
