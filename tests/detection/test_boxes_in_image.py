"""Every box a detector hands out lies inside its image with a positive area: ``predict detect``'s PNGs, KITTI result
files and COCO JSON, and what ``eval detect`` scores, in every runtime, for wide and tall images.

The network sees the image letterboxed (resized into its input, padded right or bottom), and an undertrained detector
scores every anchor near the prior, so at a low threshold its boxes lie all over the input, padding included: each
test first checks that the raw boxes do spill into the padding (else it would prove nothing), then that none of the
boxes written or scored leaves the original image.
"""
import json

import pytest
import torch

from backbonekit.detection import evaluate, predict
from backbonekit.detection.coco import CocoDetection
from backbonekit.detection.kitti import kitti_type_name, read_kitti_file
from backbonekit.detection.transforms import content_size, eval_transforms
from backbonekit.training.inference import load_for_inference
from backbonekit.training.task_spec import get_task
from detection.writers import write_coco

# (H, W): a wide image (the letterbox pads its bottom) and a tall one (padded on the right).
SIZES = {"wide": (128, 384), "tall": (384, 128)}
RUNTIMES = ["torch", "onnxruntime", "openvino"]
CLASSES = ["rectangle", "circle", "triangle"]  # tiny_runs' detector's


@pytest.fixture(scope="module")
def wide_and_tall(tmp_path_factory):
    """A COCO file of one wide and one tall image (the tiny detector's classes), one object each."""
    root = tmp_path_factory.mktemp("wide_and_tall")
    images = [{"id": i + 1, "file_name": f"{name}.png", "height": h, "width": w}
              for i, (name, (h, w)) in enumerate(SIZES.items())]
    annotations = [{"id": img["id"], "image_id": img["id"], "category_id": 1, "bbox": [4, 4, 40, 30], "area": 1200,
                    "iscrowd": 0} for img in images]
    categories = [{"id": i + 1, "name": n} for i, n in enumerate(CLASSES)]
    return write_coco(root, {"images": images, "annotations": annotations, "categories": categories})


def _need(runtime: str) -> None:
    if runtime != "torch":
        pytest.importorskip("onnxscript")
        pytest.importorskip(runtime)


def assert_inside(boxes, size, where: str) -> None:
    """xyxy ``boxes`` inside an (H, W) image, each with a positive width and height."""
    boxes = torch.as_tensor(boxes, dtype=torch.float32).reshape(-1, 4)
    h, w = size
    outside = ((boxes[:, 0] < 0) | (boxes[:, 1] < 0) | (boxes[:, 2] > w) | (boxes[:, 3] > h)
               | (boxes[:, 2] <= boxes[:, 0]) | (boxes[:, 3] <= boxes[:, 1]))
    assert not outside.any(), f"{where}: {boxes[outside][:3].tolist()} leave the {w}×{h} image or have no area"


def spill(boxes: torch.Tensor, letterbox: torch.Tensor) -> bool:
    """Whether any box on the letterboxed input reaches into its padding."""
    h, w = content_size(letterbox)
    return bool(((boxes[:, 2] > w + 1) | (boxes[:, 3] > h + 1)).any())


def _recording(monkeypatch, module, name: str, record: list, keep=lambda args, result: args):
    real = getattr(module, name)

    def wrapper(*args, **kwargs):
        result = real(*args, **kwargs)
        record.append(keep(args, result))
        return result

    monkeypatch.setattr(module, name, wrapper)


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_predict_writes_only_boxes_inside_the_image(runtime, tiny_runs, wide_and_tall, tmp_path, monkeypatch):
    _need(runtime)
    raw, drawn = [], []
    _recording(monkeypatch, predict, "unletterbox_detections", raw, lambda args, _: (args[0]["boxes"].cpu(), args[1]))
    _recording(monkeypatch, predict, "draw_detections", drawn,
               lambda args, _: (tuple(args[0].shape[-2:]), args[1]["boxes"].clone()))
    folder = wide_and_tall.parent / "images"
    summary = predict.predict_images(tiny_runs["detect"] / "best.ckpt", [str(folder)], tmp_path / "out",
                                     score_threshold=0.001, runtime=runtime, annotations=[wide_and_tall])
    assert summary["images"] == 2 and len(raw) == 2
    assert all(spill(boxes, letterbox) for boxes, letterbox in raw)  # the network's boxes do reach the padding
    ids = {img["id"]: (img["file_name"][:-4], (img["height"], img["width"]))
           for img in json.loads(wide_and_tall.read_text())["images"]}
    coco = json.loads((tmp_path / "out" / "predictions.json").read_text())
    for image_id, (stem, size) in ids.items():
        in_coco = [[x, y, x + w, y + h] for x, y, w, h in (r["bbox"] for r in coco if r["image_id"] == image_id)]
        kitti = read_kitti_file(tmp_path / "out" / "kitti" / f"{stem}.txt", with_score=True,
                                types=[kitti_type_name(n) for n in CLASSES])
        assert_inside(in_coco, size, f"{runtime} COCO {stem}")
        assert_inside([o.box for o in kitti], size, f"{runtime} KITTI {stem}")
        assert 0 < len(kitti) == len(in_coco)
    for size, boxes in drawn:
        assert_inside(boxes, size, f"{runtime} PNG")
    assert sorted(size for size, _ in drawn) == sorted(SIZES.values())


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_eval_scores_only_boxes_inside_the_image(runtime, tiny_runs, wide_and_tall, tmp_path, monkeypatch):
    _need(runtime)
    task, _ = load_for_inference(tiny_runs["detect"] / "best.ckpt", get_task("detect"), runtime=runtime)
    dataset = CocoDetection(wide_and_tall, split="all", transforms=eval_transforms(tuple(task.cfg.image_size)))
    raw, scored = [], []
    _recording(monkeypatch, evaluate, "unletterbox_detections", raw, lambda args, _: (args[0]["boxes"].cpu(), args[1]))
    _recording(monkeypatch, evaluate, "evaluate_coco", scored, lambda args, _: args[1])
    evaluate.evaluate_on(task, dataset, tmp_path, draw=0)
    assert len(raw) == 2 and all(spill(boxes, letterbox) for boxes, letterbox in raw)
    sizes = {img["id"]: (img["height"], img["width"]) for img in dataset.images}
    results = scored[0]
    assert results == json.loads((tmp_path / "predictions.json").read_text())  # what is scored is what is written
    for image_id, size in sizes.items():
        boxes = [[x, y, x + w, y + h] for x, y, w, h in (r["bbox"] for r in results if r["image_id"] == image_id)]
        assert boxes
        assert_inside(boxes, size, f"{runtime} eval image {image_id}")


def test_validation_panels_show_the_image_without_its_padding(tiny_runs, wide_and_tall, monkeypatch):
    """``val_predictions.png``: each panel is the letterboxed input cut to the image inside it, boxes inside."""
    task, _ = load_for_inference(tiny_runs["detect"] / "best.ckpt", get_task("detect"))
    dataset = CocoDetection(wide_and_tall, split="all", transforms=eval_transforms(tuple(task.cfg.image_size)))
    panels = []
    _recording(monkeypatch, evaluate, "draw_detections", panels,
               lambda args, _: (tuple(args[0].shape[-2:]), args[1]["boxes"].clone()))
    evaluate.run_detector(task, dataset, keep_images=2)
    expected = [content_size(dataset[i][1]["letterbox"]) for i in range(2)]
    assert [size for size, _ in panels] == expected
    assert all(size != tuple(task.cfg.image_size) for size in expected)  # padding there was, and it is cut off
    for size, boxes in panels:
        assert len(boxes)
        assert_inside(boxes, size, "val_predictions panel")


@pytest.mark.filterwarnings("ignore:You are trying to `self.log\\(\\)`")  # the step runs without a Trainer
def test_validation_scores_only_boxes_inside_the_image_in_the_letterbox(monkeypatch):
    """val/map (which picks best.ckpt) scores the boxes cut to the image inside the letterbox, as eval does."""
    from torchvision import tv_tensors

    from backbonekit.detection.predict import empty_target
    from backbonekit.detection.task import DetectionTask
    from backbonekit.detection.transforms import collate

    torch.manual_seed(0)
    task = DetectionTask(num_classes=3, class_names=CLASSES, image_size=(64, 64)).eval()
    letterbox = eval_transforms((64, 64))
    samples = []
    for size in SIZES.values():
        image = tv_tensors.Image(torch.randint(0, 256, (3, *size), dtype=torch.uint8))
        samples.append(letterbox(image, empty_target(image)))
    images, targets = collate(samples)
    scored = []
    monkeypatch.setattr(task.val_map, "update", lambda preds, target: scored.extend(preds))
    with torch.no_grad():
        raw = task.detect(images)
        task.validation_step((images, targets), 0)
    assert all(spill(det["boxes"], t["letterbox"]) for det, t in zip(raw, targets))
    for det, target in zip(scored, targets):
        assert len(det["boxes"]) == len(det["scores"]) == len(det["labels"]) > 0
        assert_inside(det["boxes"], content_size(target["letterbox"]), "validation")
