"""From head outputs to detections: top candidates, decoding, class-wise NMS (as effdet does it).

Per image: the ``max_candidates`` (5000) highest class logits over all anchors × classes, their boxes decoded and
clipped to the image (a box with no area left dropped, ``clip_detections``), sigmoid scores, those below
``score_threshold`` dropped, ``torchvision.ops.batched_nms`` per
class at IoU 0.5, and the best ``max_detections`` (100) kept. Choosing candidates on logits before the sigmoid is the
same order and saves N·C sigmoids.

Finding the candidates is the costly part (D0 at 512²: 49,104 anchors × 90 classes = 4.4M logits; one ``topk`` over
them took 36 ms on 2 cores, a third of the whole prediction). Two things make it cheap without changing the result:
- a lower bound on the k-th best logit: the k-th largest *per-anchor maximum* is reached by k different anchors,
  so the k-th best logit is at least that; only the few logits at or above it (about 6,000 of 4.4M on D0) go to
  ``topk``;
- the heads' per-level maps are read where they lie (``postprocess`` takes them as the model returns them), so the
  4.4M logits are never permuted and concatenated into (N, C) rows; (B, N, C) rows are accepted too.
Only the order among exactly equal logits can differ from one full ``topk`` (which leaves that order unspecified).
NMS likewise stops once ``max_detections`` boxes are kept (``_first_kept``) rather than running over all 5000.
"""
from __future__ import annotations

import torch
from torchvision.ops import batched_nms, clip_boxes_to_image, remove_small_boxes

from backbonekit.models.anchors import decode_boxes

HeadOutputs = torch.Tensor | list[torch.Tensor]
# A clipped box with a side shorter than this (pixels) has no area left and is dropped: torchvision's detectors'
# ``remove_small_boxes(boxes, 1e-2)`` after ``clip_boxes_to_image``. The exported graph applies the same rule.
MIN_BOX_SIDE = 1e-2


def has_area(boxes: torch.Tensor) -> torch.Tensor:
    """Boolean mask of the xyxy ``boxes`` whose both sides reach ``MIN_BOX_SIDE``."""
    return ((boxes[..., 2] - boxes[..., 0]) >= MIN_BOX_SIDE) & ((boxes[..., 3] - boxes[..., 1]) >= MIN_BOX_SIDE)


def clip_detections(detections: dict[str, torch.Tensor], image_size: tuple[int, int]) -> dict[str, torch.Tensor]:
    """One image's detections with their boxes clipped to (H, W) ``image_size``; those with no area left are
    dropped together with their scores, labels (and anything else indexed like the boxes)."""
    boxes = clip_boxes_to_image(detections["boxes"], tuple(int(v) for v in image_size))
    keep = remove_small_boxes(boxes, MIN_BOX_SIDE)
    return {**{k: v[keep] for k, v in detections.items()}, "boxes": boxes[keep]}


def postprocess(cls_logits: HeadOutputs, box_regression: HeadOutputs, anchors: torch.Tensor,
                image_size: tuple[int, int] | None = None, score_threshold: float = 0.0, iou_threshold: float = 0.5,
                max_candidates: int = 5000, max_detections: int = 100,
                with_anchors: bool = False) -> list[dict[str, torch.Tensor]]:
    """Head outputs → per image ``{"boxes" (K, 4) xyxy, "scores" (K,), "labels" (K,)}`` sorted by score,
    K ≤ ``max_detections``; boxes in input pixels, clipped to ``image_size`` (H, W) if given (a box with no area
    left is dropped before NMS). ``with_anchors``:
    also ``"anchors"`` (K,), the index of the anchor each box came from, in ``forward_flat``'s row order (what
    ``explain detect`` takes a box's logit from).

    The outputs are either rows, (B, N, C) logits and (B, N, 4) codes in anchor order (``forward_flat``), or the
    per-level maps (B, A·C, h, w) and (B, A·4, h, w) of ``model(x)``, in either memory format.
    """
    box_grids = _anchor_grids(box_regression, 4)
    num_classes = (cls_logits.shape[-1] if isinstance(cls_logits, torch.Tensor)
                   else cls_logits[0].shape[1] // box_grids[0].shape[1])
    cls_grids = _anchor_grids(cls_logits, num_classes)
    results = []
    for b in range(cls_grids[0].shape[0]):
        logits, anchor_index, labels, codes = _top_candidates([g[b] for g in cls_grids], [g[b] for g in box_grids],
                                                              max_candidates)
        scores = logits.float().sigmoid()
        boxes = decode_boxes(codes.float(), anchors[anchor_index])
        keep = scores > score_threshold
        if image_size is not None:
            boxes = clip_boxes_to_image(boxes, tuple(image_size))
            keep &= has_area(boxes)
        boxes, scores, labels, anchor_index = boxes[keep], scores[keep], labels[keep], anchor_index[keep]
        keep = _first_kept(boxes, scores, labels, iou_threshold, max_detections)
        results.append({"boxes": boxes[keep], "scores": scores[keep], "labels": labels[keep]})
        if with_anchors:
            results[-1]["anchors"] = anchor_index[keep]
    return results


def _anchor_grids(outputs: HeadOutputs, width: int) -> list[torch.Tensor]:
    """Views (B, A, width, cells) of each level; anchor ``cell·A + a`` of a level is at [:, a, :, cell].

    Rows (B, N, width) are one level of N anchors on a single cell. Per-level maps (B, A·width, h, w) are viewed,
    not copied, in both memory formats.
    """
    if isinstance(outputs, torch.Tensor):
        return [outputs.unsqueeze(-1)]
    return [m.unflatten(1, (-1, width)).flatten(3) for m in outputs]


def _top_candidates(cls_grids: list[torch.Tensor], box_grids: list[torch.Tensor], k: int):
    """The k largest logits of one image over all levels, anchors and classes: (logits, anchor index, class,
    box codes), best first."""
    maxima = [g.amax(1) for g in cls_grids]  # (A, cells): the best class of every anchor
    everything = torch.cat([m.flatten() for m in maxima])
    threshold = everything.topk(k).values[-1] if k <= everything.numel() else everything.min()
    parts, offset = [], 0
    for cls, box, best in zip(cls_grids, box_grids, maxima):
        # Only anchors whose best class reaches the bound can hold a candidate: compare their C logits alone.
        a, cell = (best >= threshold).nonzero().unbind(1)
        rows = cls[a, :, cell]
        row, label = (rows >= threshold).nonzero().unbind(1)
        a, cell = a[row], cell[row]
        parts.append((rows[row, label], offset + cell * cls.shape[0] + a, label, box[a, :, cell]))
        offset += cls.shape[0] * cls.shape[2]
    logits, anchor_index, labels, codes = (torch.cat(p) for p in zip(*parts))
    logits, order = logits.topk(min(k, logits.numel()))
    return logits, anchor_index[order], labels[order], codes[order]


def _first_kept(boxes: torch.Tensor, scores: torch.Tensor, labels: torch.Tensor, iou_threshold: float,
                max_detections: int) -> torch.Tensor:
    """``batched_nms(...)[:max_detections]`` for boxes sorted by descending score, without suppressing them all.

    Greedy NMS decides each box from the higher-scored boxes alone, so NMS over the best m boxes keeps exactly the
    first boxes that NMS over all keeps: once it keeps ``max_detections`` the rest cannot change the answer. With
    5000 candidates and 100 detections the first try (400) usually suffices; m grows 4× when suppression is heavy.
    """
    m = 4 * max_detections
    while True:
        keep = batched_nms(boxes[:m], scores[:m], labels[:m], iou_threshold)
        if len(keep) >= max_detections or m >= len(boxes):
            return keep[:max_detections]
        m *= 4
