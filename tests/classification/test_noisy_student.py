"""`train noisy-student`: generations as run folders, the table, reuse and resume, pseudo-label balancing."""
import csv
import json

import numpy as np
import pytest
import torch

from backbonekit.classification.noisy_student import pseudo_label
from backbonekit.classification.semi_data import RawImages
from backbonekit.classification.task import ClassificationTask
from backbonekit.cli import main
from backbonekit.training.task_io import save_task_weights

pytestmark = pytest.mark.usefixtures("one_thread")

FAST = ["--image-size", "16", "--batch-size", "8", "--epochs", "1", "--optimizer", "adamw", "--lr", "1e-3",
        "--progress", "lines"]


def test_pseudo_labels_are_filtered_and_balanced(tmp_path):
    torch.manual_seed(0)
    task = ClassificationTask(model="resnet18", num_classes=3, class_names=list("abc"), image_size=16)
    path = save_task_weights(task, dict(task.hparams), tmp_path / "t.safetensors")
    images = torch.randint(0, 256, (30, 3, 16, 16), dtype=torch.uint8)
    raw = RawImages(lambda i: (images[i], i % 3), 30, [i % 3 for i in range(30)])
    indices, targets, stats = pseudo_label(path, raw, 3, threshold=0.0, soft=False)
    counts = np.bincount(targets, minlength=3)
    present = counts[counts > 0]
    assert (present == stats["per_class_target"]).all() and stats["confident"] == 30
    assert 0 <= stats["accuracy"] <= 100
    soft_idx, soft, _ = pseudo_label(path, raw, 3, threshold=0.0, soft=True)
    assert soft_idx == indices and soft[0].shape == (3,) and soft[0].sum().item() == pytest.approx(1.0, abs=1e-5)
    none, _, stats = pseudo_label(path, raw, 3, threshold=1.0, soft=False)
    assert none == [] and stats["confident"] == 0


def test_noisy_student_generations_table_reuse_and_resume(image_folder, tmp_path, capsys):
    out = tmp_path / "runs"
    argv = ["train", "noisy-student", "--data", str(image_folder), *FAST, "--out", str(out), "--name", "ns",
            "--val-ratio", "0.34", "--unlabeled", str(image_folder), "--teacher-model", "resnet18",
            "--students", "resnet18", "--iterations", "1", "--threshold", "0.0", "--soft"]
    assert main(argv) == 0
    root = out / "noisy-student" / "ns"
    for gen in ("gen0", "gen1"):
        for name in ("best.safetensors", "last.ckpt", "results.csv", "metrics.json", "hparams.yaml"):
            assert (root / gen / name).is_file(), (gen, name)
    assert (root / "gen1" / "pseudo_labels.json").is_file() and not (root / "gen0" / "pseudo_labels.json").exists()
    rows = list(csv.DictReader(open(root / "results.csv")))
    assert [r["generation"] for r in rows] == ["0", "1"] and [r["role"] for r in rows] == ["teacher", "student"]
    assert int(rows[1]["pseudo_labelled"]) > 0 and all(0 <= float(r["val_top1"]) <= 100 for r in rows)
    capsys.readouterr()

    # Run again: both generations are reused. Then an interrupted gen 1 (no metrics.json) resumes from last.ckpt.
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "generation 0: reusing" in printed and "generation 1: reusing" in printed
    (root / "gen1" / "metrics.json").unlink()
    assert main(argv) == 0
    assert "generation 1: resuming" in capsys.readouterr().out
    assert json.loads((root / "metrics.json").read_text())["generations"][1]["generation"] == 1
    capsys.readouterr()

    # The same name with other models or settings would reuse generations trained otherwise: refused, untouched.
    before = (root / "run.yaml").read_bytes()
    other = [a if a != "resnet18" else "resnet34" for a in argv]
    assert main(other) == 2
    err = capsys.readouterr().err
    assert "--students resnet34 (the run: resnet18)" in err and "--teacher-model resnet34" in err
    assert (root / "run.yaml").read_bytes() == before


def test_noisy_student_needs_one_teacher(image_folder, tmp_path, capsys):
    assert main(["train", "noisy-student", "--data", str(image_folder), *FAST, "--out", str(tmp_path),
                 "--unlabeled", str(image_folder)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--teacher CKPT or --teacher-model NAME" in err[0]


def test_noisy_student_refuses_model_rather_than_ignoring_it(image_folder, tmp_path, capsys):
    assert main(["train", "noisy-student", "--data", str(image_folder), *FAST, "--out", str(tmp_path),
                 "--unlabeled", str(image_folder), "--teacher-model", "resnet18", "--model", "resnet34"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not --model" in err[0]
