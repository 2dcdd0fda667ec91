"""EfficientDet's training loss: sigmoid focal loss for classes plus Huber loss for box codes (EfficientDet paper, effdet).

Both are sums normalised by (number of positive anchors in the batch + 1) — the +1 keeps an image without objects
finite — and the box loss, like effdet's and TF's, is also divided by 4 (a mean over the four code values), which is
the scale its weight of 50 was tuned for. Ignored anchors (class target -2) add nothing to either loss; background
anchors (-1) add only the "no class" focal loss.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torchvision.ops import sigmoid_focal_loss

from backbonekit.detection.matching import IGNORE


def focal_loss(cls_logits: torch.Tensor, cls_targets: torch.Tensor, alpha: float = 0.25, gamma: float = 1.5):
    """Summed focal loss over non-ignored anchors. ``cls_logits`` (B, N, C); ``cls_targets`` (B, N) with class
    index ≥ 0, -1 background, -2 ignore."""
    num_classes = cls_logits.shape[-1]
    one_hot = F.one_hot(cls_targets.clamp(min=0), num_classes).to(cls_logits.dtype)
    one_hot = one_hot * (cls_targets >= 0).unsqueeze(-1)  # background: all zeros
    loss = sigmoid_focal_loss(cls_logits.float(), one_hot.float(), alpha=alpha, gamma=gamma, reduction="none")
    return (loss * (cls_targets != IGNORE).unsqueeze(-1)).sum()


def box_loss(box_regression: torch.Tensor, box_targets: torch.Tensor, cls_targets: torch.Tensor,
             delta: float = 0.1):
    """Summed Huber loss of the codes of positive anchors; ``delta`` ≈ the typical size of a code."""
    positive = cls_targets >= 0
    return F.huber_loss(box_regression[positive].float(), box_targets[positive].float(), delta=delta,
                        reduction="sum")


def detection_loss(cls_logits: torch.Tensor, box_regression: torch.Tensor, cls_targets: torch.Tensor,
                   box_targets: torch.Tensor, alpha: float = 0.25, gamma: float = 1.5, delta: float = 0.1,
                   box_loss_weight: float = 50.0) -> dict[str, torch.Tensor]:
    """``loss = focal / (P + 1) + box_loss_weight · huber / (4 (P + 1))`` with P positive anchors in the batch.

    Shapes: ``cls_logits`` (B, N, C), ``box_regression`` (B, N, 4), ``cls_targets`` (B, N), ``box_targets``
    (B, N, 4), N anchors in ``Anchors`` order. Returns ``loss``, ``cls_loss`` and ``box_loss`` (unweighted).
    """
    normaliser = (cls_targets >= 0).sum().float() + 1.0
    cls = focal_loss(cls_logits, cls_targets, alpha, gamma) / normaliser
    box = box_loss(box_regression, box_targets, cls_targets, delta) / (4.0 * normaliser)
    return {"loss": cls + box_loss_weight * box, "cls_loss": cls, "box_loss": box}
