"""``--ema DECAY``: the moving average is what is validated, checkpointed as the weights and exported; a resumed run
continues the same average."""
import json
from pathlib import Path

import pytest
import torch

from backbonekit.cli import main
from backbonekit.training.checkpoint_io import load_checkpoint_file
from safetensors.torch import load_file

pytestmark = pytest.mark.usefixtures("one_thread")

ARGS = ["--model", "resnet18", "--image-size", "32", "--batch-size", "8", "--optimizer", "adamw", "--lr", "1e-3",
        "--scheduler", "step", "--step-size", "1", "--augment", "basic", "--deterministic", "--progress", "lines",
        "--seed", "3", "--ema", "0.5"]


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_the_average_is_validated_saved_and_resumed(image_folder, tmp_path, capsys):
    out = str(tmp_path / "runs")
    data = ["--data", str(image_folder), "--val-ratio", "0.34"]
    assert main(["train", "classify", *data, *ARGS, "--epochs", "2", "--out", out, "--name", "straight"]) == 0
    run = Path(out) / "classify" / "straight"
    last = load_checkpoint_file(run / "last.ckpt")
    average, live = last["state_dict"], last["current_model_state"]
    assert not _same(average, live)  # the average lags the live weights

    exported = load_file(run / "best.safetensors")
    best = load_checkpoint_file(run / "best.ckpt")["state_dict"]
    assert _same(exported, {k.removeprefix("model."): v for k, v in best.items() if k.startswith("model.")})
    metrics = json.loads((run / "metrics.json").read_text())
    capsys.readouterr()
    assert main(["eval", "classify", "--checkpoint", str(run / "best.ckpt"), *data]) == 0
    evaluated = json.loads((run / "eval" / "val" / "metrics.json").read_text())["top1"]
    assert evaluated == pytest.approx(metrics["best"]["val/top1"], abs=1e-6)  # validation scored the average

    assert main(["train", "classify", *data, *ARGS, "--epochs", "1", "--out", out, "--name", "split"]) == 0
    split_last = Path(out) / "classify" / "split" / "last.ckpt"
    assert main(["train", "classify", *data, *ARGS, "--epochs", "2", "--out", out, "--resume", str(split_last)]) == 0
    resumed = load_checkpoint_file(split_last)
    assert _same(resumed["state_dict"], average) and _same(resumed["current_model_state"], live)


def test_a_decay_outside_0_1_is_one_error_line(image_folder, tmp_path, capsys):
    args = [a if a != "0.5" else "1.5" for a in ARGS]
    assert main(["train", "classify", "--data", str(image_folder), *args, "--epochs", "1",
                 "--out", str(tmp_path)]) != 0
    assert "--ema must be in (0, 1), got 1.5" in capsys.readouterr().err
