"""The Python API runs the commands: ``bk.train`` is ``backbonekit train`` (same record, same numbers), its errors
are one-line exceptions."""
import csv

import pytest
import yaml

import backbonekit as bk
from backbonekit.cli import main
from backbonekit.errors import BackbonekitError, ConfigError

FAST = dict(model="resnet18", image_size=16, epochs=1, batch_size=16, limit_train_batches=2, limit_val_batches=1,
            progress="lines")


def _first_loss(run_dir):
    with open(run_dir / "results.csv") as f:
        return float(next(csv.DictReader(f))["train/loss"])


def test_train_in_python_is_the_command_line(tmp_path):
    flags = [w for k, v in FAST.items() for w in (f"--{k.replace('_', '-')}", str(v))]
    assert main(["train", "classify", "--data", "digits", *flags, "--out", str(tmp_path / "cli"), "--name", "r"]) == 0
    run = bk.train("classify", data="digits", **FAST, out=tmp_path / "api", name="r")
    cli = tmp_path / "cli" / "classify" / "r"
    assert run.folder == tmp_path / "api" / "classify" / "r" and run.exit_code == 0
    recorded = yaml.safe_load((cli / "run.yaml").read_text())
    assert {**run.record, "started": None} == {**recorded, "started": None}  # every setting, the command, version
    assert _first_loss(run.folder) == _first_loss(cli)
    assert run.metrics["best"]["val/top1"] == pytest.approx(
        __import__("json").loads((cli / "metrics.json").read_text())["best"]["val/top1"])
    assert run.best_checkpoint == run.folder / "best.ckpt"
    trained = run.load()
    assert trained.cfg.model == "resnet18" and trained.cfg.optim.epochs == 1 and not trained.training


def test_a_typo_is_one_error_naming_the_close_match(tmp_path):
    with pytest.raises(ConfigError, match=r"^bk.train\(\): unknown setting 'batchsize'; did you mean 'batch_size'\?$"):
        bk.train("classify", data="digits", batchsize=8, out=tmp_path)
    with pytest.raises(ConfigError, match="unknown task 'clasify': did you mean 'classify'"):
        bk.train("clasify", data="digits")
    assert not (tmp_path / "classify").exists()


def test_wrong_values_are_the_commands_errors_not_system_exit(tmp_path):
    with pytest.raises(ConfigError, match=r"lr: expected a number, got \"fast\""):
        bk.train("classify", data="digits", lr="fast", out=tmp_path)
    with pytest.raises(BackbonekitError, match="--epochs must be at least 1"):
        bk.train("classify", data="digits", epochs=0, out=tmp_path)
    with pytest.raises(ConfigError, match=r"optimizer: expected one of sgd, adamw, got \"adam\""):
        bk.train("detect", data=str(tmp_path), optimizer="adam", out=tmp_path)
    with pytest.raises(ConfigError, match="^the following arguments are required: --unlabeled$"):
        bk.train("noisy-student", data="digits", out=tmp_path)  # argparse's own error, caught


def test_old_names_are_read_with_a_warning(capsys):
    from backbonekit.api import _checked_names, _command_parser
    from backbonekit.cli import build_parser
    from backbonekit.io.config_file import config_tokens

    parser = _command_parser(build_parser(), ["train", "sequence"], "train")
    settings = _checked_names(parser, {"frozen_bn": True, "batch-size": 4, "lr": 1e-3, "backbone_lr": 2e-4},
                              "bk.train()")
    assert settings == {"frozen_bn": True, "batch_size": 4, "lr": 1e-3, "backbone_lr": 2e-4}
    tokens = config_tokens(settings, parser, "bk.train()")
    assert tokens[tokens.index("--backbone-lr-mult") + 1] == "0.2" and "--freeze-bn" in tokens
    err = capsys.readouterr().err
    assert "frozen_bn is an old key, use freeze_bn" in err and "backbone_lr is an old key, use backbone_lr_mult" in err


def test_the_api_names_load_lazily():
    import subprocess
    import sys

    code = "import sys, backbonekit as bk; bk.Run; assert 'torch' not in sys.modules, 'torch imported'"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
