"""Bad settings of a train command: one `error:` line naming the flag, exit 2, before any slow work, nothing left
behind."""
import pytest

from backbonekit.cli import main

CASES = [
    (["train", "classify", "--data", "digits", "--model", "efficientdet_d0"],
     "--model efficientdet_d0 is a detect model; `train classify` needs a classify model"),
    (["train", "classify", "--data", "digits", "--model", "seqfakeformer"], "is a sequence model"),
    (["train", "sequence", "--data", "x", "--backbone", "efficientdet_d0"], "--backbone efficientdet_d0 is a detect"),
    (["train", "detect", "--data", "x", "--model", "resnet18"], "needs a detect model here (e.g. efficientdet_d0"),
    (["train", "detect", "--data", "x", "--backbone", "efficientdet_d1"], "--backbone efficientdet_d1 is a detect"),
    (["train", "classify", "--data", "digits", "--epochs", "-1"], "--epochs must be at least 1, got -1"),
    (["train", "classify", "--data", "digits", "--epochs", "0"], "--epochs must be at least 1, got 0"),
    (["train", "classify", "--data", "digits", "--lr", "-1"], "--lr must be positive"),
    (["train", "detect", "--data", "x", "--weight-decay", "-0.1"], "--weight-decay must be at least 0"),
    (["train", "sequence", "--data", "x", "--clip-grad", "-1"], "--clip-grad must be at least 0"),
    (["train", "classify", "--data", "digits", "--batch-size", "0"], "--batch-size must be a positive number or auto"),
    (["train", "classify", "--data", "digits", "--image-size", "0"], "--image-size takes one size or H W of at least 8"),
    (["train", "classify", "--data", "digits", "--accelerator", "gpu", "--devices", "3"], "no CUDA GPU"),
    (["train", "classify", "--data", "digits", "--pretrained", "missing.pth"], "--pretrained missing.pth: no such file"),
    (["train", "detect", "--data", "x", "--pretrained-backbone", "."], "--pretrained-backbone .: a folder"),
    (["train", "classify", "--data", "digits", "--teacher", "gone.ckpt"], "--teacher gone.ckpt: no such file"),
]


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
