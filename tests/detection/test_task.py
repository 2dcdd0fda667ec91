"""DetectionTask pieces: ignore regions in the mAP, configuration knobs that reach the model."""
import torch
from torchmetrics.detection import MeanAveragePrecision
from torchvision import tv_tensors
from torchvision.ops import StochasticDepth

from backbonekit.detection.task import DetectionTask, metric_target


def _target(boxes, labels, ignore):
    canvas = (100, 100)
    return {"boxes": tv_tensors.BoundingBoxes(torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4), format="XYXY",
                                              canvas_size=canvas),
            "labels": torch.tensor(labels), "ignore_boxes": tv_tensors.BoundingBoxes(
                torch.tensor(ignore, dtype=torch.float32).reshape(-1, 4), format="XYXY", canvas_size=canvas)}


def _map50(detections, target, num_classes=2):
    metric = MeanAveragePrecision(box_format="xyxy", backend="pycocotools")
    metric.update([detections], [metric_target(target, num_classes)])
    return float(metric.compute()["map_50"])


def test_a_detection_inside_an_ignore_region_neither_scores_nor_costs():
    target = _target([[10, 10, 30, 30]], [0], [[60, 60, 90, 90]])
    hit = {"boxes": torch.tensor([[10.0, 10, 30, 30]]), "scores": torch.tensor([0.5]), "labels": torch.tensor([0])}
    # A more confident detection of either class in the ignore region: without the crowd boxes it would be a false
    # positive ranked first, halving AP.
    extra = {"boxes": torch.tensor([[10.0, 10, 30, 30], [65, 65, 85, 85]]), "scores": torch.tensor([0.5, 0.9])}
    for label in (0, 1):
        assert _map50({**extra, "labels": torch.tensor([0, label])}, target) == 1.0
    outside = {**extra, "boxes": torch.tensor([[10.0, 10, 30, 30], [35, 35, 55, 55]]), "labels": torch.tensor([0, 0])}
    assert _map50(outside, target) < 0.6
    assert _map50(hit, target) == 1.0


def test_metric_target_makes_one_crowd_box_per_class_and_region():
    out = metric_target(_target([[1, 1, 5, 5]], [1], [[10, 10, 20, 20], [30, 30, 40, 40]]), num_classes=3)
    assert out["boxes"].shape == (7, 4) and out["iscrowd"].tolist() == [0] + [1] * 6
    assert sorted(out["labels"][1:].tolist()) == [0, 0, 1, 1, 2, 2]


def test_config_reaches_the_model():
    task = DetectionTask(num_classes=2, class_names=["a", "b"], image_size=(64, 64), drop_path_rate=0.0)
    assert not any(isinstance(m, StochasticDepth) for m in task.modules())
    assert {m.momentum for m in task.modules() if isinstance(m, torch.nn.BatchNorm2d)} == {0.1}
    default = DetectionTask(num_classes=2, class_names=["a", "b"], image_size=(64, 64), bn_momentum=None)
    assert any(isinstance(m, StochasticDepth) and m.p > 0 for m in default.modules())
    assert 0.01 in {m.momentum for m in default.modules() if isinstance(m, torch.nn.BatchNorm2d)}


def test_normalisation_is_the_backbones_own():
    """Regression: `train detect` normalised with ImageNet statistics whatever the backbone; EfficientNet-Lite0's
    ImageNet weights expect 0.5/0.5 (inputs in [-1, 1])."""
    from backbonekit.detection.task import DetectionTask

    lite = DetectionTask(num_classes=2, backbone="tf_efficientnet_lite0", image_size=(64, 64))
    assert lite.normalize.mean.flatten().tolist() == [0.5, 0.5, 0.5]
    assert lite.normalize.std.flatten().tolist() == [0.5, 0.5, 0.5]
    white = torch.full((1, 3, 64, 64), 255, dtype=torch.uint8)
    assert torch.equal(lite.normalize(white), torch.ones(1, 3, 64, 64))  # 255 → 1.0 → (1 - .5) / .5
    default = DetectionTask(num_classes=2, image_size=(64, 64))
    torch.testing.assert_close(default.normalize.mean.flatten(), torch.tensor([0.485, 0.456, 0.406]))
