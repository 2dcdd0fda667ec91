"""``backbonekit export`` of a SeqFakeFormer: the ONNX graph decodes the same edit sequences as PyTorch."""
import numpy as np
import pytest
import torch

pytest.importorskip("onnxscript")
pytest.importorskip("onnxruntime")

from backbonekit.cli import main  # noqa: E402
from backbonekit.io.onnx_export import run_onnx  # noqa: E402
from backbonekit.sequence.task import SequenceTask, load  # noqa: E402
from backbonekit.training.task_io import save_task_weights  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")


def test_export_sequence_model_decodes_like_pytorch(tmp_path, capsys):
    torch.manual_seed(0)
    task = SequenceTask(backbone="resnet18", image_size=64).eval()
    # Random weights predict EOS first for every image; a larger EOS-free bias on the edits makes the sequences long
    # and different, so the comparison covers every decoding step.
    with torch.no_grad():
        task.model.head.layers[-1].bias.copy_(torch.tensor([0, 3, 2, 1, 2.5, 1.5, -5, -5]))
    weights = save_task_weights(task, dict(task.hparams), tmp_path / "best.safetensors")
    out = tmp_path / "seq.onnx"
    assert main(["export", "--checkpoint", str(weights), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "sequence model" in printed and "identical edit sequences for 3/3" in printed, printed

    images = torch.randint(0, 256, (4, 3, 64, 64), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = load(weights)(images).numpy()
    (labels,) = run_onnx(out, images)
    assert labels.shape == (4, 5) and np.array_equal(labels, expected)
    assert (expected != 0).sum() > 4  # the sequences are not all empty

    import json

    import onnx

    props = {p.key: json.loads(p.value) for p in onnx.load(str(out)).metadata_props}
    assert props["backbonekit_task"] == "sequence" and props["input_size"] == [64, 64]
    assert props["class_names"][0] == "NA" and len(props["class_names"]) == 6  # the edit of each label id
    assert props["normalization"] == {**props["normalization"], "mean": [0.5] * 3, "std": [0.5] * 3}
