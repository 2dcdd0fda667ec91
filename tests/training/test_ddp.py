"""Data-parallel training with 2 CPU processes through the command line (Lightning's DDP, gloo backend)."""
import json
import os
import subprocess
import sys

from backbonekit.training.checkpoint_io import load_checkpoint_file


def test_ddp_two_cpu_processes(image_folder, tmp_path):
    out = tmp_path / "runs"
    cmd = [sys.executable, "-m", "backbonekit.cli", "train", "classify", "--data", str(image_folder),
           "--model", "resnet18", "--image-size", "32", "--batch-size", "4", "--epochs", "1", "--val-ratio", "0.34",
           "--devices", "2", "--accelerator", "cpu", "--strategy", "ddp", "--progress", "lines",
           "--out", str(out), "--name", "ddp"]
    env = {k: v for k, v in os.environ.items() if k not in ("LOCAL_RANK", "WORLD_SIZE", "RANK")}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    run = out / "classify" / "ddp"
    assert sorted(p.name for p in (out / "classify").iterdir()) == ["ddp"]  # both ranks used one folder
    assert proc.stdout.count("epoch 1/1") == 1  # only rank 0 logs
    ckpt = load_checkpoint_file(run / "last.ckpt")
    # 11 training images over 2 processes with batch 4: each rank sees 6 (padded) → 2 steps per epoch.
    assert ckpt["global_step"] == 2
    assert json.loads((run / "metrics.json").read_text())["epochs_done"] == 1
