"""The task interface: a task registered from the tests folder (tests/toy_task, no edit anywhere else) gets train,
eval, predict and export through the real CLI, in-process and as an installed distribution's entry point from the
shell; the built-in tasks are listed in one place."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from backbonekit.cli import main

TOY = Path(__file__).parents[1] / "toy_task"


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
    scored = json.loads((run / "eval" / "val" / "metrics.json").read_text())
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


def _install(site: Path, entry_points: str) -> dict:
    """The toy task installed as pip installs a distribution into a folder (``pip install --target``): its package
    and a ``.dist-info`` with METADATA and entry_points.txt, which importlib.metadata reads as in site-packages. The
    environment puts only that folder on the path (tests/ is not: the task is found through its entry point)."""
    shutil.copytree(TOY, site / "toy_task", ignore=shutil.ignore_patterns("__pycache__"))
    info = site / "backbonekit_toy-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: backbonekit-toy\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[backbonekit.tasks]\n" + entry_points)
    return {**os.environ, "PYTHONPATH": str(site)}


def _shell(*argv: str, env: dict, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *argv], env=env, cwd=cwd, capture_output=True, text=True, timeout=300)


def test_an_installed_task_runs_train_eval_predict_from_the_shell(tmp_path, toy):
    env = _install(tmp_path / "site", "toy = toy_task.spec:SPEC\n")
    cli = ("-m", "backbonekit")
    done = _shell(*cli, "train", "toy", "--data", "24", "--epochs", "1", "--progress", "lines", env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    run = tmp_path / "runs" / "toy" / "exp"
    assert (run / "best.safetensors").is_file() and "warning" not in done.stderr

    done = _shell(*cli, "eval", "toy", "--checkpoint", str(run / "best.ckpt"), env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert json.loads((run / "eval" / "val" / "metrics.json").read_text())["images"] == 6

    done = _shell(*cli, "predict", "toy", "--checkpoint", str(run / "best.safetensors"), "--count", "3", env=env,
                  cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    assert len(rows) == 3 and all(row["channel"] in "RGB" for row in rows)

    # Its own checkpoint is what its --pretrained takes (the start-weights check read three task names and took a
    # fourth for a classifier), and a classifier's run refuses it naming the task the file records.
    from backbonekit.cli import parse
    from backbonekit.errors import ConfigError
    from backbonekit.training.preflight import check_train_settings

    args = parse(["train", "toy", "--data", "24", "--out", str(tmp_path / "more")])
    args.pretrained = str(run / "best.ckpt")
    check_train_settings(args, "train toy")
    with pytest.raises(ConfigError, match="a toy checkpoint; `train classify` takes a classify model's weights"):
        check_train_settings(args, "train classify")


def test_a_broken_entry_point_is_one_warning_and_the_other_tasks_work(tmp_path):
    """Listing the tasks reads every entry point but imports only spec modules: `--help` stays free of torch."""
    site = tmp_path / "site"
    env = _install(site, "toy = toy_task.spec:SPEC\nbroken = toy_task.no_such_module:SPEC\n"
                         "wrong = toy_task.spec:add_commands\nclassify = toy_task.impostor:SPEC\n"
                         "named = toy_task.spec:SPEC\n")
    # A plug-in that registers a task of a built-in's name as it is imported (as spec modules register theirs).
    (site / "toy_task" / "impostor.py").write_text(
        "from backbonekit.training.task_spec import TaskSpec, register_task\n"
        "from toy_task.spec import add_commands, load, task_class\n"
        "SPEC = register_task(TaskSpec('classify', __name__, add_commands, task_class, load))\n")
    code = ("import sys; from backbonekit.cli import main; code = main(['train', '--help']); "
            "print('imported:', *[m for m in ('toy_task.spec', 'torch', 'lightning') if m in sys.modules], "
            "file=sys.stderr); sys.exit(code)")
    done = _shell("-c", code, env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert all(word in done.stdout for word in ("classify", "detect", "sequence", "toy"))
    *warnings, imported = done.stderr.splitlines()
    assert imported == "imported: toy_task.spec"
    assert len(warnings) == 4, warnings
    for line, point, why in zip(warnings, ("broken", "wrong", "classify", "named"),
                                ("(ModuleNotFoundError: No module named 'toy_task.no_such_module')",
                                 "is a function, not a TaskSpec", "would replace the built-in task 'classify'",
                                 "names the task 'toy': the entry point's name must be the task's")):
        assert line.startswith(f"warning: backbonekit-toy's entry point {point} = ") and why in line, line
    # The built-in task the plug-in tried to replace is still the built-in one, and works from the shell.
    done = _shell("-m", "backbonekit", "train", "classify", "--help", env=env, cwd=tmp_path)
    assert done.returncode == 0 and "--model" in done.stdout and done.stderr.count("warning:") == 4


def test_a_trial_process_finds_an_entry_point_spec_that_does_not_register_itself(tmp_path, monkeypatch):
    """A `--batch-size auto` trial starts with an empty registry and finds its task from the spec module: one named
    by an entry point only defines its TaskSpec (the entry point's reader registered it in the parent)."""
    from backbonekit.training.task_spec import registered, resolve, unregister_task

    before = set(registered())
    (tmp_path / "quiet_spec.py").write_text(
        "from backbonekit.training.task_spec import TaskSpec\n"
        "from toy_task.spec import add_commands, load, task_class\n"
        "SPEC = TaskSpec('quiet', __name__, add_commands, task_class, load)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        assert resolve("quiet_spec", "quiet").module == "quiet_spec"
    finally:
        for name in set(registered()) - before:  # importing toy_task.spec registers it: leave the registry as it was
            unregister_task(name)
