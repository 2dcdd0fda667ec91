"""Data-parallel training with 2 CPU processes through the command line (Lightning's DDP, gloo backend)."""
import json
import math
import os
import subprocess
import sys

import pytest

from backbonekit.training.checkpoint_io import load_checkpoint_file

DDP = ["--devices", "2", "--accelerator", "cpu", "--strategy", "ddp", "--progress", "lines"]


def _run(args: list[str]) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("LOCAL_RANK", "WORLD_SIZE", "RANK")}
    proc = subprocess.run([sys.executable, "-m", "backbonekit.cli", *args, *DDP], capture_output=True, text=True,
                          timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc


def test_ddp_two_cpu_processes(image_folder, tmp_path):
    out = tmp_path / "runs"
    proc = _run(["train", "classify", "--data", str(image_folder), "--model", "resnet18", "--image-size", "32",
                 "--batch-size", "4", "--epochs", "1", "--val-ratio", "0.34", "--out", str(out), "--name", "ddp"])
    run = out / "classify" / "ddp"
    assert sorted(p.name for p in (out / "classify").iterdir()) == ["ddp"]  # both ranks used one folder
    assert proc.stdout.count("epoch 1/1") == 1  # only rank 0 logs
    ckpt = load_checkpoint_file(run / "last.ckpt")
    # 11 training images over 2 processes with batch 4: each rank sees 6 (padded) → 2 steps per epoch.
    assert ckpt["global_step"] == 2
    assert json.loads((run / "metrics.json").read_text())["epochs_done"] == 1


@pytest.mark.slow
def test_ddp_detect_two_cpu_processes(tmp_path):
    from backbonekit.detection.synth import synthesize_shapes

    data = tmp_path / "shapes"
    synthesize_shapes(data, "coco", num_images=12, seed=0, image_size=(64, 64))
    out = tmp_path / "runs"
    proc = _run(["train", "detect", "--data", str(data), "--image-size", "64", "--epochs", "1", "--batch-size", "2",
                 "--val-ratio", "0.34", "--warmup-epochs", "0", "--out", str(out), "--name", "ddp"])
    run = out / "detect" / "ddp"
    assert sorted(p.name for p in (out / "detect").iterdir()) == ["ddp"]
    assert proc.stdout.count("epoch 1/1") == 1
    # 8 training images over 2 processes with batch 2: 4 each → 2 steps per epoch (one rank's count).
    assert load_checkpoint_file(run / "last.ckpt")["global_step"] == 2
    summary = json.loads((run / "metrics.json").read_text())
    assert summary["epochs_done"] == 1 and "best_checkpoint_val" in summary  # rank 0 scored the best checkpoint
    assert (run / "best.safetensors").is_file()


@pytest.mark.slow
def test_ddp_sequence_two_cpu_processes(tmp_path):
    from backbonekit.sequence.synth import synthesize_seqdeepfake

    data = tmp_path / "seqfake"
    synthesize_seqdeepfake(data, "facial_components", num_images=24, seed=0, image_size=64)
    out = tmp_path / "runs"
    proc = _run(["train", "sequence", "--data", str(data), "--backbone", "resnet18", "--image-size", "64",
                 "--epochs", "1", "--batch-size", "4", "--out", str(out), "--name", "ddp"])
    run = out / "sequence" / "ddp"
    assert sorted(p.name for p in (out / "sequence").iterdir()) == ["ddp"]
    assert proc.stdout.count("epoch 1/1") == 1
    # The synthetic train split (its size in hparams.yaml) over 2 processes, each its padded half, at batch 4.
    train_images = int((run / "hparams.yaml").read_text().split("train: ")[1].split()[0])
    assert load_checkpoint_file(run / "last.ckpt")["global_step"] == math.ceil(math.ceil(train_images / 2) / 4)
    assert json.loads((run / "metrics.json").read_text())["epochs_done"] == 1
    assert (run / "best.safetensors").is_file() and (run / "val" / "metrics.json").is_file()
