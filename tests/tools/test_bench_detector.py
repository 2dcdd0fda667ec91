"""`bench efficientdet_dX --vs effdet`: predict (network, decoding, NMS) against effdet on the same weights, and the
shortcuts of our predict path (candidate bound, early-stopping NMS) giving what the plain computation gives."""
import json

import pytest
import torch
from torchvision.ops import batched_nms

import backbonekit as bk
from backbonekit.cli import main
from backbonekit.detection import postprocess as pp
from backbonekit.models.anchors import MAX_LOG_RATIO, decode_boxes, encode_boxes, generate_anchors
from backbonekit.detection.postprocess import postprocess
from backbonekit.errors import ConfigError
from backbonekit.nn.fuse import fuse_batchnorm
from backbonekit.tools.bench import (_effdet_detections, calibrate_batchnorm, calibration_images,
                                     detection_difference, detector_pair, run_bench)


@pytest.fixture
def one_thread():
    # Hundreds of small ops per image: on the shared 2-core machine a second thread mostly waits.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_detector_bench_matches_effdet_detections(one_thread):
    pytest.importorskip("effdet")
    result = run_bench("efficientdet_d0", image_size=128, rounds=1, iters=1, warmup=1)
    assert (result.peer, result.mode, result.batch_size, result.image_size) == ("effdet", "predict", 1, 128)
    assert result.ours_images_per_s > 0 and result.peer_images_per_s > 0
    assert result.max_abs_diff == 0.0  # effdet's weights, unfused: the same 100 detections to the last bit


def test_cli_detector_bench_fused_channels_last_json(one_thread, capsys):
    pytest.importorskip("effdet")
    assert main(["bench", "efficientdet_d0", "--vs", "effdet", "--image-size", "128", "--rounds", "1",
                 "--iters", "1", "--fuse", "--channels-last", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["mode"] == "predict" and out["fused"] and out["channels_last"] and out["ratio"] > 0
    assert out["max_abs_diff"] < 1e-2  # folded BatchNorm: rounding only, and still the same detections


def test_calibrated_random_weights_give_non_trivial_detections(one_thread):
    pytest.importorskip("effdet")
    x = torch.randn(1, 3, 128, 128)
    ours, peer = detector_pair("efficientdet_d0", "effdet", x)
    with torch.inference_mode():
        detections = _effdet_detections(peer(x))[0]
        codes = torch.cat([b.flatten() for b in ours(x)[1]])
    # Neither saturated (all scores 1 would make the comparison a matter of tie order) nor constant, and box codes
    # where effdet's unbounded exp() and our bounded one agree.
    assert len(detections["scores"]) == 100
    assert 1e-3 < detections["scores"].min() and detections["scores"].max() < 0.99
    assert len(detections["labels"].unique()) >= 10 and detections["boxes"].std() > 1
    assert codes.abs().max() < MAX_LOG_RATIO and codes.std() > 0.05


def test_fused_detector_keeps_no_batchnorm_and_its_outputs():
    model = bk.create_model("efficientdet_d0", num_classes=3)
    x = torch.randn(2, 3, 128, 128)
    calibrate_batchnorm(model, calibration_images(x))  # also the per-level head BNs: each level gets its own conv
    with torch.inference_mode():
        expected = model(x)
        fused = fuse_batchnorm(model)
        got = fused(x)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fused.modules())
    for e, o in zip(expected[0] + expected[1], got[0] + got[1], strict=True):
        assert (e[0] - e[1]).abs().max() > 1e-2
        torch.testing.assert_close(o, e, atol=1e-4, rtol=1e-4)


def test_detection_difference_is_order_free_and_catches_changes():
    g = torch.Generator().manual_seed(0)
    dets = [{"boxes": torch.rand(5, 4, generator=g) * 100, "scores": torch.rand(5, generator=g),
             "labels": torch.tensor([0, 1, 2, 3, 4])}]
    shuffled = [{k: v[torch.tensor([3, 1, 4, 0, 2])] for k, v in dets[0].items()}]
    assert detection_difference(dets, shuffled) == 0.0
    moved = [{**dets[0], "boxes": dets[0]["boxes"] + torch.tensor([0.0, 0.0, 0.0, 0.5])}]
    assert detection_difference(dets, moved) == pytest.approx(0.5)
    relabelled = [{**dets[0], "labels": torch.tensor([0, 1, 2, 3, 0])}]
    assert detection_difference(dets, relabelled) == float("inf")
    assert detection_difference(dets, [{k: v[:4] for k, v in dets[0].items()}]) == float("inf")


def test_detector_bench_bad_options():
    with pytest.raises(ConfigError, match="predict mode"):
        run_bench("efficientdet_d0", train=True)
    with pytest.raises(ConfigError, match="--vs for a detector"):
        run_bench("efficientdet_d0", vs="timm", image_size=128)


def plain_postprocess(logits, codes, anchors, max_candidates, max_detections, iou_threshold=0.5):
    """The definition: one top-k over all N·C logits, NMS over all candidates, the first ``max_detections``."""
    out = []
    for lg, cd in zip(logits, codes):
        top, index = lg.reshape(-1).topk(min(max_candidates, lg.numel()))
        anchor, labels = index // lg.shape[-1], index % lg.shape[-1]
        boxes, scores = decode_boxes(cd[anchor].float(), anchors[anchor]), top.float().sigmoid()
        keep = batched_nms(boxes, scores, labels, iou_threshold)[:max_detections]
        out.append({"boxes": boxes[keep], "scores": scores[keep], "labels": labels[keep]})
    return out


def level_maps(rows, sizes, per_cell):
    """(B, N, W) rows in anchor order → per-level heads' maps (B, A·W, h, w), the inverse of flattening."""
    maps, start = [], 0
    for h, w in sizes:
        n = h * w * per_cell
        level = rows[:, start:start + n].reshape(rows.shape[0], h, w, -1).permute(0, 3, 1, 2)
        maps.append(level.contiguous())
        start += n
    return maps


@pytest.mark.parametrize("max_candidates,max_detections,objects",
                         [(300, 300, None), (5000, 100, None), (2000, 20, 7)])
def test_fast_postprocess_equals_the_plain_computation(max_candidates, max_detections, objects, monkeypatch):
    # 300: the bound from per-anchor maxima prunes, and all candidates that survive NMS are compared; 5000 > N·C:
    # no bound. objects 7: every anchor predicts one of
    # 7 boxes, so NMS keeps at most 21, and class 0 leads the candidates: the first window (80 boxes) keeps too few
    # and the early-stopping NMS must widen it.
    g = torch.Generator().manual_seed(0)
    size, classes = (64, 96), 3
    anchors = generate_anchors(size)
    n = len(anchors)
    logits = torch.randn(2, n, classes, generator=g, dtype=torch.float64)  # float64: no exact ties
    codes = torch.randn(2, n, 4, generator=g)
    if objects:
        corners = torch.rand(objects, 2, generator=g) * 40
        boxes = torch.cat([corners, corners + 20], 1)[torch.randint(objects, (n,), generator=g)]
        codes = encode_boxes(boxes, anchors).expand(2, n, 4) + torch.randn(2, n, 4, generator=g) * 1e-3
        logits[..., 0] += 3
    expected = plain_postprocess(logits, codes, anchors, max_candidates, max_detections)
    windows = []
    monkeypatch.setattr(pp, "batched_nms", lambda boxes, *args: windows.append(len(boxes)) or
                        batched_nms(boxes, *args))
    sizes = [((size[0] + 2 ** lvl - 1) // 2 ** lvl, (size[1] + 2 ** lvl - 1) // 2 ** lvl) for lvl in range(3, 8)]
    cls_maps, box_maps = level_maps(logits, sizes, 9), level_maps(codes, sizes, 9)
    cl = [[m.contiguous(memory_format=torch.channels_last) for m in maps] for maps in (cls_maps, box_maps)]
    for outputs in ((logits, codes), (cls_maps, box_maps), cl):  # rows, per-level maps, channels-last maps
        got = postprocess(*outputs, anchors, max_candidates=max_candidates, max_detections=max_detections)
        for e, o in zip(expected, got, strict=True):
            assert len(e["boxes"]) >= 20
            for key in ("boxes", "scores", "labels"):
                assert torch.equal(e[key], o[key]), key
    if objects:
        assert max(windows) > 4 * max_detections
