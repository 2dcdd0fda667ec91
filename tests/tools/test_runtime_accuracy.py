"""`bench --checkpoint RUN/best.ckpt --runtimes …`: a trained classifier on every runtime, each row (ours and the
peer's, the same trained weights) with the top-1 of the very variant timed on the run's validation split: the torch
row scores what `eval` scores, the exported rows what the torch row scores, int8 is smaller and scored, a detector
is refused in one line."""
import json

import pytest
import torch

pytest.importorskip("onnxruntime")
pytest.importorskip("openvino")
pytest.importorskip("nncf")

from backbonekit.cli import main  # noqa: E402
from backbonekit.tools.runtime_accuracy import run_checkpoint_bench, validation_images  # noqa: E402
from data_writers import write_image_folder  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")
RUNTIMES = ["torch", "onnxruntime", "openvino", "onnxruntime-int8", "openvino-int8"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A ResNet-18 trained one epoch on 60 coloured-noise images at 24² (48 to train and calibrate on, 12 scored),
    and its bench rows on every runtime asked for, with the progress lines it printed."""
    root = tmp_path_factory.mktemp("bench_accuracy")
    data = write_image_folder(root / "data", per_class=20, size=24)
    assert main(["train", "classify", "--data", str(data), "--model", "resnet18", "--image-size", "24",
                 "--epochs", "1", "--batch-size", "8", "--progress", "lines", "--out", str(root / "runs"),
                 "--name", "t"]) == 0
    checkpoint = root / "runs" / "classify" / "t" / "best.ckpt"
    said = []
    rows, no_peer = run_checkpoint_bench(checkpoint, RUNTIMES, batch_size=2, rounds=1, iters=1, warmup=0,
                                         keep_float="none", progress=said.append)  # auto: the command's test
    return {"checkpoint": checkpoint, "rows": {(r.runtime, r.who): r for r in rows}, "no_peer": no_peer,
            "said": said, "images": len(validation_images(checkpoint, 24))}


def test_the_torch_row_scores_what_eval_scores(run, tmp_path):
    assert main(["eval", "classify", "--checkpoint", str(run["checkpoint"]), "--out", str(tmp_path)]) == 0
    evaluated = json.loads((tmp_path / "metrics.json").read_text())
    assert evaluated["images"] == run["images"] == 12
    # eval's torchmetrics counts in float32: equal to a few parts in a million (one image here is 8.3 points)
    assert run["rows"][("torch", "ours")].accuracy == pytest.approx(evaluated["top1"], abs=1e-4)


def test_every_row_of_ours_and_the_peers_is_scored_and_fp32_agrees_within_an_image(run):
    rows, one_image = run["rows"], 100 / run["images"]
    assert run["no_peer"] == ""
    assert set(rows) == {("torch", "torchvision"), *((r, "ours") for r in RUNTIMES),
                         *((r, "torchvision") for r in RUNTIMES[1:])}
    torch_row = rows[("torch", "ours")].accuracy
    for runtime in ("onnxruntime", "openvino"):
        for who in ("ours", "torchvision"):  # the peer holds the same trained weights
            assert abs(rows[(runtime, who)].accuracy - torch_row) <= one_image + 1e-9, (runtime, who)
            assert rows[(runtime, who)].max_rel_diff < 1e-3
    assert abs(rows[("torch", "torchvision")].accuracy - torch_row) <= one_image + 1e-9
    for row in rows.values():
        assert row.accuracy is not None and row.median > 0 and row.size_mb > 0


def test_int8_rows_are_scored_smaller_and_calibrated_on_the_runs_training_images(run):
    rows = run["rows"]
    for runtime in ("onnxruntime-int8", "openvino-int8"):
        for who in ("ours", "torchvision"):
            fp32 = rows[(runtime.removesuffix("-int8"), who)]
            assert rows[(runtime, who)].size_mb < 0.5 * fp32.size_mb, (runtime, who)
            assert 0 <= rows[(runtime, who)].accuracy <= 100
            assert 0 < rows[(runtime, who)].max_rel_diff < 0.5  # int8 moves the logits, a little
    assert any("calibrating on 48 images of the run's training images" in line for line in run["said"]), run["said"]
    assert sum("kept float: none" in line for line in run["said"]) == 2  # as asked, once per runtime


def test_the_command_prints_accuracy_per_row_and_draws_it(run, tmp_path, capsys):
    plot = tmp_path / "rows.png"
    assert main(["bench", "--checkpoint", str(run["checkpoint"]), "--runtimes", "torch,onnxruntime-int8", "--rounds",
                 "1", "--iters", "1", "--limit-images", "6", "--json", "--plot", str(plot)]) == 0
    captured = capsys.readouterr()
    printed = [json.loads(line) for line in captured.out.splitlines()]
    assert {(r["runtime"], r["who"]) for r in printed} == {("torch", "torchvision"), ("torch", "ours"),
                                                          ("onnxruntime-int8", "ours"),
                                                          ("onnxruntime-int8", "torchvision")}
    assert "top-1 lost with one type alone int8: conv" in captured.err  # --keep-float auto: quantize's measurement
    assert all(r["accuracy"] is not None and r["accuracy"] * 6 / 100 == pytest.approx(round(r["accuracy"] * 6 / 100))
               for r in printed)  # a whole number of the 6 images scored
    assert plot.stat().st_size > 5000
    assert main(["bench", "resnet18", "--runtimes", "torch", "--image-size", "32", "--rounds", "1", "--iters", "1",
                 "--json"]) == 0  # random weights: nothing to score
    assert all(json.loads(line)["accuracy"] is None for line in capsys.readouterr().out.splitlines())


def test_a_detector_checkpoint_is_one_line_pointing_to_quantize_and_writes_nothing(tmp_path, capsys):
    from backbonekit.detection.task import DetectionTask
    from backbonekit.training.task_io import save_task_weights

    task = DetectionTask(model="efficientdet_d0", num_classes=2, image_size=[64, 64])
    checkpoint = save_task_weights(task, dict(task.hparams), tmp_path / "best.safetensors")
    before = sorted(tmp_path.iterdir())
    assert main(["bench", "--checkpoint", str(checkpoint), "--runtimes", "torch,onnxruntime-int8", "--plot",
                 str(tmp_path / "rows.png")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "for classifiers" in err and "backbonekit quantize" in err and "detect" in err
    assert sorted(tmp_path.iterdir()) == before


def test_flags_that_do_not_go_together_are_refused(run, capsys):
    for argv, said in ((["bench", "resnet18", "--checkpoint", str(run["checkpoint"]), "--runtimes", "torch"],
                        "--checkpoint takes the place of MODEL"),
                       (["bench", "--checkpoint", str(run["checkpoint"])], "--checkpoint takes the place of MODEL"),
                       (["bench", "resnet18", "--limit-images", "5"], "--limit-images and --keep-float go with it")):
        assert main(argv) == 2
        assert said in capsys.readouterr().err


def test_a_peer_of_another_architecture_gets_no_weights():
    import torchvision

    from backbonekit.models.registry import create_model
    from backbonekit.tools.peer_weights import peer_state_dict

    ours = create_model("resnet18", num_classes=3)
    mapped, why = peer_state_dict(ours, torchvision.models.resnet34(num_classes=3))
    assert mapped is None and "have no counterpart in ours" in why
    mapped, why = peer_state_dict(ours, torchvision.models.resnet18(num_classes=3))
    assert why == "" and torch.equal(mapped["layer4.1.conv2.weight"], ours.state_dict()["layer4.1.conv2.weight"])
