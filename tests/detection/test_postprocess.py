import torch

from backbonekit.models.anchors import encode_boxes, generate_anchors
from backbonekit.detection.postprocess import postprocess


def test_decodes_suppresses_and_keeps_the_best():
    anchors = generate_anchors((64, 64))
    n = len(anchors)
    logits = torch.full((1, n, 2), -10.0)
    codes = torch.zeros(1, n, 4)
    target = torch.tensor([[10.0, 12.0, 30.0, 40.0]])
    # Three anchors predict the same box: two of class 0 (NMS keeps the better), one of class 1 (kept: per class).
    for a, (cls, logit) in zip((0, 5, 9), [(0, 3.0), (0, 2.0), (1, 1.0)]):
        logits[0, a, cls] = logit
        codes[0, a] = encode_boxes(target, anchors[a:a + 1])[0]
    out = postprocess(logits, codes, anchors, image_size=(64, 64), score_threshold=0.05)[0]
    assert out["labels"].tolist() == [0, 1]
    assert torch.allclose(out["scores"], torch.sigmoid(torch.tensor([3.0, 1.0])))
    assert torch.allclose(out["boxes"], target.expand(2, 4), atol=1e-3)


def test_limits_and_clipping():
    anchors = generate_anchors((64, 64))
    logits = torch.randn(2, len(anchors), 3)
    codes = torch.randn(2, len(anchors), 4)
    results = postprocess(logits, codes, anchors, image_size=(64, 64), max_candidates=300, max_detections=20)
    assert len(results) == 2
    for r in results:
        assert len(r["boxes"]) <= 20 and (r["scores"][:-1] >= r["scores"][1:]).all()
        assert (r["boxes"] >= 0).all() and (r["boxes"] <= 64).all()
    assert postprocess(logits, codes, anchors, score_threshold=0.9999)[0]["boxes"].shape == (0, 4)


def test_a_box_with_no_area_left_after_clipping_is_dropped():
    """A box decoded wholly outside the input has nothing left once clipped: no detection (torchvision's
    ``remove_small_boxes`` after ``clip_boxes_to_image``), whatever its score."""
    anchors = generate_anchors((64, 96))
    logits = torch.full((1, len(anchors), 1), -10.0)
    codes = torch.zeros(1, len(anchors), 4)
    outside = torch.tensor([[100.0, 10.0, 130.0, 40.0], [10.0, 70.0, 40.0, 90.0]])  # right of, below the input
    inside = torch.tensor([[10.0, 10.0, 40.0, 40.0], [80.0, 50.0, 120.0, 80.0]])  # the second crosses two edges
    for i, (a, box) in enumerate(zip((0, 7, 11, 20), torch.cat([outside, inside]))):
        logits[0, a, 0] = 5.0 - i  # the outside ones score best
        codes[0, a] = encode_boxes(box[None], anchors[a:a + 1])[0]
    out = postprocess(logits, codes, anchors, image_size=(64, 96), score_threshold=0.5)[0]
    assert torch.allclose(out["boxes"], torch.tensor([[10.0, 10.0, 40.0, 40.0], [80.0, 50.0, 96.0, 64.0]]), atol=1e-3)
