"""Bad settings of a train command: one `error:` line naming the flag, exit 2, before any slow work, nothing left
behind."""
import pytest

from backbonekit.cli import main

CASES = [
    (["train", "classify", "--data", "digits", "--model", "efficientdet_d0"],
     "--model efficientdet_d0 is a detect model; `train classify` needs a classify model"),
    (["train", "classify", "--data", "digits", "--model", "seqfakeformer"], "is a sequence model"),
    (["train", "sequence", "--data", ".", "--backbone", "efficientdet_d0"], "--backbone efficientdet_d0 is a detect"),
    (["train", "detect", "--data", ".", "--model", "resnet18"], "needs a detect model here (e.g. efficientdet_d0"),
    (["train", "detect", "--data", ".", "--backbone", "efficientdet_d1"], "--backbone efficientdet_d1 is a detect"),
    (["train", "classify", "--data", "digits", "--epochs", "-1"], "--epochs must be at least 1, got -1"),
    (["train", "classify", "--data", "digits", "--epochs", "0"], "--epochs must be at least 1, got 0"),
    (["train", "classify", "--data", "digits", "--lr", "-1"], "--lr must be positive"),
    (["train", "detect", "--data", ".", "--weight-decay", "-0.1"], "--weight-decay must be at least 0"),
    (["train", "sequence", "--data", ".", "--clip-grad", "-1"], "--clip-grad must be at least 0"),
    (["train", "classify", "--data", "digits", "--batch-size", "0"], "--batch-size must be a positive number or auto"),
    (["train", "classify", "--data", "digits", "--image-size", "0"], "--image-size takes one size or H W of at least 8"),
    (["train", "classify", "--data", "digits", "--accelerator", "gpu", "--devices", "3"], "no CUDA GPU"),
    (["train", "classify", "--data", "digits", "--pretrained", "missing.pth"], "--pretrained missing.pth: no such file"),
    (["train", "detect", "--data", ".", "--pretrained-backbone", "."], "--pretrained-backbone .: a folder"),
    (["train", "classify", "--data", "digits", "--teacher", "gone.ckpt"], "--teacher gone.ckpt: no such file"),
    (["train", "detect", "--data", "nope"], "--data nope: no such file or folder"),
    (["train", "sequence", "--data", "nope"], "--data nope: no such file or folder"),
]
# Numbers that torch would take and fail on deep inside (a traceback), or that would train nothing.
RANGE_CASES = [
    ("classify", "--drop-rate", "2", "[0, 1)"), ("classify", "--drop-rate", "1", "[0, 1)"),
    ("classify", "--drop-path-rate", "2", "[0, 1]"), ("detect", "--drop-path-rate", "-0.1", "[0, 1]"),
    ("classify", "--label-smoothing", "2", "[0, 1)"), ("classify", "--label-smoothing", "1", "[0, 1)"),
    ("classify", "--ema", "1.5", "(0, 1)"), ("sequence", "--ema", "0", "(0, 1)"),
    ("classify", "--memory-fraction", "0", "(0, 1]"), ("classify", "--distill-temperature", "0", "positive"),
    ("classify", "--distill-alpha", "2", "[0, 1]"), ("classify", "--lambda-u", "-1", "at least 0"),
    ("classify", "--unsup-warmup", "2", "[0, 1]"), ("classify", "--cutmix", "-1", "at least 0"),
    ("classify", "--mu", "0", "at least 1"), ("classify", "--lr", "nan", "positive"),
    ("detect", "--lr-steps", "3", "at least 0"), ("classify", "--num-nodes", "0", "at least 1"),
    ("sequence", "--step-size", "0", "at least 1"), ("noisy-student", "--drop-rate", "1.5", "[0, 1)"),
]
CASES += [(["train", task, "--data", ".", flag, value] + (["--lr-steps", "-1"] if flag == "--lr-steps" else [])
           + (["--unlabeled", "."] if task == "noisy-student" else []),
           f"{flag} must be {'in ' * (allowed[0] in '[(')}{allowed}") for task, flag, value, allowed in RANGE_CASES]


@pytest.mark.parametrize("argv, message", CASES, ids=[" ".join(c[0][1:2] + c[0][4:6]) for c in CASES])
def test_bad_setting_is_one_error_line_and_leaves_nothing(argv, message, tmp_path, capsys, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    assert main([*argv, "--out", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and message in err, err
    assert "Traceback" not in err and not (tmp_path / "runs").exists()


def test_out_naming_a_file_is_refused(tmp_path, capsys):
    afile = tmp_path / "afile"
    afile.write_text("")
    assert main(["train", "classify", "--data", "digits", "--out", str(afile)]) == 2
    assert "is a file, not a folder" in capsys.readouterr().err
    for argv in (["data", "synth", "shapes", "--num-images", "2"], ["data", "synth", "seqdeepfake", "--num-images", "3"],
                 ["predict", "detect", "--checkpoint", str(afile), str(tmp_path)]):
        assert main([*argv, "--out", str(afile / "sub")]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: --out") and "is a file, not a folder" in err and err.count("\n") == 1


def test_a_warm_up_longer_than_the_run_is_said(tmp_path, capsys):
    assert main(["train", "classify", "--data", "digits", "--epochs", "1", "--warmup-epochs", "3", "--image-size",
                 "16", "--limit-train-batches", "1", "--limit-val-batches", "1", "--progress", "lines",
                 "--out", str(tmp_path)]) == 0
    assert "--warmup-epochs 3 is longer than the run (1 epochs)" in capsys.readouterr().err


def test_every_float_option_of_a_train_command_has_a_range():
    """A float flag added without a range would reach torch unchecked (as --drop-rate 2 did)."""
    import argparse

    from backbonekit.cli import build_parser
    from backbonekit.io.config_file import subparser
    from backbonekit.training.preflight import RANGES

    checked_elsewhere = {"scale_min", "scale_max", "image_size"}  # a pair; one size or H W: checked on their own
    for task in ("classify", "noisy-student", "detect", "sequence"):
        for action in subparser(build_parser(), ["train", task])._actions:
            if action.type in (float, int) and action.help != argparse.SUPPRESS and action.dest != "seed":
                assert action.dest in RANGES or action.dest in checked_elsewhere, (task, action.dest)


def test_argument_errors_are_answered_before_lightning_is_imported(tmp_path):
    """The cheap checks run first: a typo costs no import of the training stack (it cost ~5 s of CPU)."""
    import subprocess
    import sys

    (tmp_path / "cfg.yaml").write_text("lr: 0.1\n")
    calls = [["train", "classify", "--data", "digits", "--ema", "1.5"],
             ["train", "classify", "--data", "digits", "--pretrained", str(tmp_path / "cfg.yaml")],
             ["train", "classify", "--data", "digits", "--drop-rate", "2"],
             ["train", "noisy-student", "--data", "digits", "--unlabeled", "digits-rest", "--ema", "2"],
             ["train", "detect", "--data", str(tmp_path / "nope")],
             ["train", "sequence", "--data", ".", "--ema", "0"],
             ["train", "classify", "--data", str(tmp_path / "nope")]]
    code = ("import sys; from backbonekit.cli import main\n"
            f"codes = [main(argv + ['--out', {str(tmp_path / 'runs')!r}]) for argv in {calls!r}]\n"
            "print(codes, sorted(m for m in ('lightning', 'torchvision', 'torchmetrics') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.split("\n")[0] == f"{[2] * len(calls)} []", out.stdout + out.stderr
    assert out.stderr.count("error: ") == len(calls) and not (tmp_path / "runs").exists(), out.stderr
