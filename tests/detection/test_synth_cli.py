import json
import shutil

import pytest

from backbonekit.cli import main
from backbonekit.detection.coco import CocoDetection
from backbonekit.detection.kitti import KittiDetection, read_kitti_file
from backbonekit.detection.synth import synthesize_shapes


def _files(root):
    return {p.relative_to(root): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("fmt", ["kitti", "coco"])
def test_same_seed_writes_byte_identical_files(tmp_path, fmt):
    synthesize_shapes(tmp_path / "a", fmt, num_images=6, seed=3, image_size=(64, 160))
    synthesize_shapes(tmp_path / "b", fmt, num_images=6, seed=3, image_size=(64, 160))
    synthesize_shapes(tmp_path / "c", fmt, num_images=6, seed=4, image_size=(64, 160))
    assert _files(tmp_path / "a") == _files(tmp_path / "b")
    assert _files(tmp_path / "a") != _files(tmp_path / "c")


def test_kitti_output_is_real_kitti(tmp_path):
    counts = synthesize_shapes(tmp_path, "kitti", num_images=30, seed=0)
    assert counts["DontCare"] > 0 and min(counts[s] for s in ("rectangle", "circle", "triangle")) > 5
    objects = [o for p in sorted((tmp_path / "training" / "label_2").glob("*.txt")) for o in read_kitti_file(p)]
    assert {o.type for o in objects} >= {"Car", "Pedestrian", "Cyclist", "DontCare"}
    assert any(o.truncated > 0 for o in objects) and any(o.occluded > 0 for o in objects)
    for line in (tmp_path / "training" / "label_2" / "000001.txt").read_text().splitlines():
        assert len(line.split()) == 15
    ds = KittiDetection(tmp_path)
    assert len(ds) == 30 and ds[0][0].shape == (3, 128, 384)
    assert any(len(ds[i][1]["boxes"]) == 0 for i in range(30))  # some images are empty, as allowed


def test_coco_output_loads(tmp_path):
    synthesize_shapes(tmp_path, "coco", num_images=8, seed=0)
    ds = CocoDetection(tmp_path / "annotations.json")
    assert ds.classes == ("rectangle", "circle", "triangle") and len(ds) == 8
    image, target = ds[0]
    assert image.shape == (3, 256, 256) and (target["boxes"][:, 2:] > target["boxes"][:, :2]).all()


def test_cli_synth_then_score_perfect_kitti_results(tmp_path, capsys):
    root = tmp_path / "kitti"
    assert main(["data", "synth", "shapes", "--format", "kitti", "--out", str(root), "--num-images", "12",
                 "--seed", "1", "--image-size", "96", "256"]) == 0
    assert "wrote 12 images" in capsys.readouterr().out
    results = tmp_path / "results"
    results.mkdir()
    for label in (root / "training" / "label_2").glob("*.txt"):  # the labels themselves, as detections
        lines = [line + " 0.9" for line in label.read_text().splitlines() if line.split()[0] in ("Car", "Cyclist")]
        (results / label.name).write_text("".join(line + "\n" for line in lines))
    assert main(["eval", "detect", "--predictions", str(results), "--data", str(root), "--placement", "recall"]) == 0
    out = capsys.readouterr().out
    assert "Car" in out and "metrics written" in out
    metrics = json.loads((results / "metrics.json").read_text())
    assert metrics["format"] == "kitti" and metrics["num_images"] == 12
    assert metrics["ap"]["Car"]["moderate"] == 100.0 and metrics["ap"]["Pedestrian"]["moderate"] == 0.0


def test_cli_scores_coco_results(tmp_path, capsys):
    root = tmp_path / "coco"
    assert main(["data", "synth", "shapes", "--format", "coco", "--out", str(root), "--num-images", "5"]) == 0
    gt = json.loads((root / "annotations.json").read_text())
    results = [{"image_id": a["image_id"], "category_id": a["category_id"], "bbox": a["bbox"], "score": 0.8}
               for a in gt["annotations"]]
    (tmp_path / "res.json").write_text(json.dumps(results))
    out_file = tmp_path / "m.json"
    assert main(["eval", "detect", "--predictions", str(tmp_path / "res.json"), "--data", str(root),
                 "--out", str(out_file)]) == 0
    assert "mAP@[.5:.95] 100.00" in capsys.readouterr().out
    assert json.loads(out_file.read_text())["mAP50"] == pytest.approx(100.0)


def test_cli_reports_bad_input_in_one_line(tmp_path, capsys):
    root = tmp_path / "kitti"
    synthesize_shapes(root, "kitti", num_images=2, seed=0, image_size=(64, 128))
    results = tmp_path / "results"
    results.mkdir()
    (results / "000000.txt").write_text("Car 0 0 0 1 2 3 4 1 1 1 1 1 1 1\n")  # 15 fields: no score
    assert main(["eval", "detect", "--predictions", str(results), "--data", str(root)]) == 2
    assert "000000.txt:1: expected 16" in capsys.readouterr().err
    shutil.rmtree(results)
    results.mkdir()
    (results / "000009.txt").write_text("")
    assert main(["eval", "detect", "--predictions", str(results), "--data", str(root)]) == 2
    assert "no label file" in capsys.readouterr().err
    assert main(["data", "synth", "shapes", "--out", str(tmp_path / "x"), "--num-images", "0"]) == 2
    assert main(["data", "synth", "shapes", "--out", str(root), "--num-images", "2", "--image-size", "64", "128"]) == 0
    assert main(["data", "synth", "shapes", "--out", str(root), "--num-images", "1"]) == 2
    assert "already holds other files (000001.png" in capsys.readouterr().err


@pytest.mark.parametrize("fmt", ["kitti", "coco"])
def test_summary_names_what_the_files_hold(tmp_path, capsys, fmt):
    """The printed counts are those of the files, under the names the files use (KITTI types, COCO categories),
    and say what became of the hexagons."""
    import re
    from collections import Counter

    root = tmp_path / fmt
    assert main(["data", "synth", "shapes", "--format", fmt, "--out", str(root), "--num-images", "20",
                 "--image-size", "64", "96"]) == 0
    out = capsys.readouterr().out
    if fmt == "kitti":
        found = Counter(o.type for p in (root / "training" / "label_2").glob("*.txt") for o in read_kitti_file(p))
        printed = {kind: int(n) for kind, n in re.findall(r"→ (\w+) (\d+)", out)}
        assert re.findall(r"(\w+) →", out) == ["rectangle", "circle", "triangle", "hexagon"]
        assert printed == {k: found[k] for k in ("Car", "Pedestrian", "Cyclist", "Misc")} and found["Misc"] > 0
        assert f"DontCare regions {found['DontCare']}" in out
    else:
        data = json.loads((root / "annotations.json").read_text())
        names = {c["id"]: c["name"] for c in data["categories"]}
        found = Counter(names[a["category_id"]] for a in data["annotations"])
        assert set(names.values()) == {"rectangle", "circle", "triangle"}  # no hexagon category
        assert ", ".join(f"{n} {found[n]}" for n in ("rectangle", "circle", "triangle")) in out
        assert re.search(r"; [1-9]\d* hexagon\(s\) drawn but not annotated", out), out
