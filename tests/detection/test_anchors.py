import math
import warnings

import pytest
import torch

from backbonekit.detection.matching import BACKGROUND, IGNORE, build_batch_targets, build_targets, match_anchors
from backbonekit.models.anchors import Anchors, decode_boxes, encode_boxes, flatten_level_outputs, generate_anchors

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # effdet scripts with the deprecated torch.jit
    from effdet import get_efficientdet_config
    from effdet.anchors import AnchorLabeler
    from effdet.anchors import Anchors as EffdetAnchors


@pytest.mark.parametrize("size", [(512, 512), (384, 1280), (375, 1242), (100, 200)])
def test_anchors_equal_effdets(size):
    config = get_efficientdet_config("tf_efficientdet_d0")
    config.image_size = tuple(size)
    theirs = EffdetAnchors.from_config(config).boxes[:, [1, 0, 3, 2]]  # yxyx → xyxy
    ours = generate_anchors(size)
    assert torch.equal(ours, theirs)


def test_anchor_layout_by_hand():
    anchors = Anchors((256, 128))
    assert anchors.level_sizes == [(32, 16), (16, 8), (8, 4), (4, 2), (2, 1)]
    assert anchors.num_per_level == [32 * 16 * 9, 16 * 8 * 9, 8 * 4 * 9, 4 * 2 * 9, 2 * 9]
    first = anchors.boxes[:9]  # P3, cell (0, 0): centre (4, 4), side 4 × 8 = 32 at octave 0
    assert first[0].tolist() == [-12, -12, 20, 20]
    assert first[1].tolist() == pytest.approx([4 - 16 * 1.4, 4 - 16 * 0.7, 4 + 16 * 1.4, 4 + 16 * 0.7])
    assert first[3].tolist() == pytest.approx([4 - 16 * 2 ** (1 / 3)] * 2 + [4 + 16 * 2 ** (1 / 3)] * 2)
    assert anchors.boxes[9].tolist() == [-4, -12, 28, 20]  # next cell to the right: centre x 12
    p7 = anchors.boxes[-18]  # P7, top cell: stride 128, side 512, centre (64, 64)
    assert p7.tolist() == [64 - 256, 64 - 256, 64 + 256, 64 + 256]


def test_flatten_follows_anchor_order():
    anchors = Anchors((64, 64))
    cls = [torch.arange(9 * 2 * h * w, dtype=torch.float32).reshape(1, 9 * 2, h, w) for h, w in anchors.level_sizes]
    box = [torch.zeros(1, 36, h, w) for h, w in anchors.level_sizes]
    flat_cls, flat_box = flatten_level_outputs(cls, box, num_classes=2)
    assert flat_cls.shape == (1, len(anchors), 2) and flat_box.shape == (1, len(anchors), 4)
    h, w = anchors.level_sizes[0]
    # Row 9·(1·w + 1) + 4 is anchor 4 of cell (1, 1) on P3: channel 4·2 + class.
    row = 9 * (w + 1) + 4
    assert flat_cls[0, row].tolist() == [cls[0][0, 8, 1, 1].item(), cls[0][0, 9, 1, 1].item()]


def test_encode_decode_round_trip_and_known_code():
    anchors = torch.tensor([[0.0, 0.0, 10.0, 20.0]])
    box = torch.tensor([[5.0, 0.0, 15.0, 40.0]])
    code = encode_boxes(box, anchors)
    # (ty, tx, th, tw): centre moved 10/20 down, 5/10 right; height ×2, width ×1.
    assert code[0].tolist() == pytest.approx([0.5, 0.5, math.log(2), 0.0], abs=1e-6)
    assert torch.allclose(decode_boxes(code, anchors), box, atol=1e-4)
    boxes = torch.rand(50, 2) * 100
    boxes = torch.cat([boxes, boxes + torch.rand(50, 2) * 50 + 1], 1)
    anchors = generate_anchors((128, 128))[:50]
    assert torch.allclose(decode_boxes(encode_boxes(boxes, anchors), anchors), boxes, atol=1e-3)


def test_matching_thresholds_by_hand():
    anchors = torch.tensor([[0, 0, 10, 10],   # IoU 1 with box 0
                            [0, 0, 10, 20],   # IoU 0.5 with box 0: positive (≥)
                            [0, 0, 10, 22],   # IoU 10/22 = 0.4545 with box 0
                            [0, 0, 10, 30],   # IoU 1/3
                            [100, 100, 110, 110]], dtype=torch.float32)
    gt = torch.tensor([[0, 0, 10, 10]], dtype=torch.float32)
    assert match_anchors(anchors, gt).tolist() == [0, 0, BACKGROUND, BACKGROUND, BACKGROUND]
    # RetinaNet's band: between 0.4 and 0.5 is ignored.
    assert match_anchors(anchors, gt, bg_iou=0.4).tolist() == [0, 0, IGNORE, BACKGROUND, BACKGROUND]


def test_every_box_is_forced_to_its_best_anchor():
    anchors = torch.tensor([[0, 0, 10, 10], [0, 0, 30, 30], [50, 50, 60, 60]], dtype=torch.float32)
    gt = torch.tensor([[0, 0, 20, 20], [52, 52, 54, 54]], dtype=torch.float32)  # best IoUs 4/9 and 0.04
    assert match_anchors(anchors, gt).tolist() == [BACKGROUND, 0, 1]
    # Two boxes with the same best anchor: the one overlapping it more keeps it.
    gt = torch.tensor([[0, 0, 3, 3], [0, 0, 4, 4]], dtype=torch.float32)
    assert match_anchors(anchors[:1], gt).tolist() == [1]


def test_anchors_in_ignore_regions_are_not_background():
    anchors = torch.tensor([[0, 0, 10, 10], [5, 0, 15, 10], [8, 0, 18, 10], [30, 30, 40, 40]], dtype=torch.float32)
    dontcare = torch.tensor([[0, 0, 10, 10]], dtype=torch.float32)
    gt = torch.tensor([[30, 30, 40, 40]], dtype=torch.float32)
    # Covered 100%, 50%, 20% of the anchor's area; the positive anchor stays positive.
    assert match_anchors(anchors, gt, dontcare).tolist() == [IGNORE, IGNORE, BACKGROUND, 0]
    assert match_anchors(anchors, gt, dontcare, ignore_ioa=0.6).tolist() == [IGNORE, BACKGROUND, BACKGROUND, 0]


def test_targets_equal_effdets_labeler():
    torch.manual_seed(0)
    size = (128, 256)
    anchors = generate_anchors(size)
    labeler = AnchorLabeler(EffdetAnchors(3, 7, 3, [(1.0, 1.0), (1.4, 0.7), (0.7, 1.4)], 4.0, list(size)),
                            num_classes=3, match_threshold=0.5)
    xy = torch.rand(6, 2) * torch.tensor([200.0, 100.0])
    gt = torch.cat([xy, xy + torch.rand(6, 2) * 60 + 5], 1)
    labels = torch.randint(0, 3, (6,))
    cls_levels, box_levels, num_positives = labeler.label_anchors(gt[:, [1, 0, 3, 2]], labels + 1)  # yxyx, 1-based
    cls, box = build_targets(anchors, gt, labels)
    assert torch.equal(cls, torch.cat([c.reshape(-1) for c in cls_levels]))
    assert torch.allclose(box, torch.cat([b.reshape(-1, 4) for b in box_levels]), atol=1e-6)
    assert (cls >= 0).sum() == num_positives


def test_batch_targets_and_empty_images():
    anchors = generate_anchors((64, 64))
    targets = [{"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.long)},
               {"boxes": torch.tensor([[10.0, 10, 40, 40], [5, 5, 5, 9]]), "labels": torch.tensor([1, 0]),
                "ignore_boxes": torch.zeros(0, 4)}]
    cls, box = build_batch_targets(anchors, targets)
    assert cls.shape == (2, len(anchors)) and box.shape == (2, len(anchors), 4)
    assert (cls[0] == BACKGROUND).all() and (box[0] == 0).all()
    assert set(cls[1].unique().tolist()) == {BACKGROUND, 1}  # the empty box was dropped, not forced anywhere
