"""``backbonekit export`` of a classifier: the ONNX graph in onnxruntime gives what ``predict classify``'s pipeline
(eval transform, then the network) gives in PyTorch."""
import json
import re

import numpy as np
import pytest
import torch

pytest.importorskip("onnxscript")
pytest.importorskip("onnxruntime")

from backbonekit.classification.data import build_eval_transform  # noqa: E402
from backbonekit.classification.task import ClassificationTask, load  # noqa: E402
from backbonekit.cli import main  # noqa: E402
from backbonekit.io.onnx_export import run_onnx  # noqa: E402
from backbonekit.training.task_io import save_task_weights  # noqa: E402

CLASSES = ["cat", "dog", "fox"]
SIZE = 32


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    """A classifier saved as ``train classify`` saves ``best.safetensors``. EfficientNet-Lite0 normalises with
    0.5/0.5, not ImageNet's statistics, so a graph that normalised with the wrong ones would show."""
    torch.manual_seed(0)
    task = ClassificationTask(model="efficientnet_lite0", num_classes=len(CLASSES), class_names=CLASSES,
                              image_size=SIZE).eval()
    return save_task_weights(task, dict(task.hparams), tmp_path_factory.mktemp("run") / "best.safetensors")


def test_export_classifier_matches_predict_pipeline(weights, tmp_path, capsys):
    out = tmp_path / "classifier.onnx"
    assert main(["export", "--checkpoint", str(weights), "--out", str(out), "--input-dtype", "float32"]) == 0
    printed = capsys.readouterr().out
    assert f"wrote {out}" in printed and "classifier" in printed
    assert re.search(r"input\s+images\s+float32\s+\[batch, 3, 32, 32\]", printed)
    assert re.search(r"output\s+probabilities\s+float32\s+\[batch, 3\]", printed)
    check = re.search(r"max \|Δlogit\| (\S+) \(logits up to \S+\), max \|Δprobability\| (\S+), same top-1: True",
                      printed)
    assert check and float(check[2]) < 1e-4, printed

    trained = load(weights)
    assert trained.normalize.mean.flatten().tolist() == [0.5, 0.5, 0.5]
    images = torch.randint(0, 256, (5, 3, SIZE, SIZE), generator=torch.Generator().manual_seed(1), dtype=torch.uint8)
    transform = build_eval_transform(SIZE)
    with torch.no_grad():
        expected = trained(torch.stack([transform(image) for image in images]))
    logits, probabilities = run_onnx(out, images.float() / 255)  # float32 input: 0–1
    np.testing.assert_allclose(logits, expected.numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(probabilities, expected.softmax(-1).numpy(), rtol=0, atol=1e-5)

    import onnx

    props = {p.key: json.loads(p.value) for p in onnx.load(str(out)).metadata_props}
    assert props["backbonekit_task"] == "classify" and props["class_names"] == CLASSES
    assert props["input_size"] == [SIZE, SIZE] and props["input"]["dtype"] == "float32"
    assert props["normalization"]["mean"] == [0.5, 0.5, 0.5] and props["normalization"]["std"] == [0.5, 0.5, 0.5]
    assert props["architecture"] == "efficientnet_lite0"


def test_detector_options_on_a_classifier_are_one_error_line(weights, tmp_path, capsys):
    assert main(["export", "--checkpoint", str(weights), "--out", str(tmp_path / "c.onnx"),
                 "--score-threshold", "0.5"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and "does not apply to a classify model" in err


def test_the_recorded_task_is_what_export_loads(weights, tmp_path):
    from backbonekit.tasks import load_trained

    trained = load(weights)
    path = tmp_path / "last.ckpt"
    torch.save({"hyper_parameters": dict(trained.hparams), "state_dict": trained.state_dict()}, path)  # Lightning's
    for source in (weights, path):
        kind, loaded = load_trained(source)
        assert kind == "classify" and isinstance(loaded, ClassificationTask)
        assert loaded.cfg.class_names == CLASSES and loaded.cfg.image_size == SIZE and not loaded.training
