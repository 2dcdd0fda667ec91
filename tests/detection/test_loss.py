import math
import warnings

import pytest
import torch

from backbonekit.detection.matching import build_targets
from backbonekit.models.anchors import Anchors, flatten_level_outputs
from backbonekit.detection.loss import detection_loss

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from effdet.anchors import AnchorLabeler
    from effdet.anchors import Anchors as EffdetAnchors
    from effdet.loss import loss_fn


def _focal(p, positive, alpha=0.25, gamma=1.5):
    """Focal loss of one sigmoid output by the textbook formula."""
    if positive:
        return -alpha * (1 - p) ** gamma * math.log(p)
    return -(1 - alpha) * p ** gamma * math.log(1 - p)


def _huber(x, delta=0.1):
    return 0.5 * x * x if abs(x) <= delta else delta * (abs(x) - 0.5 * delta)


def test_known_values_by_hand():
    # 3 anchors, 2 classes: anchor 0 positive (class 1), anchor 1 background, anchor 2 ignored.
    logits = torch.tensor([[[0.0, 2.0], [-1.0, 1.0], [5.0, 5.0]]])
    codes = torch.tensor([[[0.05, -0.3, 0.0, 0.2], [9.0, 9, 9, 9], [9.0, 9, 9, 9]]])
    cls_targets = torch.tensor([[1, -1, -2]])
    box_targets = torch.tensor([[[0.0, 0.0, 0.0, 0.0], [0.0] * 4, [0.0] * 4]])
    out = detection_loss(logits, codes, cls_targets, box_targets)
    s = lambda x: 1 / (1 + math.exp(-x))  # noqa: E731
    focal = _focal(s(0.0), False) + _focal(s(2.0), True) + _focal(s(-1.0), False) + _focal(s(1.0), False)
    huber = _huber(0.05) + _huber(-0.3) + _huber(0.0) + _huber(0.2)
    assert out["cls_loss"].item() == pytest.approx(focal / 2, rel=1e-5)  # 1 positive + 1
    assert out["box_loss"].item() == pytest.approx(huber / (4 * 2), rel=1e-5)
    assert out["loss"].item() == pytest.approx(focal / 2 + 50 * huber / 8, rel=1e-5)


def test_no_objects_is_finite_and_only_background():
    logits = torch.full((2, 5, 3), -4.0)
    out = detection_loss(logits, torch.zeros(2, 5, 4), torch.full((2, 5), -1), torch.zeros(2, 5, 4))
    p = 1 / (1 + math.exp(4.0))
    assert out["cls_loss"].item() == pytest.approx(30 * _focal(p, False), rel=1e-5)
    assert out["box_loss"].item() == 0.0


def test_gradients_skip_ignored_anchors():
    logits = torch.zeros(1, 3, 2, requires_grad=True)
    codes = torch.zeros(1, 3, 4, requires_grad=True)
    out = detection_loss(logits, codes, torch.tensor([[0, -1, -2]]), torch.ones(1, 3, 4))
    out["loss"].backward()
    assert logits.grad[0, 2].abs().sum() == 0 and codes.grad[0, 1:].abs().sum() == 0
    assert logits.grad[0, :2].abs().sum() > 0 and codes.grad[0, 0].abs().sum() > 0


def test_equals_effdets_detection_loss():
    torch.manual_seed(0)
    size, num_classes = (128, 256), 3
    anchors = Anchors(size)
    labeler = AnchorLabeler(EffdetAnchors(3, 7, 3, [(1.0, 1.0), (1.4, 0.7), (0.7, 1.4)], 4.0, list(size)),
                            num_classes, match_threshold=0.5)
    images = []
    for n in (6, 3):
        xy = torch.rand(n, 2) * torch.tensor([200.0, 100.0])
        images.append((torch.cat([xy, xy + torch.rand(n, 2) * 60 + 5], 1), torch.randint(0, num_classes, (n,))))
    cls_out = [torch.randn(2, 9 * num_classes, h, w) for h, w in anchors.level_sizes]
    box_out = [torch.randn(2, 9 * 4, h, w) * 0.1 for h, w in anchors.level_sizes]
    # effdet: yxyx boxes, 1-based labels, per-level targets.
    labelled = [labeler.label_anchors(b[:, [1, 0, 3, 2]], l + 1) for b, l in images]
    cls_t = [torch.stack([x[0][level] for x in labelled]) for level in range(5)]
    box_t = [torch.stack([x[1][level] for x in labelled]) for level in range(5)]
    total, cls, box = loss_fn(cls_out, box_out, cls_t, box_t, torch.stack([x[2] for x in labelled]),
                              num_classes=num_classes, alpha=0.25, gamma=1.5, delta=0.1, box_loss_weight=50.0)
    ours_t = [build_targets(anchors.boxes, b, l) for b, l in images]
    flat_cls, flat_box = flatten_level_outputs(cls_out, box_out, num_classes)
    ours = detection_loss(flat_cls, flat_box, torch.stack([t[0] for t in ours_t]), torch.stack([t[1] for t in ours_t]))
    assert ours["cls_loss"].item() == pytest.approx(cls.item(), rel=1e-5)
    assert ours["box_loss"].item() == pytest.approx(box.item(), rel=1e-5)
    assert ours["loss"].item() == pytest.approx(total.item(), rel=1e-5)
