"""A resumed run keeps the settings it really used and runs its schedule where the new length puts it."""
import csv
import math

import pytest

from backbonekit.cli import main

# No --lr: AdamW's default (1e-3) is filled in by the task, so the record holds None for it. One batch an epoch
# (9 training images at batch 8, the 9th dropped), so the resumed epoch's first step is step 1.
ARGS = ["--model", "resnet18", "--image-size", "32", "--batch-size", "8", "--optimizer", "adamw",
        "--scheduler", "cosine", "--warmup-epochs", "0", "--progress", "lines", "--val-ratio", "0.5", "--seed", "3"]


@pytest.fixture
def default_lr_run(image_folder, tmp_path):
    out = tmp_path / "runs"
    assert main(["train", "classify", "--data", str(image_folder), *ARGS, "--epochs", "1", "--out", str(out),
                 "--name", "r"]) == 0
    return out / "classify" / "r"


def _rows(run):
    with open(run / "results.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_resume_starts_at_the_stretched_schedules_rate_and_names_the_runs_real_values(default_lr_run, capsys):
    run = default_lr_run
    # The typed lr differs from the 1e-3 the run used (recorded as None, the task's default).
    assert main(["train", "classify", "--resume", str(run), "--lr", "0.01", "--epochs", "2"]) == 2
    err = capsys.readouterr().err
    assert "--lr 0.01 (the run: 0.001)" in err and "None" not in err
    # Typing the value the run used is no conflict.
    assert main(["train", "classify", "--resume", str(run), "--lr", "0.001", "--epochs", "2",
                 "--progress", "lines"]) == 0
    rows = _rows(run)
    steps_per_epoch, total = 1, 2
    # The 2-epoch cosine at step 1, where the old 1-epoch schedule had reached 0.
    expected = 1e-3 * 0.5 * (1 + math.cos(math.pi * steps_per_epoch / total))
    assert [r["epoch"] for r in rows] == ["1", "2"] and float(rows[0]["lr"]) == pytest.approx(1e-3)
    assert float(rows[1]["lr"]) == pytest.approx(expected, rel=1e-9) and expected > 0


def test_eval_refuses_a_split_that_would_score_the_runs_training_images(default_lr_run, capsys):
    best = str(default_lr_run / "best.ckpt")
    before = sorted(p.name for p in default_lr_run.iterdir())
    # The run held out half its images with seed 3; 0.2, or another seed, draws from the half it trained on.
    for typed in (["--val-ratio", "0.2"], ["--seed", "4"]):
        assert main(["eval", "classify", "--checkpoint", best, *typed, "--runtime", "onnxruntime"]) == 2
        err = capsys.readouterr().err
        assert f"{typed[0]} {typed[1]} (the run: " in err and "images the run trained on" in err
    assert sorted(p.name for p in default_lr_run.iterdir()) == before  # nothing exported or written
    assert main(["eval", "classify", "--checkpoint", best, "--val-ratio", "0.5", "--seed", "3"]) == 0  # its own split
    assert "the run's own validation data" in capsys.readouterr().out


def test_eval_sequence_names_the_split_it_scores(tiny_runs, capsys):
    assert main(["eval", "sequence", "--checkpoint", str(tiny_runs["sequence"] / "best.ckpt"), "--split", "test",
                 "--batch-size", "4"]) == 0
    line = next(l for l in capsys.readouterr().out.splitlines() if l.startswith("scoring"))
    assert "the run's test split" in line and "validation" not in line
