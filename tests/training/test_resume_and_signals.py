"""Exact resume and clean stops: the properties that make long runs safe."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

from backbonekit.cli import main
from backbonekit.training.checkpoint_io import atomic_torch_save, load_checkpoint_file

# A step schedule does not depend on the total number of epochs, so a 1-epoch run is the first half of a 2-epoch one.
ARGS = ["--model", "resnet18", "--image-size", "32", "--batch-size", "8", "--optimizer", "adamw", "--lr", "1e-3",
        "--scheduler", "step", "--step-size", "1", "--augment", "basic", "--deterministic", "--progress", "lines",
        "--seed", "3"]


def _weights(path):
    return load_checkpoint_file(path)["state_dict"]


def test_two_epochs_equal_one_plus_resume_plus_one(image_folder, tmp_path):
    out = str(tmp_path / "runs")
    data = ["--data", str(image_folder)]
    assert main(["train", "classify", *data, *ARGS, "--epochs", "2", "--out", out, "--name", "straight"]) == 0
    assert main(["train", "classify", *data, *ARGS, "--epochs", "1", "--out", out, "--name", "split"]) == 0
    split_last = Path(out) / "classify" / "split" / "last.ckpt"
    assert main(["train", "classify", *data, *ARGS, "--epochs", "2", "--out", out, "--resume", str(split_last)]) == 0
    a, b = _weights(Path(out) / "classify" / "straight" / "last.ckpt"), _weights(split_last)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a), [k for k in a if not torch.equal(a[k], b[k])][:5]
    rows = (Path(out) / "classify" / "split" / "results.csv").read_text().splitlines()
    assert [r.split(",")[0] for r in rows[1:]] == ["1", "2"]  # the resumed run continued the same log


def test_resume_changes_something_when_the_rng_is_not_restored(image_folder, tmp_path):
    # The test above could pass vacuously if training were insensitive to randomness; it is not.
    out = str(tmp_path / "runs")
    data = ["--data", str(image_folder)]
    assert main(["train", "classify", *data, *ARGS, "--epochs", "1", "--out", out, "--name", "a"]) == 0
    args = [a if a != "3" else "4" for a in ARGS]
    assert main(["train", "classify", *data, *args, "--epochs", "1", "--out", out, "--name", "b"]) == 0
    a, b = _weights(Path(out) / "classify" / "a" / "last.ckpt"), _weights(Path(out) / "classify" / "b" / "last.ckpt")
    assert not all(torch.equal(a[k], b[k]) for k in a)


def test_sigterm_saves_last_checkpoint_and_the_run_resumes(tmp_path):
    from data_writers import write_image_folder

    data = write_image_folder(tmp_path / "d", per_class=12, size=32)
    out = tmp_path / "runs"
    cmd = [sys.executable, "-m", "backbonekit.cli", "train", "classify", "--data", str(data), *ARGS,
           "--batch-size", "4", "--epochs", "5", "--out", str(out), "--name", "s"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    # Wait until training is under way (the first epoch line), then ask it to stop.
    deadline = time.time() + 120
    for line in proc.stdout:
        if line.startswith("epoch 1/5") or time.time() > deadline:
            break
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "Traceback" not in err and "stopped by SIGTERM" in err
    last = out / "classify" / "s" / "last.ckpt"
    state = load_checkpoint_file(last)
    assert 1 <= state["epoch"] < 5
    # The run's folder alone: every setting comes from its record.
    assert main(["train", "classify", "--resume", str(last.parent), "--progress", "lines"]) == 0
    final = load_checkpoint_file(last)
    assert final["global_step"] > state["global_step"]  # it continued from the interrupted step
    rows = (out / "classify" / "s" / "results.csv").read_text().splitlines()[1:]
    assert [int(r.split(",")[0]) for r in rows] == list(range(1, 6))  # every epoch logged once


def test_atomic_save_keeps_the_old_file_when_writing_fails(tmp_path):
    path = tmp_path / "last.ckpt"
    atomic_torch_save({"step": 1}, path)

    class Unsaveable:
        def __reduce__(self):
            raise RuntimeError("disk full")

    try:
        atomic_torch_save({"step": 2, "bad": Unsaveable()}, path)
    except RuntimeError:
        pass
    assert load_checkpoint_file(path) == {"step": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]  # no temporary left behind


def test_a_run_stopped_mid_epoch_resumes_where_it_stopped_exactly(image_folder, tmp_path, monkeypatch, recwarn):
    # 14 training images at batch 4: 4 batches an epoch; the stop comes after the 2nd batch of epoch 1. No random
    # augmentation, so the resumed run must train the same images in the same order as one that never stopped:
    # the same weights, bit for bit, and no Lightning warning that the loader could not be resumed.
    from backbonekit.training.callbacks import GracefulStop

    out = str(tmp_path / "runs")
    args = ["--data", str(image_folder), *[a if a != "basic" else "none" for a in ARGS], "--batch-size", "4",
            "--epochs", "2", "--out", out]
    assert main(["train", "classify", *args, "--name", "straight"]) == 0
    original = GracefulStop.on_train_batch_end

    def stop_once(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.current_epoch == 0 and batch_idx == 1 and self.received is None:
            self.received = signal.SIGTERM
        original(self, trainer, pl_module, outputs, batch, batch_idx)

    monkeypatch.setattr(GracefulStop, "on_train_batch_end", stop_once)
    assert main(["train", "classify", *args, "--name", "stopped"]) == 128 + signal.SIGTERM
    monkeypatch.setattr(GracefulStop, "on_train_batch_end", original)
    stopped = Path(out) / "classify" / "stopped"
    assert load_checkpoint_file(stopped / "last.ckpt")["global_step"] == 2
    assert main(["train", "classify", "--resume", str(stopped), "--progress", "lines"]) == 0
    assert not [w for w in recwarn if "not resumable" in str(w.message)]
    a, b = _weights(Path(out) / "classify" / "straight" / "last.ckpt"), _weights(stopped / "last.ckpt")
    assert all(torch.equal(a[k], b[k]) for k in a), [k for k in a if not torch.equal(a[k], b[k])][:5]
    assert load_checkpoint_file(stopped / "last.ckpt")["global_step"] == 8
