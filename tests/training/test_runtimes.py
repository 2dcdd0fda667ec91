"""`--runtime onnxruntime|openvino`: each task's checkpoint exported once beside it and run by onnxruntime or OpenVINO
(fp32) gives what eager PyTorch gives (within the export's stated tolerance); an exported .onnx file is accepted as
--checkpoint; OpenVINO's bf16 is opt-in and its error is measured."""
import json

import numpy as np
import pytest
import torch

from backbonekit.cli import main
from backbonekit.training.inference import load_for_inference
from backbonekit.training.task_spec import get_task


def _images(size, n=3):
    return torch.randint(0, 256, (n, 3, *size), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))


def test_classifier_in_onnxruntime_gives_eager_probabilities(tiny_runs, capsys):
    checkpoint = tiny_runs["classify"] / "best.ckpt"
    exported_before = (tiny_runs["classify"] / "best.onnx").is_file()  # the shared runs: another test may have
    eager, _ = load_for_inference(checkpoint, get_task("classify"))
    onnx, device = load_for_inference(checkpoint, get_task("classify"), runtime="onnxruntime")
    assert device.type == "cpu" and (tiny_runs["classify"] / "best.onnx").is_file()
    assert ("exporting" in capsys.readouterr().err) != exported_before
    assert onnx.cfg.class_names == list(eager.cfg.class_names) and onnx.cfg.image_size == eager.cfg.image_size
    images = _images((16, 16))
    with torch.inference_mode():
        expected = eager(images).softmax(-1)
    assert (onnx(images).softmax(-1) - expected).abs().max() <= 1e-3
    load_for_inference(checkpoint, get_task("classify"), runtime="onnxruntime")
    assert "exporting" not in capsys.readouterr().err  # the file beside the checkpoint is reused


@pytest.mark.parametrize("runtime", ["onnxruntime", "openvino"])
def test_detector_in_a_runtime_gives_eager_detections(runtime, tiny_runs):
    from backbonekit.detection.export import compare_detections

    checkpoint = tiny_runs["detect"] / "best.ckpt"
    eager, _ = load_for_inference(checkpoint, get_task("detect"))
    onnx, _ = load_for_inference(checkpoint, get_task("detect"), runtime=runtime)
    assert onnx.cfg.category_ids == list(eager.cfg.category_ids) == [1, 2, 3]
    images = _images((64, 64), n=2)
    with torch.inference_mode():
        expected = eager.detect(images, score_threshold=0.05)
    got = onnx.detect(images, score_threshold=0.05)
    diff = compare_detections(expected, got)
    assert diff["matched"] and diff["max_box_diff"] <= 64e-3 and diff["max_score_diff"] <= 1e-3, diff
    with pytest.raises(Exception, match="--score-threshold 0.001 or more"):
        onnx.detect(images, score_threshold=0.0)


@pytest.mark.parametrize("runtime", ["onnxruntime", "openvino"])
def test_sequence_model_in_a_runtime_gives_eager_labels(runtime, tiny_runs):
    checkpoint = tiny_runs["sequence"] / "best.ckpt"
    eager, _ = load_for_inference(checkpoint, get_task("sequence"))
    onnx, _ = load_for_inference(checkpoint, get_task("sequence"), runtime=runtime)
    images = _images((32, 32), n=4)
    with torch.inference_mode():
        assert torch.equal(onnx(images), eager(images))


def test_predict_runs_an_onnx_file_given_as_checkpoint_and_refuses_another_tasks(tiny_runs, tmp_path, capsys):
    run = tiny_runs["classify"]
    assert main(["export", "--checkpoint", str(run / "best.ckpt"), "--out", str(tmp_path / "c.onnx"),
                 "--no-verify"]) == 0
    capsys.readouterr()
    folder = tiny_runs["data"]["classify"]
    stdout = ["--format", "json", "--out", "-"]
    assert main(["predict", "classify", "--checkpoint", str(run / "best.ckpt"), str(folder), *stdout]) == 0
    eager = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert main(["predict", "classify", "--checkpoint", str(tmp_path / "c.onnx"), str(folder), *stdout]) == 0
    onnx = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["path"] for r in onnx] == [r["path"] for r in eager] and len(onnx) == 12
    assert [r["top"][0][0] for r in onnx] == [r["top"][0][0] for r in eager]
    assert np.allclose([p for r in onnx for _, p in r["top"]], [p for r in eager for _, p in r["top"]], atol=1e-3)
    assert main(["predict", "detect", "--checkpoint", str(tmp_path / "c.onnx"), str(folder),
                 "--out", str(tmp_path / "p")]) == 2
    assert "c.onnx: a classify model, not detect" in capsys.readouterr().err
    assert main(["predict", "classify", "--checkpoint", str(tmp_path / "c.onnx"), str(folder), "--compile",
                 "--runtime", "onnxruntime"]) == 2


@pytest.mark.parametrize("task", ["classify", "detect", "sequence"])
def test_eval_in_onnxruntime_scores_as_eager(task, tiny_runs, tmp_path, capsys):
    checkpoint = str(tiny_runs[task] / "best.ckpt")
    extra = ["--split", "val"] if task == "sequence" else []
    scores = {}
    for runtime in ("torch", "onnxruntime"):
        out = tmp_path / runtime
        assert main(["eval", task, "--checkpoint", checkpoint, "--runtime", runtime, "--out", str(out), *extra]) == 0
        scores[runtime] = json.loads((out / "metrics.json").read_text())
    capsys.readouterr()
    key = {"classify": ("top1",), "detect": ("coco", "mAP50"), "sequence": ("fixed_acc",)}[task]
    eager, onnx = scores["torch"], scores["onnxruntime"]
    for k in key:
        eager, onnx = eager[k], onnx[k]
    assert onnx == pytest.approx(eager, abs=0.5), (eager, onnx)


def test_openvino_classifier_fp32_by_default_and_bf16_opt_in_with_its_error(tiny_runs, capsys):
    checkpoint = tiny_runs["classify"] / "best.ckpt"
    eager, _ = load_for_inference(checkpoint, get_task("classify"))
    images = _images((16, 16))
    with torch.inference_mode():
        expected = eager(images).softmax(-1)
    fp32, _ = load_for_inference(checkpoint, get_task("classify"), runtime="openvino")
    assert (fp32(images).softmax(-1) - expected).abs().max() <= 1e-3
    bf16, _ = load_for_inference(checkpoint, get_task("classify"), runtime="openvino", precision="bf16")
    assert "OpenVINO bf16: outputs differ from fp32 by up to" in capsys.readouterr().err
    assert bf16(images).argmax(-1).shape == (3,)
    with pytest.raises(Exception, match="--runtime-precision bf16 applies to --runtime openvino"):
        load_for_inference(checkpoint, get_task("classify"), runtime="onnxruntime", precision="bf16")


def test_runtime_auto_measures_once_and_remembers_its_choice(tiny_runs, capsys):
    from backbonekit.io.openvino_runtime import OpenVinoRunner

    checkpoint = tiny_runs["sequence"] / "last.ckpt"
    record = checkpoint.parent / "runtime.json"
    record.unlink(missing_ok=True)
    model, _ = load_for_inference(checkpoint, get_task("sequence"), runtime="auto", batch_size=2)
    err = capsys.readouterr().err
    assert "runtime auto: " in err and "images/s at batch 2 here: torch " in err
    (key, entry), = json.loads(record.read_text()).items()
    assert "last.ckpt" in key and "batch 2" in key and set(entry["images_per_s"]) == {"torch", "onnxruntime", "openvino"}
    assert entry["runtime"] == max(entry["images_per_s"], key=entry["images_per_s"].get)
    record.write_text(json.dumps({key: {**entry, "runtime": "openvino"}}))  # what was measured is what is used
    model, _ = load_for_inference(checkpoint, get_task("sequence"), runtime="auto", batch_size=2)
    assert isinstance(model.runner, OpenVinoRunner) and "measured before" in capsys.readouterr().err
