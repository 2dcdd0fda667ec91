import json

import pytest
import torch

from backbonekit.cli import main
from backbonekit.sequence.data import read_annotations


def test_synth_command(tmp_path, capsys):
    assert main(["data", "synth", "seqdeepfake", "--out", str(tmp_path), "--subset", "facial_attributes",
                 "--num-images", "6", "--seed", "3", "--image-size", "32"]) == 0
    assert "wrote 6 images" in capsys.readouterr().out
    rows = read_annotations(tmp_path / "facial_attributes" / "annotations" / "test.csv")
    assert rows and rows[0][0].startswith("facial_attributes/images/test/")


def test_eval_predictions_csv_reports_unmatched_rows(synth_root, tmp_path, capsys):
    truth = read_annotations(synth_root / "facial_components" / "annotations" / "test.csv")
    pred = tmp_path / "pred.csv"
    lines = ["file_path,label"] + [f'{f},"{[0, 0, 0, 0, 0] if i == 0 else y}"' for i, (f, y, _) in enumerate(truth)]
    lines.append('facial_components/images/test/nose/999999.jpg,"[1,0,0,0,0]"')
    pred.write_text("\n".join(lines) + "\n")
    out = tmp_path / "m.json"
    assert main(["eval", "sequence", "--predictions", str(pred), "--data", str(synth_root), "--split", "test",
                 "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "1 prediction row(s) match no annotation: line" in text and "999999.jpg" in text
    m = json.loads(out.read_text())
    n = len(truth)
    wrong = sum(1 for v in truth[0][1] if v != 0)  # first row predicted "original"
    assert m["count"] == n and m["fixed_acc"] == pytest.approx(100 * (1 - wrong / (5 * n)))  # percent
    assert m["exact_match"] == pytest.approx(100 * (n - (wrong > 0)) / n)


def test_eval_bad_predictions_file_exits_2(synth_root, tmp_path, capsys):
    pred = tmp_path / "pred.csv"
    pred.write_text('path,label\nx.jpg,"[1, 0, 0, 0, 0]"\n')
    assert main(["eval", "sequence", "--predictions", str(pred), "--data", str(synth_root)]) == 2
    assert "missing column(s) file_path" in capsys.readouterr().err


def test_train_eval_predict_end_to_end(synth_root, tmp_path, capsys):
    run = tmp_path / "runs" / "sequence" / "t"
    assert main(["train", "sequence", "--data", str(synth_root), "--backbone", "resnet18", "--image-size", "64",
                 "--epochs", "1", "--batch-size", "16", "--out", str(tmp_path / "runs"), "--name", "t",
                 "--progress", "lines"]) == 0
    assert (run / "best.ckpt").is_file() and (run / "best_adaptive.ckpt").is_file()
    # After fit: the best checkpoint scored on val, and exported as safetensors that rebuild the same model.
    val = json.loads((run / "val" / "metrics.json").read_text())
    assert val["split"] == "val" and 0 <= val["fixed_acc"] <= 100
    assert json.loads((run / "metrics.json").read_text())["best_checkpoint_val"]["fixed_acc"] == val["fixed_acc"]
    from backbonekit.sequence.task import load

    images = torch.randint(0, 256, (2, 3, 64, 64), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(load(run / "best.ckpt")(images), load(run / "best.safetensors")(images))
    capsys.readouterr()

    assert main(["eval", "sequence", "--checkpoint", str(run / "best.ckpt"), "--split", "test",
                 "--out", str(tmp_path / "ckpt")]) == 0  # the run's own data, from its record
    assert "Fixed-Acc" in capsys.readouterr().out

    pred = tmp_path / "pred"
    assert main(["predict", "sequence", "--checkpoint", str(run / "best_adaptive.ckpt"), "--data", str(synth_root),
                 "--out", str(pred), "--format", "csv", "png"]) == 0
    assert "(true: " in capsys.readouterr().out and (pred / "predictions.png").stat().st_size > 1000
    # the written predictions, scored from the CSV, give exactly what the checkpoint evaluation gave
    assert main(["eval", "sequence", "--predictions", str(pred / "predictions.csv"), "--data", str(synth_root),
                 "--out", str(tmp_path / "csv")]) == 0
    a, b = (json.loads((tmp_path / n / "metrics.json").read_text()) for n in ("ckpt", "csv"))
    assert (a["fixed_acc"], a["adaptive_acc"]) == (b["fixed_acc"], b["adaptive_acc"])
