"""``backbonekit export`` of a classifier: the ONNX graph in onnxruntime gives what ``predict classify``'s pipeline
(eval transform, then the network) gives in PyTorch."""
import json
import re

import numpy as np
import pytest
import torch

pytest.importorskip("onnxscript")
pytest.importorskip("onnxruntime")

from backbonekit.classification.checkpoint import load_classifier  # noqa: E402
from backbonekit.classification.data import build_eval_transform  # noqa: E402
from backbonekit.cli import main  # noqa: E402
from backbonekit.detection.export import run_onnx  # noqa: E402
from backbonekit.models.registry import create_model  # noqa: E402
from backbonekit.weights import save_weights  # noqa: E402

CLASSES = ["cat", "dog", "fox"]
SIZE = 32


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    """A ResNet-18 saved as ``train classify`` saves ``best.safetensors`` (its metadata included); the mean and std
    are not ImageNet's, so a graph that normalised with the wrong ones would show."""
    torch.manual_seed(0)
    model = create_model("resnet18", num_classes=len(CLASSES)).eval()
    meta = {"task": "classify", "architecture": "resnet18", "num_classes": str(len(CLASSES)),
            "class_names": json.dumps(CLASSES), "image_size": str(SIZE), "mean": json.dumps([0.5, 0.4, 0.3]),
            "std": json.dumps([0.2, 0.25, 0.3])}
    return save_weights(model, tmp_path_factory.mktemp("run") / "best.safetensors", metadata=meta)


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

    trained = load_classifier(weights)
    images = torch.randint(0, 256, (5, 3, SIZE, SIZE), generator=torch.Generator().manual_seed(1), dtype=torch.uint8)
    transform = build_eval_transform(trained.image_size, trained.mean, trained.std)
    with torch.no_grad():
        expected = trained.model(torch.stack([transform(image) for image in images]))
    logits, probabilities = run_onnx(out, images.float())
    np.testing.assert_allclose(logits, expected.numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(probabilities, expected.softmax(-1).numpy(), rtol=0, atol=1e-5)


def test_detector_options_on_a_classifier_are_one_error_line(weights, tmp_path, capsys):
    assert main(["export", "--checkpoint", str(weights), "--out", str(tmp_path / "c.onnx"),
                 "--score-threshold", "0.5"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and "apply to detectors only" in err


def test_train_classify_checkpoint_is_recognised(weights, tmp_path):
    from backbonekit.tools.export_command import load_for_export

    trained = load_classifier(weights)
    hp = {"model": "resnet18", "num_classes": len(CLASSES), "class_names": CLASSES, "image_size": SIZE,
          "mean": list(trained.mean), "std": list(trained.std)}
    path = tmp_path / "last.ckpt"
    torch.save({"hyper_parameters": hp, "state_dict": trained.model.state_dict()}, path)  # Lightning's layout
    kind, loaded = load_for_export(path)
    assert kind == "classify" and loaded.class_names == CLASSES and loaded.image_size == SIZE
