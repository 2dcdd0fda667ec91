"""A run is a record: run.yaml written once, names never overwritten, resume and eval that remember the run."""
import json
import shutil
from pathlib import Path

import pytest
import yaml

from backbonekit.cli import main

# A tiny AdamW run: the README's resume example once rebuilt SGD for such a run (KeyError: 'momentum').
ARGS = ["--model", "resnet18", "--image-size", "32", "--batch-size", "8", "--optimizer", "adamw", "--lr", "1e-3",
        "--scheduler", "step", "--step-size", "1", "--progress", "lines", "--val-ratio", "0.5", "--seed", "3"]


def _train(data, out, *extra):
    return main(["train", "classify", "--data", str(data), *ARGS, "--out", str(out), *extra])


def _snapshot(run: Path) -> dict:
    return {p.name: p.read_bytes() for p in sorted(run.iterdir()) if p.is_file()}


@pytest.fixture
def finished_run(image_folder, tmp_path):
    """A finished one-epoch AdamW run named r."""
    assert _train(image_folder, tmp_path / "runs", "--epochs", "1", "--name", "r") == 0
    return tmp_path / "runs" / "classify" / "r"


def test_the_record_holds_every_setting_with_absolute_paths(finished_run, image_folder):
    record = yaml.safe_load((finished_run / "run.yaml").read_text())
    assert record["command"] == "train classify" and record["backbonekit"]
    settings = record["settings"]
    assert settings["data"] == str(image_folder.resolve())
    assert (settings["optimizer"], settings["lr"], settings["val_ratio"], settings["seed"]) == ("adamw", 1e-3, 0.5, 3)
    assert "name" not in settings and "resume" not in settings and "func" not in settings


def test_a_name_that_exists_is_refused_and_nothing_is_touched(finished_run, image_folder, capsys):
    before = _snapshot(finished_run)
    assert _train(image_folder, finished_run.parent.parent, "--epochs", "1", "--name", "r", "--lr", "0.1") == 2
    err = capsys.readouterr().err
    assert "exists" in err and "--exist-ok" in err and "--resume" in err
    assert _snapshot(finished_run) == before


def test_exist_ok_replaces_the_whole_folder(finished_run, image_folder):
    (finished_run / "best.onnx").write_text("stale")
    assert _train(image_folder, finished_run.parent.parent, "--epochs", "1", "--name", "r", "--exist-ok") == 0
    assert not (finished_run / "best.onnx").exists() and (finished_run / "best.ckpt").is_file()


def test_unnamed_runs_number_themselves(image_folder, tmp_path):
    for _ in range(2):
        assert _train(image_folder, tmp_path / "runs", "--epochs", "1") == 0
    assert sorted(p.name for p in (tmp_path / "runs" / "classify").iterdir()) == ["exp", "exp2"]


def test_resume_from_the_folder_alone_restores_an_adamw_run(finished_run, capsys):
    record = (finished_run / "run.yaml").read_bytes()
    hparams = (finished_run / "hparams.yaml").read_bytes()
    # Only the folder and a raised --epochs: model, data, optimiser, split and seed come from the record.
    assert main(["train", "classify", "--resume", str(finished_run), "--epochs", "2", "--progress", "lines"]) == 0
    assert "resuming" in capsys.readouterr().err
    assert (finished_run / "run.yaml").read_bytes() == record and (finished_run / "hparams.yaml").read_bytes() == hparams
    assert json.loads((finished_run / "metrics.json").read_text())["epochs_done"] == 2
    rows = (finished_run / "results.csv").read_text().splitlines()[1:]
    assert [r.split(",")[0] for r in rows] == ["1", "2"]  # epochs counted from 1, as on the console
    assert yaml.safe_load((finished_run / "resumes.yaml").read_text())[-1]["epochs"] == 2


def test_a_conflicting_resume_is_refused_without_touching_the_record(finished_run, capsys):
    before = _snapshot(finished_run)
    assert main(["train", "classify", "--resume", str(finished_run / "last.ckpt"), "--epochs", "2",
                 "--model", "resnet34", "--optimizer", "sgd"]) == 2
    err = capsys.readouterr().err
    assert "--model resnet34 (the run: resnet18)" in err and "--optimizer sgd (the run: adamw)" in err
    assert _snapshot(finished_run) == before
    assert main(["train", "classify", "--resume", str(finished_run), "--epochs", "0"]) == 2
    assert "--epochs must be at least 1, got 0" in capsys.readouterr().err  # the range check, before the record
    assert _snapshot(finished_run) == before


def test_a_resume_to_fewer_epochs_than_the_run_is_refused(finished_run, tmp_path, capsys):
    run = tmp_path / "raised"
    shutil.copytree(finished_run, run)
    (run / "resumes.yaml").write_text(yaml.safe_dump([{"epochs": 3}]))  # an earlier resume raised it to 3
    before = _snapshot(run)
    assert main(["train", "classify", "--resume", str(run), "--epochs", "2"]) == 2
    assert "--epochs 2 is fewer than the run's 3" in capsys.readouterr().err
    assert _snapshot(run) == before


def test_a_finished_run_says_so_and_changes_nothing(finished_run, capsys):
    before = _snapshot(finished_run)
    assert main(["train", "classify", "--resume", str(finished_run), "--progress", "lines"]) == 0
    assert "finished all 1 epochs" in capsys.readouterr().err
    assert _snapshot(finished_run) == before


def test_resume_of_another_task_or_of_nothing_is_refused(finished_run, tmp_path, capsys):
    assert main(["train", "detect", "--resume", str(finished_run)]) == 2
    assert "a `train classify` run, not `train detect`" in capsys.readouterr().err
    assert main(["train", "classify", "--resume", str(tmp_path / "nowhere")]) == 2
    assert "no such run folder" in capsys.readouterr().err


def test_a_run_that_fails_before_its_first_epoch_leaves_nothing(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["train", "classify", "--data", str(empty), *ARGS, "--out", str(tmp_path / "runs"),
                 "--name", "bad"]) == 2
    assert "error:" in capsys.readouterr().err
    assert not (tmp_path / "runs" / "classify" / "bad").exists()


def test_eval_scores_the_runs_own_split_from_its_record(finished_run, image_folder, capsys):
    hparams = yaml.safe_load((finished_run / "hparams.yaml").read_text())
    assert main(["eval", "classify", "--checkpoint", str(finished_run / "best.ckpt")]) == 0
    assert "the run's own validation data" in capsys.readouterr().out
    scored = json.loads((finished_run / "eval" / "val" / "metrics.json").read_text())
    # 18 images at val-ratio 0.5: 9 held out (the default 0.2 would score 4, some of them training images).
    assert scored["images"] == hparams["data"]["val"] == 9 and (scored["val_ratio"], scored["seed"]) == (0.5, 3)
    other = image_folder.parent / "copy"
    shutil.copytree(image_folder, other)
    assert main(["eval", "classify", "--checkpoint", str(finished_run / "best.ckpt"), "--data", str(other)]) == 0
    assert "other data (--data)" in capsys.readouterr().out


def test_the_runs_own_record_reproduces_it_as_a_config_file(finished_run, image_folder, tmp_path):
    assert main(["train", "classify", "--config", str(finished_run / "run.yaml"), "--out", str(tmp_path / "runs"),
                 "--name", "again"]) == 0
    again = yaml.safe_load((tmp_path / "runs" / "classify" / "again" / "run.yaml").read_text())["settings"]
    assert again == yaml.safe_load((finished_run / "run.yaml").read_text())["settings"]


def test_scores_are_percent_everywhere_and_say_so(finished_run, capsys):
    import csv

    row = next(csv.DictReader(open(finished_run / "results.csv")))
    top1 = float(row["val/top1"])
    assert top1 * 9 / 100 == pytest.approx(round(top1 * 9 / 100), abs=1e-4)  # k of 9 images, in percent
    summary = json.loads((finished_run / "metrics.json").read_text())
    assert "percent" in summary["unit"] and summary["best"]["val/top1"] == pytest.approx(top1)
    assert main(["eval", "classify", "--checkpoint", str(finished_run / "best.ckpt")]) == 0
    out = capsys.readouterr().out
    assert f"top-1 {top1:.2f}%" in out and "top-5" not in out  # 3 classes: top-5 would always be 100%
    assert json.loads((finished_run / "eval" / "val" / "metrics.json").read_text())["unit"] == "percent"


@pytest.mark.parametrize("stop", [KeyboardInterrupt(), SystemExit(1)], ids=["KeyboardInterrupt", "Lightning exit"])
def test_a_second_ctrl_c_says_what_was_and_was_not_saved(stop, tmp_path, capsys):
    # A second Ctrl+C stops at once; inside fit Lightning turns it into sys.exit(1).
    from backbonekit.training.run_record import start_training
    from backbonekit.training.settings import TrainSettings

    def args():
        return TrainSettings(out=str(tmp_path / "runs"), name="r", epochs=3, options={"data": "digits"})

    def train_then_stop(saved_epochs):
        def train(a):
            run = tmp_path / "runs" / "classify" / "r"
            if saved_epochs:
                (run / "last.ckpt").write_bytes(b"state")
                (run / "results.csv").write_text("epoch,loss\n" + "".join(f"{e},1\n" for e in range(saved_epochs)))
            raise stop
        return train

    assert start_training(args(), "train classify", "classify", train_then_stop(0)) == 130
    err = capsys.readouterr().err
    assert "no epoch had finished, so nothing was saved" in err and not (tmp_path / "runs").exists()
    assert start_training(args(), "train classify", "classify", train_then_stop(2)) == 130
    err = capsys.readouterr().err
    run = tmp_path / "runs" / "classify" / "r"
    assert f"{run / 'last.ckpt'} holds epoch 2; the batches trained since were not saved" in err
    assert f"backbonekit train classify --resume {run}" in err and (run / "last.ckpt").is_file()
