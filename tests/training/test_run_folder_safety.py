"""A run's name stays inside --out, and a refused or failed command changes no file of an existing run."""
import hashlib
import shutil
from pathlib import Path

import pytest

from backbonekit.cli import main

ARGS = ["--model", "resnet18", "--image-size", "16", "--batch-size", "4", "--epochs", "1", "--progress", "lines",
        "--limit-train-batches", "1", "--limit-val-batches", "1"]


def _snapshot(folder: Path) -> dict:
    """Every file and folder under ``folder``: its bytes' hash and its modification time."""
    return {str(p.relative_to(folder)): (hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir",
                                         p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*"))}


@pytest.mark.parametrize("name", ["../../escape", "a/b", "..", "", "/tmp/abs"])
def test_a_name_that_is_not_one_folder_inside_out_is_refused(name, tmp_path, capsys):
    out = tmp_path / "deep" / "runs"
    assert main(["train", "classify", "--data", "digits", *ARGS, "--out", str(out), "--name", name]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: --name") and "one folder name inside --out" in err[0]
    assert not any(tmp_path.rglob("*"))  # nothing was created, inside --out or beside it


@pytest.fixture
def old_run(image_folder, tmp_path):
    out = tmp_path / "runs"
    assert main(["train", "classify", "--data", str(image_folder), *ARGS, "--out", str(out), "--name", "r"]) == 0
    return out / "classify" / "r"


def test_exist_ok_on_a_run_that_fails_leaves_the_old_run_as_it_was(old_run, image_folder, tmp_path, capsys):
    bad = tmp_path / "bad"
    shutil.copytree(image_folder, bad)
    for image in sorted(bad.rglob("*.png")):
        image.write_bytes(b"not an image")  # every image: whichever the first batch draws, it fails on one
    before = _snapshot(old_run)
    assert main(["train", "classify", "--data", str(bad), *ARGS, "--out", str(old_run.parent.parent), "--name", "r",
                 "--exist-ok"]) != 0
    err = capsys.readouterr().err
    assert "not an image" in err or ".png" in err
    assert _snapshot(old_run) == before
    assert sorted(p.name for p in old_run.parent.iterdir()) == ["r"]  # nothing left beside it


def _start(tmp_path, train):
    from backbonekit.training.run_record import start_training
    from backbonekit.training.settings import TrainSettings

    args = TrainSettings(out=str(tmp_path / "runs"), name="r", exist_ok=True, epochs=3, options={"data": "digits"})
    return start_training(args, "train classify", "classify", train)


def _fake_old_run(tmp_path) -> Path:
    run = tmp_path / "runs" / "classify" / "r"
    (run / "eval").mkdir(parents=True)
    for name, data in {"last.ckpt": b"old state", "best.onnx": b"old export", "eval/metrics.json": b"{}"}.items():
        (run / name).write_bytes(data)
    return run


@pytest.mark.parametrize("stop", [KeyboardInterrupt(), SystemExit(1), RuntimeError("boom")],
                         ids=["Ctrl+C", "Lightning exit", "exception"])
def test_exist_ok_keeps_the_old_run_until_the_new_one_saves_a_checkpoint(stop, tmp_path, capsys):
    run = _fake_old_run(tmp_path)
    before = _snapshot(run)

    def fails_before_its_first_checkpoint(args):
        assert not (run / "last.ckpt").exists() and (run / "run.yaml").is_file()  # the new run is in its place
        (run / "results.csv").write_text("epoch\n")
        raise stop

    try:
        _start(tmp_path, fails_before_its_first_checkpoint)
    except RuntimeError:
        pass
    assert _snapshot(run) == before and "is back as it was" in capsys.readouterr().err
    assert sorted(p.name for p in run.parent.iterdir()) == ["r"]

    def fails_after_its_first_checkpoint(args):
        (run / "last.ckpt").write_bytes(b"new state")
        raise stop

    try:
        _start(tmp_path, fails_after_its_first_checkpoint)
    except RuntimeError:
        pass
    # The new run can be resumed: it replaced the old one.
    assert (run / "last.ckpt").read_bytes() == b"new state" and not (run / "best.onnx").exists()
    assert sorted(p.name for p in run.parent.iterdir()) == ["r"]


def test_a_run_set_aside_by_a_killed_command_is_never_overwritten(tmp_path, capsys):
    run = _fake_old_run(tmp_path)
    aside = run.parent / ".r.replaced"
    aside.mkdir()
    assert main(["train", "classify", "--data", "digits", *ARGS, "--out", str(tmp_path / "runs"), "--name", "r",
                 "--exist-ok"]) == 2
    assert str(aside) in capsys.readouterr().err and (run / "last.ckpt").is_file()


@pytest.mark.parametrize("task", ["classify", "detect", "sequence"])
def test_predict_with_a_missing_image_changes_no_file_of_the_run(task, tiny_runs, tmp_path, capsys):
    run = tiny_runs[task]
    before = _snapshot(run)
    out = ["--out", str(tmp_path / "pred")] if task == "detect" else []
    assert main(["predict", task, "--checkpoint", str(run / "best.ckpt"), str(tmp_path / "missing.png"),
                 "--runtime", "onnxruntime", *out]) == 2
    assert "missing.png: no such file or folder" in capsys.readouterr().err
    assert _snapshot(run) == before  # no best.onnx exported for a command that could not run
