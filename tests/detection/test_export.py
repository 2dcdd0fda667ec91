"""``backbonekit export`` of a detector: the ONNX graph (normalisation, EfficientDet, decoding, NMS) run in
onnxruntime gives ``DetectionTask.detect``'s boxes, scores and labels; bad input is one ``error:`` line.

One export (about 10 s) serves every test of the file. The detector is built here rather than trained with
``train detect``: after an epoch or two every anchor still scores near the 0.01 prior, many within float rounding
of each other, so rounding orders the candidates and decides NMS and an exact comparison would test nothing (the
CLI's check recognises such checkpoints: ``test_jitter_…``). The checkpoint has ``train detect``'s layout
(hyper_parameters + state_dict) and is read back by ``load_detector``.
"""
import argparse
import contextlib
import io
import json
import re

import numpy as np
import pytest
import torch

pytest.importorskip("onnxscript")
pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")

from backbonekit.cli import main  # noqa: E402
from backbonekit.detection.task import load as load_detector  # noqa: E402
from backbonekit.detection.export import DetectorForExport, run_onnx, unpad  # noqa: E402
from backbonekit.io.onnx_export import require  # noqa: E402
from backbonekit.detection.synth import synth_image  # noqa: E402
from backbonekit.detection.task import DetectionTask  # noqa: E402
from backbonekit.errors import BackbonekitError  # noqa: E402


pytestmark = pytest.mark.usefixtures("one_thread")


IMAGE_SIZE = (64, 96)  # not square: height and width must not be swapped anywhere (anchors, clipping)
CLASSES = ["rectangle", "circle", "triangle"]
# Pixels. Measured: 4e-5. Coordinates are computed at hundreds of pixels (P7 anchors are 512 px wide, more than the
# image) before clipping, where a float32 step is 3e-5 px; the margin is for other CPUs' kernels.
BOX_ATOL = 2e-4


def shape_images(n: int, start: int = 100) -> torch.Tensor:
    """Synthetic shape scenes (other indices than the CLI's own check uses)."""
    return torch.stack([torch.from_numpy(synth_image(1, start + i, IMAGE_SIZE, dont_care=False)[0]).permute(2, 0, 1)
                        for i in range(n)])


def tiny_detector() -> DetectionTask:
    """A D0 whose scores spread over (0, 1) and depend on the image.

    Fresh, the BatchNorm statistics do not fit the activations: the signal fades layer by layer, the output hardly
    depends on the image, and the class bias pins every score at 0.01. One forward pass in training mode with
    momentum 1 sets the statistics from real images; a floor under the variances keeps a channel that happened to be
    near-constant on those few images from exploding on others; and the class head, re-centred and scaled, gives
    logits spread over a few units, so scores neither tie at the prior nor saturate at 1.
    """
    with torch.random.fork_rng(), torch.no_grad():
        torch.manual_seed(0)  # the weights, and the stochastic depth of the training-mode pass
        task = DetectionTask(num_classes=len(CLASSES), class_names=CLASSES, image_size=IMAGE_SIZE)
        norms = [m for m in task.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
        for m in norms:
            m.momentum = 1.0
        task.train()(shape_images(4, start=0))
        for m in norms:
            m.running_var.clamp_(min=0.1)
        task.model.class_net.predict.pw.weight.mul_(8)
        task.model.class_net.predict.pw.bias.zero_()
    return task.eval()


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    task = tiny_detector()
    path = tmp_path_factory.mktemp("run") / "best.ckpt"
    torch.save({"hyper_parameters": dict(task.hparams), "state_dict": task.state_dict()}, path)
    return path


@pytest.fixture(scope="module")
def cli_export(checkpoint):
    """``backbonekit export --checkpoint best.ckpt``: its exit status and printout (the file lands beside it)."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        status = main(["export", "--checkpoint", str(checkpoint)])
    return status, out.getvalue(), checkpoint.with_suffix(".onnx")


def test_cli_writes_the_file_and_checks_it(cli_export):
    status, printed, onnx_path = cli_export
    assert status == 0, printed
    assert onnx_path.is_file() and not onnx_path.with_name("best.onnx.data").exists()  # one self-contained file
    assert f"wrote {onnx_path}" in printed and "NMS in the graph" in printed
    assert re.search(r"input\s+images\s+uint8\s+\[batch, 3, 64, 96\]", printed)
    for name, shape in [("num_detections", "[batch]"), ("boxes", "[batch, 100, 4]"), ("scores", "[batch, 100]"),
                        ("labels", "[batch, 100]")]:
        assert re.search(rf"output\s+{name}\s+\S+\s+{re.escape(shape)}", printed), name
    check = re.search(r"onnxruntime vs PyTorch on 3 synthetic images: detections (.*) \(PyTorch/ONNX\), "
                      r"max \|Δbox\| (\S+) px, max \|Δscore\| (\S+)$", printed, re.M)
    assert check, printed
    assert all(a == b for a, b in re.findall(r"(\d+)/(\d+)", check[1]))
    assert float(check[2]) < BOX_ATOL and float(check[3]) < 1e-4


def test_graph_holds_nms_and_a_dynamic_batch(cli_export):
    model = onnx.load(str(cli_export[2]))
    ops = {node.op_type for node in model.graph.node}
    assert {"NonMaxSuppression", "TopK", "Conv"} <= ops
    images = model.graph.input[0]
    assert images.name == "images" and images.type.tensor_type.elem_type == onnx.TensorProto.UINT8
    assert [d.dim_param or d.dim_value for d in images.type.tensor_type.shape.dim] == ["batch", 3, *IMAGE_SIZE]
    assert [o.name for o in model.graph.output] == ["num_detections", "boxes", "scores", "labels"]


def test_file_carries_class_names_input_size_and_normalisation(cli_export, checkpoint):
    props = {p.key: json.loads(p.value) for p in onnx.load(str(cli_export[2])).metadata_props}
    assert props["backbonekit_task"] == "detect" and props["class_names"] == CLASSES
    assert props["input_size"] == list(IMAGE_SIZE) and props["input"]["dtype"] == "uint8"
    mean = load_detector(checkpoint).normalize.mean.flatten().tolist()
    assert props["normalization"]["mean"] == pytest.approx(mean) and len(props["normalization"]["std"]) == 3
    assert "letterbox" in props["input"]["preprocessing"] and props["max_detections"] == 100


@pytest.mark.parametrize("batch", [1, 4])
def test_onnxruntime_gives_detects_boxes_scores_and_labels(cli_export, checkpoint, batch):
    task = load_detector(checkpoint)
    images = shape_images(batch)
    with torch.no_grad():
        expected = task.detect(images)  # the checkpoint's settings: score > 0.001, top 100, NMS at IoU 0.5
    outputs = run_onnx(cli_export[2], images)
    num, boxes, scores, labels = outputs
    assert boxes.shape == (batch, 100, 4) and num.dtype == np.int64 and labels.dtype == np.int64
    for want, got, n in zip(expected, unpad(outputs), num):
        assert n == len(want["scores"]) > 10  # enough survivors for the comparison to mean something
        assert np.array_equal(got["labels"], want["labels"].numpy())
        np.testing.assert_allclose(got["scores"], want["scores"].numpy(), rtol=0, atol=1e-4)
        np.testing.assert_allclose(got["boxes"], want["boxes"].numpy(), rtol=0, atol=BOX_ATOL)
    assert len(set(np.round(scores[0, :num[0]], 4))) > 10  # distinct scores: the order above was not luck
    assert (labels[num[:, None] <= np.arange(100)] == -1).all() and (scores[num[:, None] <= np.arange(100)] == 0).all()


@pytest.mark.parametrize("score_threshold, max_detections", [(0.99, 2), (0.95, 1000)])
def test_wrapper_is_detect_for_other_settings(checkpoint, score_threshold, max_detections):
    """The exported function in PyTorch, with other thresholds and slot counts than the checkpoint's: fewer
    detections than slots (padding) and more (the cap)."""
    task = load_detector(checkpoint)
    images = shape_images(3)
    wrapper = DetectorForExport(task, score_threshold=score_threshold, max_detections=max_detections).eval()
    task.cfg.max_detections = max_detections
    with torch.no_grad():
        num, boxes, scores, labels = wrapper(images)
        expected = task.detect(images, score_threshold=score_threshold)
    assert boxes.shape == (3, max_detections, 4)
    for i, want in enumerate(expected):
        n = len(want["scores"])
        assert num[i] == n > 0
        torch.testing.assert_close(boxes[i, :n], want["boxes"], rtol=0, atol=1e-5)
        torch.testing.assert_close(scores[i, :n], want["scores"], rtol=0, atol=1e-6)
        assert torch.equal(labels[i, :n], want["labels"])
        assert (labels[i, n:] == -1).all() and (scores[i, n:] == 0).all() and (boxes[i, n:] == 0).all()
    assert (num == max_detections).all() if max_detections == 2 else (num < max_detections).all()


def test_a_box_with_no_area_left_after_clipping_is_dropped_in_the_graph(checkpoint, monkeypatch):
    """Boxes decoded wholly outside the input are no detections in the exported function, as in ``detect``; one
    crossing the edges is clipped to the input."""
    from backbonekit.models.anchors import encode_boxes

    task = load_detector(checkpoint)
    wrapper = DetectorForExport(task, score_threshold=0.5).eval()
    anchors = task.anchors.boxes
    logits, codes = torch.full((1, len(anchors), 3), -10.0), torch.zeros(1, len(anchors), 4)
    boxes = torch.tensor([[100.0, 10, 130, 40], [10, 70, 40, 90], [10, 10, 40, 40], [80, 50, 120, 80]])
    for i, (a, box) in enumerate(zip((0, 7, 11, 20), boxes)):  # right of and below the 64×96 input, then inside
        logits[0, a, 0] = 5.0 - i
        codes[0, a] = encode_boxes(box[None], anchors[a:a + 1])[0]
    monkeypatch.setattr(wrapper.net, "forward_flat", lambda x: (logits, codes))
    with torch.no_grad():
        num, out, _, _ = wrapper(shape_images(1))
    assert num.tolist() == [2]
    torch.testing.assert_close(out[0, :2], torch.tensor([[10.0, 10, 40, 40], [80, 50, 96, 64]]), atol=1e-3, rtol=0)


def test_jitter_tells_tied_scores_from_distinct_ones(checkpoint, monkeypatch):
    """The check's yardstick: float noise moves a fresh detector's detections (every score the 0.01 prior), not
    those of one whose scores are apart. onnxruntime is replaced by the exported function run in PyTorch."""
    from backbonekit.detection import export

    def eager(task):
        wrapper = DetectorForExport(task).eval()
        return lambda path, images: [t.detach().numpy() for t in wrapper(images)]

    images = shape_images(3)
    distinct, tied = load_detector(checkpoint), DetectionTask(num_classes=3, image_size=IMAGE_SIZE).eval()
    monkeypatch.setattr(export, "run_onnx", eager(distinct))
    result = export.verify_detector_onnx(distinct, "unused.onnx", images)
    assert result["matched"] and result["max_box_diff"] < 1e-5 and result["max_score_diff"] < 1e-6
    assert result["jitter"]["matched"] and result["jitter"]["max_box_diff"] < 0.05  # rounding moves, no other box
    # Tied scores: noise far below any difference that matters makes `detect` itself keep other boxes.
    monkeypatch.setattr(export, "run_onnx", eager(tied))
    assert export.verify_detector_onnx(tied, "unused.onnx", images)["jitter"]["max_box_diff"] > 1


@pytest.mark.parametrize("box_diff, jitter_box_diff, agree, says", [
    (1e-5, 1e-5, True, None),
    (5.0, 1e-5, False, None),
    (5.0, 8.0, True, "scores tie within float rounding"),
])
def test_check_verdict(monkeypatch, capsys, box_diff, jitter_box_diff, agree, says):
    from backbonekit.detection import export
    from backbonekit.tools.export_command import shape_images

    def fake(*args, **kwargs):
        return {"matched": True, "counts": [(3, 3)], "max_box_diff": box_diff, "max_score_diff": 1e-7,
                "jitter": {"matched": True, "max_box_diff": jitter_box_diff, "max_score_diff": 1e-7}}

    monkeypatch.setattr(export, "verify_detector_onnx", fake)
    args = argparse.Namespace(input_dtype="uint8", score_threshold=None, max_detections=None)
    task = argparse.Namespace(cfg=argparse.Namespace(image_size=IMAGE_SIZE))  # all the check reads of it here
    assert export.check_onnx(task, "unused.onnx", args, lambda size: shape_images(size, "uint8")) == agree
    printed = capsys.readouterr().out
    assert f"max |Δbox| {box_diff:.2e} px" in printed and (says is None or says in printed)


def run_cli(argv, capsys):
    status = main(argv)
    return status, capsys.readouterr()


def bad_checkpoint(kind: str, folder):
    path = folder / f"{kind}.ckpt"
    if kind == "text":
        path.write_text("not a checkpoint")
    elif kind == "objects":
        torch.save({"state_dict": {}, "extra": argparse.Namespace(a=1)}, path)  # needs unpickling a class
    elif kind == "foreign":
        torch.save({"state_dict": {}}, path)  # a torch file, but no run's hyper-parameters
    return path


@pytest.mark.parametrize("kind, message", [
    ("missing", "no such file"),
    ("text", "not a PyTorch file"),
    ("objects", "which are never unpickled here"),
    ("foreign", "not a `backbonekit train` checkpoint"),
])
def test_bad_checkpoint_is_one_error_line(tmp_path, capsys, kind, message):
    status, captured = run_cli(["export", "--checkpoint", str(bad_checkpoint(kind, tmp_path))], capsys)
    assert status == 2 and captured.out == ""
    assert captured.err.count("\n") == 1 and captured.err.startswith("error: ") and message in captured.err


@pytest.mark.parametrize("extra, message", [
    (["--format", "tflite"], "--format must be one of onnx"),
    (["--opset", "11"], "--opset must be at least 18"),
    (["--input-dtype", "float16"], "--input-dtype must be one of uint8, float32"),
    (["--score-threshold", "1.5"], "--score-threshold must be in [0, 1)"),
])
def test_bad_option_is_one_error_line(checkpoint, tmp_path, capsys, extra, message):
    status, captured = run_cli(["export", "--checkpoint", str(checkpoint), "--out", str(tmp_path / "x.onnx"),
                                *extra], capsys)
    assert status == 2 and captured.err.count("\n") == 1 and message in captured.err
    assert not (tmp_path / "x.onnx").exists()


def test_missing_exporter_packages_are_named(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "onnxscript" else real(name, *a))
    with pytest.raises(BackbonekitError, match=r"needs onnxscript: pip install 'backbonekit\[export\]'"):
        require("onnx", "onnxscript")
