"""The task interface: a task registered from the tests folder (tests/toy_task, no edit anywhere else) gets train,
eval, predict and export through the real CLI; the built-in tasks are listed in one place."""
import json

import pytest

from backbonekit.cli import main


@pytest.fixture
def toy():
    from backbonekit.training.task_spec import register_task, unregister_task
    import toy_task.spec

    yield register_task(toy_task.spec.SPEC)
    unregister_task("toy")


def test_a_task_from_outside_the_package_runs_every_verb(toy, tmp_path, capsys):
    out = tmp_path / "runs"
    assert main(["train", "toy", "--data", "48", "--epochs", "3", "--out", str(out), "--progress", "lines"]) == 0
    run = out / "toy" / "exp"
    for name in ("run.yaml", "hparams.yaml", "best.ckpt", "last.ckpt", "best.safetensors", "metrics.json"):
        assert (run / name).is_file(), name
    capsys.readouterr()

    assert main(["eval", "toy", "--checkpoint", str(run / "best.ckpt")]) == 0
    assert "the run's own validation data" in capsys.readouterr().out
    scored = json.loads((run / "eval" / "metrics.json").read_text())
    assert scored["images"] == 12 and scored["accuracy_percent"] > 50  # brightest channel: learnable in 3 epochs

    assert main(["predict", "toy", "--checkpoint", str(run / "best.safetensors"), "--count", "3"]) == 0
    assert [json.loads(line)["channel"] for line in capsys.readouterr().out.splitlines()] == ["R", "G", "B"]

    assert main(["export", "--checkpoint", str(run / "best.ckpt"), "--out", str(tmp_path / "toy.onnx")]) == 0
    printed = capsys.readouterr().out
    assert "toy: brightest channel" in printed and "warning" not in printed and (tmp_path / "toy.onnx").is_file()

    # The run record and resume work for it as for every task.
    assert main(["train", "toy", "--resume", str(run), "--epochs", "4", "--progress", "lines"]) == 0
    assert json.loads((run / "metrics.json").read_text())["epochs_done"] == 4


def test_the_builtin_tasks_are_listed_once_and_read_everywhere():
    from backbonekit.cli import build_parser
    from backbonekit.io.config_file import subparser
    from backbonekit.tasks import BUILTIN, all_tasks

    assert set(all_tasks()) >= {"classify", "detect", "sequence"} and len(BUILTIN) == 3
    parser = build_parser()
    for name in ("classify", "detect", "sequence"):
        for verb in ("train", "eval", "predict"):
            assert subparser(parser, [verb, name]) is not None


def test_one_read_of_the_checkpoint_per_export_and_predict(tmp_path, monkeypatch, toy, capsys):
    import backbonekit.training.task_io as task_io
    from backbonekit.training import checkpoint_io

    out = tmp_path / "runs"
    assert main(["train", "toy", "--data", "24", "--epochs", "1", "--out", str(out), "--progress", "lines"]) == 0
    best = out / "toy" / "exp" / "best.ckpt"
    reads = []
    real = checkpoint_io.load_checkpoint_file

    def counting(path, *a, **kw):
        reads.append(path)
        return real(path, *a, **kw)

    monkeypatch.setattr(task_io, "load_checkpoint_file", counting)
    assert main(["export", "--checkpoint", str(best), "--out", str(tmp_path / "t.onnx")]) == 0
    assert len(reads) == 1
    reads.clear()
    assert main(["predict", "toy", "--checkpoint", str(best)]) == 0
    assert len(reads) == 1
