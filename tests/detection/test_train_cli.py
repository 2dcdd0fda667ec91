"""train / eval / predict detect end to end on tiny synthetic data in the true KITTI and COCO formats."""
import json
import re

import pytest
import torch

from backbonekit.cli import main
from backbonekit.detection.task import load as load_detector
from backbonekit.detection.synth import synthesize_shapes

FAST = ["--image-size", "64", "96", "--epochs", "2", "--batch-size", "4", "--progress", "lines", "--warmup-epochs",
        "0"]


@pytest.fixture(scope="module")
def coco_shapes(tmp_path_factory):
    root = tmp_path_factory.mktemp("coco_shapes")
    synthesize_shapes(root, "coco", num_images=14, seed=0, image_size=(64, 96))
    return root


@pytest.fixture(scope="module")
def kitti_shapes(tmp_path_factory):
    root = tmp_path_factory.mktemp("kitti_shapes")
    synthesize_shapes(root, "kitti", num_images=14, seed=1, image_size=(48, 144))
    return root


@pytest.fixture(scope="module")
def coco_run(coco_shapes, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    assert main(["train", "detect", "--data", str(coco_shapes / "annotations.json"), *FAST, "--out", str(out),
                 "--name", "coco"]) == 0
    return out / "detect" / "coco"


def test_train_writes_a_complete_run_folder(coco_run):
    for name in ("best.ckpt", "last.ckpt", "best.safetensors", "hparams.yaml", "results.csv", "results.png",
                 "metrics.json", "pr_curves.png", "val_predictions.png", "val/predictions.json"):
        assert (coco_run / name).is_file(), name
    rows = (coco_run / "results.csv").read_text().splitlines()
    assert len(rows) == 3 and "val/map_50" in rows[0] and "train/cls_loss" in rows[0]
    metrics = json.loads((coco_run / "metrics.json").read_text())
    coco = metrics["best_checkpoint_val"]["coco"]
    assert 0 <= coco["mAP"] <= coco["mAP50"] <= 100 and set(coco["per_class"]) == {"rectangle", "circle", "triangle"}
    ckpt = torch.load(coco_run / "best.ckpt", weights_only=True)  # plain data: no code is unpickled
    assert ckpt["hyper_parameters"]["class_names"] == ["rectangle", "circle", "triangle"]


def test_checkpoint_and_safetensors_give_the_same_detections(coco_run):
    from_ckpt, from_st = load_detector(coco_run / "best.ckpt"), load_detector(coco_run / "best.safetensors")
    assert list(from_st.cfg.image_size) == list(from_ckpt.cfg.image_size) == [64, 96]
    images = torch.randint(0, 256, (2, 3, 64, 96), dtype=torch.uint8)
    with torch.inference_mode():
        a, b = from_ckpt(images), from_st(images)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_eval_checkpoint_scores_the_runs_validation_split(coco_run, coco_shapes, capsys):
    assert main(["eval", "detect", "--checkpoint", str(coco_run / "best.ckpt"), "--data", str(coco_shapes)]) == 0
    out = capsys.readouterr().out
    assert "mAP@[.5:.95]" in out
    metrics = json.loads((coco_run / "eval" / "val" / "metrics.json").read_text())
    # The run's val split (20% of 14 images, seed 0) and the same detections as at the end of training.
    assert metrics["images"] == 3
    best = json.loads((coco_run / "metrics.json").read_text())["best_checkpoint_val"]["coco"]
    assert metrics["coco"]["mAP"] == pytest.approx(best["mAP"])
    # The written results rescore to the same figures through the --predictions path.
    assert main(["eval", "detect", "--predictions", str(coco_run / "eval" / "val" / "predictions.json"),
                 "--data", str(coco_run / "eval" / "val" / "ground_truth.json")]) == 0
    rescored = json.loads((coco_run / "eval" / "val" / "predictions_metrics.json").read_text())
    assert rescored["mAP"] == pytest.approx(metrics["coco"]["mAP"])


def test_eval_checkpoint_without_data_reads_the_run_record(coco_run, capsys):
    assert main(["eval", "detect", "--checkpoint", str(coco_run / "best.ckpt"), "--out", str(coco_run / "e2")]) == 0
    assert "scoring the validation split of" in capsys.readouterr().out
    assert json.loads((coco_run / "e2" / "metrics.json").read_text())["images"] == 3


def test_eval_checkpoint_scores_the_runs_val_data(coco_shapes, tmp_path, capsys):
    # A run validated on separate --val-data (here the whole file) is scored on that, not on a split of --data.
    out = tmp_path / "runs"
    assert main(["train", "detect", "--data", str(coco_shapes), "--val-data", str(coco_shapes / "annotations.json"),
                 *FAST[:3], "--epochs", "1", *FAST[5:], "--out", str(out), "--name", "v"]) == 0
    capsys.readouterr()
    assert main(["eval", "detect", "--checkpoint", str(out / "detect" / "v" / "best.ckpt")]) == 0
    assert "the run's validation data" in capsys.readouterr().out
    assert json.loads((out / "detect" / "v" / "eval" / "val" / "metrics.json").read_text())["images"] == 14


def test_predict_writes_pngs_kitti_files_and_coco_json(coco_run, coco_shapes, tmp_path, capsys):
    out = tmp_path / "pred"
    assert main(["predict", "detect", "--checkpoint", str(coco_run / "best.safetensors"),
                 str(coco_shapes / "images"), "--out", str(out), "--score-threshold", "0.0"]) == 0
    printed = capsys.readouterr().out
    assert printed.count(".png:") == 14
    assert len(list(out.glob("*.png"))) == 14 and len(list((out / "kitti").glob("*.txt"))) == 14
    line = (out / "kitti" / "000000.txt").read_text().splitlines()[0]
    assert len(line.split()) == 16
    results = json.loads((out / "predictions.json").read_text())
    # image ids and category ids are the run's annotation file's (000000.png is image 1 there)
    assert results and {r["category_id"] for r in results} <= {1, 2, 3} and results[0]["image_id"] == 1
    from PIL import Image

    with Image.open(out / "000000.png") as im, Image.open(coco_shapes / "images" / "000000.png") as original:
        # boxes drawn on the original image (a small one enlarged to 480 pixels) under a strip with the legend
        scale = max(1, 480 / max(original.size))
        assert im.width == round(original.width * scale) and im.height > round(original.height * scale)
    # the tool's own results score against the tool's own annotations
    assert main(["eval", "detect", "--predictions", str(out / "predictions.json"), "--data", str(coco_shapes)]) == 0
    assert "mAP@[.5:.95]" in capsys.readouterr().out


def test_predict_skips_an_unreadable_image_and_streams_the_others(coco_run, coco_shapes, tmp_path, capsys):
    import shutil

    images = tmp_path / "images"
    shutil.copytree(coco_shapes / "images", images)
    (images / "000003.png").write_bytes(b"\x89PNG broken")
    argv = ["predict", "detect", "--checkpoint", str(coco_run / "best.ckpt"), str(images), "--out",
            str(tmp_path / "p"), "--format", "coco", "--annotations", str(coco_shapes / "annotations.json"),
            "--score-threshold", "0"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "000003.png: cannot read image" in err and "--skip-bad-images" in err
    assert main([*argv, "--skip-bad-images"]) == 0
    captured = capsys.readouterr()
    assert captured.out.count(".png:") == 13 and "skipped " in captured.err and "000003.png" in captured.err
    ids = {r["image_id"] for r in json.loads((tmp_path / "p" / "predictions.json").read_text())}
    assert ids == set(range(1, 15)) - {4}


def test_resume_continues_the_run(coco_run, coco_shapes, capsys):
    assert main(["train", "detect", "--epochs", "3", "--resume", str(coco_run / "last.ckpt")]) == 0
    # The epoch line's columns in a fixed order: training, then validation; each loss before its parts; mAP, @.5, @.75.
    line = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("epoch 3/3  "))
    assert re.findall(r"  ([\w/]+) ", line) == ["train/loss", "train/cls_loss", "train/box_loss", "val/loss", "val/map",
                                                "val/map_50", "val/map_75"], line
    assert len((coco_run / "results.csv").read_text().splitlines()) == 4
    assert json.loads((coco_run / "metrics.json").read_text())["epochs_done"] == 3


def test_kitti_training_reports_official_style_ap_and_result_files(kitti_shapes, tmp_path, capsys):
    out = tmp_path / "runs"
    assert main(["train", "detect", "--data", str(kitti_shapes), "--image-size", "48", "144", "--epochs", "1",
                 "--batch-size", "4", "--progress", "lines", "--out", str(out), "--name", "k"]) == 0
    run = out / "detect" / "k"
    metrics = json.loads((run / "metrics.json").read_text())["best_checkpoint_val"]
    assert set(metrics["kitti"]["ap"]) == {"Car", "Pedestrian", "Cyclist"}
    err = capsys.readouterr().err
    assert "KITTI AP (moderate)" in err
    assert f"data: {kitti_shapes} (KITTI), 11 training and 3 validation images\n" in err
    results = sorted((run / "val" / "kitti_results").glob("*.txt"))
    assert len(results) == metrics["images"] == 3
    # The result files score to the same AP through `eval detect --predictions`.
    assert main(["eval", "detect", "--predictions", str(run / "val" / "kitti_results"), "--data",
                 str(kitti_shapes), "--out", str(tmp_path / "m")]) == 0
    rescored = json.loads((tmp_path / "m" / "metrics.json").read_text())
    assert rescored["ap"] == metrics["kitti"]["ap"]


def test_bad_input_is_one_line(coco_shapes, tmp_path, capsys):
    runs = ["--out", str(tmp_path / "runs")]
    assert main(["train", "detect", "--data", str(coco_shapes), "--model", "resnet18", *runs]) == 2
    assert "--model resnet18 is a classify model; `train detect` needs a detect model" in capsys.readouterr().err
    assert main(["train", "detect", "--data", str(tmp_path / "nowhere"), *runs]) == 2
    assert "nowhere" in capsys.readouterr().err
    assert main(["train", "detect", "--data", str(coco_shapes), "--classes", "Car", *runs]) == 2
    assert "--classes applies to KITTI" in capsys.readouterr().err
    bogus = tmp_path / "x.ckpt"
    torch.save({"state_dict": {}, "hyper_parameters": {"model": "resnet18"}}, bogus)
    assert main(["eval", "detect", "--checkpoint", str(bogus), "--data", str(coco_shapes)]) == 2
    assert "not a `backbonekit train` checkpoint" in capsys.readouterr().err
    assert main(["predict", "detect", "--checkpoint", str(bogus), str(tmp_path)]) == 2


@pytest.mark.slow
def test_batch_size_auto_under_a_memory_budget(coco_shapes, tmp_path, capsys):
    """Each trial is a real train step (targets and loss included) in a process whose address space is capped."""
    out = tmp_path / "runs"
    assert main(["train", "detect", "--data", str(coco_shapes), "--image-size", "64", "96", "--epochs", "1",
                 "--batch-size", "auto", "--max-memory", "2GB", "--progress", "lines", "--out", str(out),
                 "--name", "auto"]) == 0
    err = capsys.readouterr().err
    chosen = re.search(r"auto batch size: (\d+) \((capped: [^;]*; )?measured peak ([\d.]+) GB of a 2.00 GB budget "
                       r"on cpu; tried ([^)]*)\)", err)
    assert chosen, err[-2000:]
    train_images = int((out / "detect" / "auto" / "hparams.yaml").read_text().split("train: ")[1].split()[0])
    # 2 GB holds every batch of these tiny images: the cap of a tenth of the training set (at least 2) decides.
    assert int(chosen[1]) == max(2, train_images // 10) and chosen[2] and 0 < float(chosen[3]) <= 2.0
    assert f"batch_size: {chosen[1]}" in (out / "detect" / "auto" / "hparams.yaml").read_text()


@pytest.mark.parametrize("scale, message", [
    (["--scale-min", "2", "--scale-max", "1"], "--scale-min 2 is larger than --scale-max 1"),
    (["--scale-min", "0"], "--scale-min must be in (0, 10]"),
    (["--scale-max", "-1"], "--scale-max must be in (0, 10]"),
    (["--scale-max", "50"], "--scale-max must be in (0, 10]"),
    (["--scale-min", "nan"], "--scale-min must be in (0, 10]"),
])
def test_a_random_scale_range_out_of_order_or_range_is_refused(coco_shapes, tmp_path, capsys, scale, message):
    """Refused before anything is read or written, in one line."""
    assert main(["train", "detect", "--data", str(coco_shapes), *scale, "--out", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "runs").exists()


def test_strict_labels_refuses_a_kitti_image_with_no_label_file(kitti_shapes, tmp_path, capsys):
    import shutil

    root = tmp_path / "kitti"
    shutil.copytree(kitti_shapes, root)
    (root / "training" / "label_2" / "000003.txt").unlink()
    runs = tmp_path / "runs"
    assert main(["train", "detect", "--data", str(root), "--strict-labels", "--out", str(runs), "--name", "s"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "1 image(s) have no label file in label_2 (first: 000003.png)" in err[0], err
    assert not (runs / "detect" / "s").exists()
