"""`backbonekit quantize` and `--runtime-precision int8`: int8 through the accuracy gate for each task, on tiny runs
trained here. The gate's printed scores are the recorded ones, a refusal names its figures and writes nothing, int8
agrees with fp32, a detector's heads stay float and its boxes inside the image, auto picks a precision and remembers."""
import json
import re
import shutil

import numpy as np
import pytest
import torch

pytest.importorskip("onnxruntime")
pytest.importorskip("openvino")
pytest.importorskip("nncf")

from backbonekit.cli import main  # noqa: E402
from backbonekit.io.onnx_export import OnnxRunner  # noqa: E402
from backbonekit.io.quantize import module_path  # noqa: E402
from backbonekit.training.inference import load_for_inference  # noqa: E402
from backbonekit.training.task_spec import get_task  # noqa: E402
from data_writers import write_image_folder  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")
FIGURES = re.compile(r"fp32 (-?[\d.]+), int8 (-?[\d.]+), drop (-?[\d.]+) points")


@pytest.fixture(scope="module")
def classifier(tmp_path_factory):
    """A ResNet-18 trained two epochs on 24 coloured-noise images (19 to train on: enough to calibrate)."""
    root = tmp_path_factory.mktemp("int8")
    data = write_image_folder(root / "data", per_class=8, size=24)
    assert main(["train", "classify", "--data", str(data), "--model", "resnet18", "--image-size", "24",
                 "--epochs", "2", "--batch-size", "8", "--progress", "lines", "--out", str(root / "runs"),
                 "--name", "t"]) == 0
    return root / "runs" / "classify" / "t" / "best.safetensors"


@pytest.fixture(scope="module")
def calibration_folder(tmp_path_factory):
    return write_image_folder(tmp_path_factory.mktemp("calibration"), per_class=6, size=64, seed=3)


def _tree(folder):
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*")}


def test_quantize_writes_int8_whose_printed_scores_are_recorded_and_which_agrees_with_fp32(classifier, capsys):
    assert main(["quantize", "--checkpoint", str(classifier), "--runtime", "onnxruntime", "--max-drop", "100"]) == 0
    assert main(["quantize", "--checkpoint", str(classifier), "--runtime", "openvino", "--max-drop", "100",
                 "--keep-float", "none"]) == 0  # NNCF is the slower quantiser: the types measured once, above
    out = capsys.readouterr().out
    record = json.loads((classifier.parent / "precisions.json").read_text())
    printed = FIGURES.findall(out)
    assert len(printed) == 2
    for runtime, (fp32, int8, drop) in zip(("onnxruntime", "openvino"), printed):
        entry = record[f"best.int8-{runtime}.onnx"]
        assert (entry["fp32"], entry["int8"], entry["drop"]) == pytest.approx((float(fp32), float(int8), float(drop)),
                                                                              abs=0.006)
        assert entry["calibration"]["images"] >= 16 and "training images" in entry["calibration"]["source"]
        if runtime == "onnxruntime":
            assert set(entry["drop_by_type_alone"]) == {"conv", "linear", "other"}  # auto measured each type
        assert entry["layer_types"].get("conv int8", 0) > 0
        assert (classifier.parent / entry["file"]).is_file()
    # int8 agrees with fp32 on most held-out images (random, never calibrated on)
    images = torch.randint(0, 256, (32, 3, 24, 24), generator=torch.Generator().manual_seed(5), dtype=torch.uint8)
    spec = get_task("classify")
    fp32 = load_for_inference(classifier, spec, runtime="onnxruntime")[0](images).argmax(1)
    int8 = load_for_inference(classifier, spec, runtime="onnxruntime", precision="int8")[0](images).argmax(1)
    assert (fp32 == int8).float().mean() >= 0.8


def test_eval_int8_scores_what_the_gate_recorded(classifier, tmp_path, capsys):
    assert main(["eval", "classify", "--checkpoint", str(classifier), "--runtime", "openvino",
                 "--runtime-precision", "int8", "--out", str(tmp_path)]) == 0
    assert "passed the gate" in capsys.readouterr().err  # the file quantize wrote, not quantised again
    record = json.loads((classifier.parent / "precisions.json").read_text())["best.int8-openvino.onnx"]
    assert json.loads((tmp_path / "metrics.json").read_text())["top1"] == pytest.approx(record["int8"], abs=1e-3)


def test_the_gate_refuses_a_drop_over_the_limit_and_writes_nothing(classifier, capsys):
    before = _tree(classifier.parent)
    assert main(["quantize", "--checkpoint", str(classifier), "--runtime", "onnxruntime", "--max-drop", "-1",
                 "--keep-float", "none"]) == 2
    captured = capsys.readouterr()
    fp32, int8, drop = map(float, FIGURES.findall(captured.out)[0])
    err = captured.err.strip()
    assert err.count("\n") == 0 and "int8 refused for onnxruntime" in err and "nothing written" in err
    assert f"fp32 {fp32:.2f}, int8 {int8:.2f}, drop {drop:.2f} points > --max-drop -1" in err
    assert _tree(classifier.parent) == before


def test_bad_inputs_are_one_line_and_write_nothing(classifier, calibration_folder, tmp_path, capsys, monkeypatch):
    run = tmp_path / "moved"
    shutil.copytree(classifier.parent, run, ignore=shutil.ignore_patterns("*.onnx", "precisions.json"))
    settings = (run / "run.yaml").read_text()
    data = re.search(r"^  data: (.+)$", settings, re.M)[1]
    (run / "run.yaml").write_text(settings.replace(data, str(tmp_path / "gone")))
    checkpoint = str(run / classifier.name)
    few = write_image_folder(tmp_path / "few", per_class=2, size=24)
    import importlib.util

    real_find_spec = importlib.util.find_spec
    cases = {
        (): ["the run's data", "gone", "--calibration-data DIR"],
        ("--calibration-data", str(tmp_path / "nowhere")): ["--calibration-data", "no such folder"],
        ("--calibration-data", str(few)): ["6 images, too few", "at least 16"],
        ("--calibration-data", str(calibration_folder), "--calibration-images", "4"): ["at least 16, got 4"],
        ("--runtime", "openvino", "--no-nncf"): ["needs nncf", "pip install 'backbonekit[quantize]'"],
    }
    before = _tree(run)
    for extra, said in cases.items():
        if "--no-nncf" in extra:
            extra = extra[:-1]
            monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n == "nncf" else
                                real_find_spec(n, *a))
        assert main(["quantize", "--checkpoint", checkpoint, *extra]) == 2, extra
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and all(s in err for s in said), (extra, err)
        assert _tree(run) == before
    monkeypatch.undo()


def test_runtime_auto_picks_a_gated_precision_and_remembers(classifier, capsys):
    record = classifier.parent / "runtime.json"
    record.unlink(missing_ok=True)
    load_for_inference(classifier, get_task("classify"), runtime="auto", precision=None, batch_size=4)
    (key, entry), = json.loads(record.read_text()).items()
    rates = entry["images_per_s"]
    assert {"torch", "onnxruntime", "openvino", "onnxruntime int8", "openvino int8"} <= set(rates)
    best = max(rates, key=rates.get)
    assert best.split(" ")[0] == entry["runtime"] and entry["precision"] == (best.split(" ") + ["fp32"])[1]
    capsys.readouterr()
    record.write_text(json.dumps({key: {**entry, "runtime": "onnxruntime", "precision": "int8"}}))
    model, _ = load_for_inference(classifier, get_task("classify"), runtime="auto", precision=None, batch_size=4)
    assert "measured before" in capsys.readouterr().err and model.runner.path.name == "best.int8-onnxruntime.onnx"


def _synth_folder(folder, count, size):
    from PIL import Image

    from backbonekit.detection.synth import synth_image

    folder.mkdir()
    for i in range(count):
        Image.fromarray(synth_image(1, i, size, dont_care=False)[0]).save(folder / f"{i}.png")
    return folder


def _dequantised(path, prefix, ops=("Conv",)):
    """For the nodes of ``ops`` under module ``prefix``: (how many take their second input, the weights, through a
    DequantizeLinear: computed in int8; how many there are). A float layer after an int8 one still reads its input
    through one: the int8 layer's output."""
    import onnx

    model = onnx.load(str(path))
    producers = {o: n.op_type for n in model.graph.node for o in n.output}
    nodes = [n for n in model.graph.node if n.op_type in ops and module_path(n).startswith(prefix)]
    return sum(producers.get(n.input[1]) == "DequantizeLinear" for n in nodes), len(nodes)


def test_detector_int8_keeps_heads_float_and_boxes_inside_the_image(tiny_runs, tmp_path):
    checkpoint = tiny_runs["detect"] / "best.ckpt"
    load_for_inference(checkpoint, get_task("detect"), runtime="onnxruntime")  # its fp32 file, as test_runtimes's
    folder = _synth_folder(tmp_path / "calibration", 16, (64, 64))
    assert main(["quantize", "--checkpoint", str(checkpoint), "--calibration-data", str(folder), "--max-drop", "100",
                 "--keep-float", "none"]) == 0
    path = checkpoint.with_name("best.int8-onnxruntime.onnx")
    quantised, backbone = _dequantised(path, "net.backbone")
    assert backbone and quantised == backbone
    for head in ("net.class_net", "net.box_net"):
        assert _dequantised(path, head)[0] == 0
    model, _ = load_for_inference(checkpoint, get_task("detect"), runtime="onnxruntime", precision="int8")
    images = torch.randint(0, 256, (3, 3, 64, 64), generator=torch.Generator().manual_seed(2), dtype=torch.uint8)
    for det in model.detect(images):
        boxes = torch.as_tensor(det["boxes"])
        assert (boxes >= 0).all() and (boxes <= 64).all()


def test_sequence_int8_quantises_the_backbone_and_keeps_the_transformer_float(tiny_runs, calibration_folder, capsys):
    checkpoint = tiny_runs["sequence"] / "best.ckpt"
    load_for_inference(checkpoint, get_task("sequence"), runtime="onnxruntime")  # its fp32 file, as test_runtimes's
    assert main(["quantize", "--checkpoint", str(checkpoint), "--calibration-data", str(calibration_folder),
                 "--max-drop", "100", "--keep-float", "none"]) == 0
    assert len(FIGURES.findall(capsys.readouterr().out)) == 1
    path = checkpoint.with_name("best.int8-onnxruntime.onnx")
    entry = json.loads((checkpoint.parent / "precisions.json").read_text())[path.name]
    assert entry["scope"] == "backbone" and entry["metric"] == "Fixed-Acc (%)"
    assert entry["layer_types"].get("linear float", 0) > 0  # the transformer's projections
    quantised, convs = _dequantised(path, "net.backbone")
    assert convs and quantised == convs
    quantised, matmuls = _dequantised(path, "net.transformer", ("MatMul", "Gemm"))
    assert matmuls and quantised == 0
    model, _ = load_for_inference(checkpoint, get_task("sequence"), runtime="onnxruntime", precision="int8")
    labels = model(torch.zeros(2, 3, 32, 32, dtype=torch.uint8))
    assert labels.shape == (2, 5)


def test_the_python_api_quantizes_and_returns_the_record(classifier):
    import backbonekit as bk

    record = bk.quantize(classifier, runtime="onnxruntime", max_drop=100, keep_float="none", calibration_images=16)
    entry = record["best.int8-onnxruntime.onnx"]
    assert entry["calibration"]["images"] == 16 and entry["kept_float_types"] == []
    from backbonekit.errors import GateRefused

    with pytest.raises(GateRefused, match="drop .* > --max-drop -100"):
        bk.quantize(classifier, runtime="onnxruntime", max_drop=-100, keep_float="none")
