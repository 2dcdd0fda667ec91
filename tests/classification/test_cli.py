"""End to end through the command line: train, eval, predict on tiny real-format data; bad input is one line."""
import json

import pytest
import torch
from PIL import Image

from backbonekit.cli import main
from data_writers import write_image_folder

pytestmark = pytest.mark.usefixtures("one_thread")


FAST = ["--model", "resnet18", "--image-size", "32", "--batch-size", "8", "--epochs", "2", "--optimizer", "adamw",
        "--lr", "1e-3", "--progress", "lines"]


def test_train_eval_predict_image_folder(image_folder, tmp_path, capsys):
    out = tmp_path / "runs"
    assert main(["train", "classify", "--data", str(image_folder), *FAST, "--out", str(out), "--name", "t",
                 "--val-ratio", "0.34"]) == 0
    run = out / "classify" / "t"
    for name in ("last.ckpt", "best.ckpt", "best.safetensors", "hparams.yaml", "results.csv", "metrics.json",
                 "results.png", "confusion_matrix.png"):
        assert (run / name).is_file(), name
    rows = (run / "results.csv").read_text().splitlines()
    assert len(rows) == 3 and "train/loss" in rows[0] and "val/top1" in rows[0]
    assert "top5" not in rows[0] and "top5" not in capsys.readouterr().out  # 3 classes: top-5 would be 100% always
    metrics = json.loads((run / "metrics.json").read_text())
    assert 0 <= metrics["best"]["val/top1"] <= 100 and metrics["epochs_done"] == 2
    assert set(metrics["final_per_class_top1"]) == {"cat", "dog", "fox"}
    from backbonekit import create_model
    from backbonekit.weights import read_metadata

    meta = read_metadata(run / "best.safetensors")
    assert meta["architecture"] == "resnet18" and meta["num_classes"] == "3" and meta["image_size"] == "32"
    assert json.loads(meta["class_names"]) == ["cat", "dog", "fox"] and meta["task"] == "classify"
    assert json.loads(meta["mean"]) == [0.485, 0.456, 0.406]  # the model's own statistics
    create_model("resnet18", num_classes=3, pretrained=str(run / "best.safetensors"))  # loads as a start point
    ckpt = torch.load(run / "best.ckpt", weights_only=True)  # plain data: loads without unpickling code
    assert ckpt["hyper_parameters"]["class_names"] == ["cat", "dog", "fox"]
    capsys.readouterr()

    assert main(["eval", "classify", "--checkpoint", str(run / "best.ckpt"), "--data", str(image_folder),
                 "--val-ratio", "0.34"]) == 0
    result = json.loads((run / "eval" / "val" / "metrics.json").read_text())
    assert set(result["per_class"]) == {"cat", "dog", "fox"} and result["images"] == 7
    assert result["top1"] == pytest.approx(metrics["best"]["val/top1"], abs=1e-6)  # same split, same weights
    capsys.readouterr()

    assert main(["predict", "classify", "--checkpoint", str(run / "best.safetensors"),
                 str(image_folder / "dog"), "--top-k", "2", "--format", "json", "--out", "-"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(lines) == 6 and all(len(r["top"]) == 2 for r in lines)
    assert all(r["top"][0][1] >= r["top"][1][1] for r in lines)


def test_train_cifar10_format_with_mixing(cifar_dir, tmp_path):
    out = tmp_path / "runs"
    assert main(["train", "classify", "--data", str(cifar_dir), *FAST, "--epochs", "1", "--cutmix", "1.0",
                 "--mixup", "0.2", "--label-smoothing", "0.1", "--augment", "randaugment", "--out", str(out)]) == 0
    assert (out / "classify" / "exp" / "best.safetensors").is_file()


def test_freeze_backbone_trains_only_the_classifier(image_folder, tmp_path):
    from backbonekit.classification.task import load as load_classifier
    from backbonekit.models.registry import create_model

    start = create_model("resnet18", num_classes=3)
    weights = tmp_path / "start.pth"
    torch.save(start.state_dict(), weights)
    out = tmp_path / "runs"
    assert main(["train", "classify", "--data", str(image_folder), *FAST, "--epochs", "1", "--freeze-backbone",
                 "--pretrained", str(weights), "--out", str(out), "--name", "f"]) == 0
    trained = load_classifier(out / "classify" / "f" / "last.ckpt").model
    assert torch.equal(trained.layer3[0].conv1.weight, start.layer3[0].conv1.weight)
    assert torch.equal(trained.bn1.running_mean, start.bn1.running_mean)  # BN statistics stay frozen too
    assert not torch.equal(trained.fc.weight, start.fc.weight)


def test_runs_are_numbered(image_folder, tmp_path):
    out = tmp_path / "runs"
    for _ in range(2):
        assert main(["train", "classify", "--data", str(image_folder), *FAST, "--epochs", "1",
                     "--out", str(out)]) == 0
    assert sorted(p.name for p in (out / "classify").iterdir()) == ["exp", "exp2"]


def _error_line(capsys):
    err = capsys.readouterr().err.strip().splitlines()
    assert "Traceback" not in "\n".join(err)
    return err[-1]


def test_unknown_model(image_folder, capsys):
    assert main(["train", "classify", "--data", str(image_folder), "--model", "resnet19"]) == 2
    assert _error_line(capsys).startswith("error: unknown model 'resnet19'")


def test_empty_class_folder(image_folder, capsys):
    (image_folder / "emu").mkdir()
    assert main(["train", "classify", "--data", str(image_folder), *FAST]) == 2
    assert "emu: class folder has no images" in _error_line(capsys)


def test_corrupt_image_stops_with_its_path_or_is_skipped(image_folder, tmp_path, capsys):
    (image_folder / "cat" / "zz_broken.png").write_bytes(b"garbage")
    args = ["train", "classify", "--data", str(image_folder), *FAST, "--epochs", "1", "--out", str(tmp_path / "r")]
    assert main(args) == 2
    assert "zz_broken.png: cannot read image" in _error_line(capsys)
    assert main(args + ["--skip-bad-images"]) == 0
    assert "skipped 1 unreadable image(s)" in capsys.readouterr().err


def test_checkpoint_classes_must_match_the_data(image_folder, tmp_path, capsys):
    out = tmp_path / "runs"
    assert main(["train", "classify", "--data", str(image_folder), *FAST, "--epochs", "1", "--out", str(out),
                 "--name", "a"]) == 0
    other = write_image_folder(tmp_path / "other", classes=("cat", "dog", "owl"))
    assert main(["eval", "classify", "--checkpoint", str(out / "classify" / "a" / "best.ckpt"),
                 "--data", str(other)]) == 2
    assert "trained on other classes" in _error_line(capsys)


def test_bad_checkpoint_file(tmp_path, capsys):
    bad = tmp_path / "x.ckpt"
    bad.write_bytes(b"\x00" * 10)
    image = tmp_path / "images" / "a.png"  # predict finds its images first: they must be there to reach the file
    image.parent.mkdir()
    Image.new("RGB", (8, 8)).save(image)
    assert main(["predict", "classify", "--checkpoint", str(bad), str(image.parent)]) == 2
    line = _error_line(capsys)
    assert "x.ckpt: not a PyTorch file" in line and "weights_only" not in line


def test_a_last_training_batch_of_one_is_dropped(tmp_path):
    """Regression: 11 training images at batch 2 left a last batch of one; ResNet-18 at 32² ends in a 1×1 map, where
    BatchNorm cannot train on one sample ("Expected more than 1 value per channel"). The shared last-batch rule
    (training/loaders.py) drops it, with or without CutMix/MixUp."""
    from backbonekit.training.loaders import drop_last_batch

    root = write_image_folder(tmp_path / "odd", classes=("a", "b"), per_class=7)  # 14 images, 11 train / 3 val
    out = tmp_path / "runs"
    assert main(["train", "classify", "--data", str(root), *FAST, "--batch-size", "2", "--epochs", "1",
                 "--val-ratio", "0.2", "--out", str(out)]) == 0
    hparams = (out / "classify" / "exp" / "hparams.yaml").read_text()
    assert "train: 11" in hparams
    assert drop_last_batch(1437, 4) and not drop_last_batch(1436, 4) and not drop_last_batch(3, 4)
    assert drop_last_batch(1438, 4, mixing=True) and not drop_last_batch(4, 4, mixing=True)
