"""From head outputs to detections: top candidates, decoding, class-wise NMS (REFERENCE §2, as effdet does it).

Per image: the ``max_candidates`` (5000) highest class logits over all anchors × classes, their boxes decoded and
clipped to the image, sigmoid scores, those below ``score_threshold`` dropped, ``torchvision.ops.batched_nms`` per
class at IoU 0.5, and the best ``max_detections`` (100) kept. Choosing candidates on logits before the sigmoid is the
same order and saves N·C sigmoids.
"""
from __future__ import annotations

import torch
from torchvision.ops import batched_nms, clip_boxes_to_image

from backbonekit.detection.anchors import decode_boxes


def postprocess(cls_logits: torch.Tensor, box_regression: torch.Tensor, anchors: torch.Tensor,
                image_size: tuple[int, int] | None = None, score_threshold: float = 0.0, iou_threshold: float = 0.5,
                max_candidates: int = 5000, max_detections: int = 100) -> list[dict[str, torch.Tensor]]:
    """(B, N, C) logits and (B, N, 4) codes → per image ``{"boxes" (K, 4) xyxy, "scores" (K,), "labels" (K,)}``
    sorted by score, K ≤ ``max_detections``; boxes in input pixels, clipped to ``image_size`` (H, W) if given."""
    num_classes = cls_logits.shape[-1]
    results = []
    for logits, codes in zip(cls_logits, box_regression):
        flat = logits.reshape(-1)
        top_logits, top_index = flat.topk(min(max_candidates, flat.numel()))
        anchor_index, labels = top_index // num_classes, top_index % num_classes
        scores = top_logits.float().sigmoid()
        boxes = decode_boxes(codes[anchor_index].float(), anchors[anchor_index])
        if image_size is not None:
            boxes = clip_boxes_to_image(boxes, tuple(image_size))
        keep = scores > score_threshold
        boxes, scores, labels = boxes[keep], scores[keep], labels[keep]
        keep = batched_nms(boxes, scores, labels, iou_threshold)[:max_detections]
        results.append({"boxes": boxes[keep], "scores": scores[keep], "labels": labels[keep]})
    return results
