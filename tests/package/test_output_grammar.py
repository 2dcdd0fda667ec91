"""One grammar for what `eval TASK` and `predict TASK` write (io/output.py): --out DIR, --format F … (json and csv for
every task, each task's own beside them), eval's metrics file always written (default eval/<split>/ of the run
folder), the old output flags still working with one warning line, and a format a task does not offer refused."""
import csv
import json
import shutil

import pytest
from PIL import Image

from backbonekit.cli import main

PREDICT_FORMATS = {"classify": ("json", "csv"), "detect": ("json", "csv", "png", "kitti", "coco"),
                   "sequence": ("json", "csv", "png")}
PREDICT_CASES = [(task, fmt) for task, formats in PREDICT_FORMATS.items() for fmt in formats]
EVAL_CASES = [(task, fmt) for task in PREDICT_FORMATS for fmt in ("json", "csv")]


def _inputs(task: str, tiny_runs) -> list[str]:
    data = tiny_runs["data"][task]
    return {"classify": [str(data)], "detect": [str(data / "images"), "--score-threshold", "0"],  # an untrained
            "sequence": ["--data", str(data), "--split", "test"]}[task]                             # detector's boxes


def _images(task: str, tiny_runs) -> int:
    data = tiny_runs["data"][task]
    if task == "sequence":
        return len((data / "facial_components" / "annotations" / "test.csv").read_text().splitlines()) - 1
    return sum(1 for p in data.rglob("*.png"))


@pytest.fixture(scope="module")
def predicted(tiny_runs, tmp_path_factory):
    """Each task's predict run once with every format it offers: {task: its --out folder}."""
    folders = {}
    for task, formats in PREDICT_FORMATS.items():
        folders[task] = tmp_path_factory.mktemp(f"predict_{task}")
        assert main(["predict", task, "--checkpoint", str(tiny_runs[task] / "best.ckpt"), *_inputs(task, tiny_runs),
                     "--out", str(folders[task]), "--format", *formats]) == 0
    return folders


@pytest.mark.parametrize("task, fmt", PREDICT_CASES, ids=[f"{t}-{f}" for t, f in PREDICT_CASES])
def test_predict_writes_each_format_and_it_parses(task, fmt, predicted, tiny_runs):
    out, n = predicted[task], _images(task, tiny_runs)
    if fmt == "json":
        rows = json.loads((out / ("detections.json" if task == "detect" else "predictions.json")).read_text())
        assert len(rows) == n and all(("file_path" if task == "sequence" else "path") in r for r in rows)
        if task == "detect":
            boxes = [d for r in rows for d in r["detections"]]
            assert boxes and all(len(d["box"]) == 4 and 0 <= d["score"] <= 1 for d in boxes)
    elif fmt == "csv":
        with open(out / "predictions.csv", newline="") as f:
            rows = list(csv.DictReader(f))
        columns = {"classify": ["path", "rank", "class", "probability"],
                   "detect": ["path", "class", "score", "x1", "y1", "x2", "y2"],
                   "sequence": ["file_path", "label"]}[task]
        assert rows and list(rows[0]) == columns
        if task == "classify":
            assert len({r["path"] for r in rows}) == n and all(0 <= float(r["probability"]) <= 1 for r in rows)
        elif task == "sequence":
            assert len(rows) == n
    elif fmt == "png":
        pictures = [out / "predictions.png"] if task == "sequence" else sorted(out.glob("*.png"))
        assert len(pictures) == (1 if task == "sequence" else n)
        for picture in pictures:
            with Image.open(picture) as im:
                im.verify()
    elif fmt == "kitti":
        from backbonekit.detection.kitti import read_kitti_file
        from backbonekit.detection.synth import SHAPES

        files = sorted((out / "kitti").glob("*.txt"))
        assert len(files) == n
        objects = [o for f in files for o in read_kitti_file(f, with_score=True, types=SHAPES)]
        assert objects and all(o.score is not None for o in objects)
    elif fmt == "coco":
        results = json.loads((out / "predictions.json").read_text())
        assert results and all({"image_id", "category_id", "bbox", "score"} <= set(r) for r in results)


def test_predict_writes_the_tasks_default_formats_into_predictions(tiny_runs, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["predict", "sequence", "--checkpoint", str(tiny_runs["sequence"] / "best.ckpt"),
                 *_inputs("sequence", tiny_runs)]) == 0
    assert sorted(p.name for p in (tmp_path / "predictions").iterdir()) == ["predictions.csv"]
    assert "predictions.csv" in capsys.readouterr().out


@pytest.mark.parametrize("task", list(PREDICT_FORMATS))
@pytest.mark.parametrize("fmt", ["json", "csv"])
def test_predict_out_dash_prints_the_format_alone(task, fmt, tiny_runs, tmp_path, capsys):
    assert main(["predict", task, "--checkpoint", str(tiny_runs[task] / "best.ckpt"), *_inputs(task, tiny_runs),
                 "--out", "-", "--format", fmt]) == 0
    lines = capsys.readouterr().out.splitlines()
    if fmt == "json":
        assert len([json.loads(line) for line in lines]) == _images(task, tiny_runs)
    else:
        assert list(csv.DictReader(lines)) and "," in lines[0]
    assert not any(tmp_path.iterdir())


@pytest.fixture
def run_copy(tiny_runs, tmp_path):
    """A task's tiny run copied, so that eval's default folder inside it is this test's own."""
    def copy(task):
        return shutil.copytree(tiny_runs[task], tmp_path / task)
    return copy


@pytest.mark.parametrize("task, fmt", EVAL_CASES, ids=[f"{t}-{f}" for t, f in EVAL_CASES])
def test_eval_writes_its_metrics_in_each_format_in_the_run_folder_by_default(task, fmt, run_copy, capsys):
    run = run_copy(task)
    assert main(["eval", task, "--checkpoint", str(run / "best.ckpt"), "--format", fmt]) == 0
    folder = run / "eval" / "val"
    assert sorted(p.name for p in folder.glob("metrics.*")) == [f"metrics.{fmt}"]
    key = {"classify": "top1", "detect": "coco/mAP", "sequence": "fixed_acc"}[task]
    if fmt == "json":
        metrics = json.loads((folder / "metrics.json").read_text())
        for part in key.split("/"):
            metrics = metrics[part]
        assert 0 <= metrics <= 100
    else:
        with open(folder / "metrics.csv", newline="") as f:
            rows = {r["metric"]: r["value"] for r in csv.DictReader(f)}
        assert 0 <= float(rows[key]) <= 100
    assert str(folder) in capsys.readouterr().out


def test_eval_of_another_split_does_not_overwrite(run_copy):
    run = run_copy("sequence")
    for split in ("val", "test"):
        assert main(["eval", "sequence", "--checkpoint", str(run / "best.ckpt"), "--split", split]) == 0
    assert {json.loads((run / "eval" / s / "metrics.json").read_text())["split"] for s in ("val", "test")} == \
        {"val", "test"}


OLD_SPELLINGS = {
    "predict classify --json": ("--json", "--format json --out -"),
    "predict detect --save": ("--save", "--format"),
    "predict sequence --csv --grid": ("--csv", "--format csv"),
    "eval sequence --out FILE.json": ("--out", "a file is deprecated"),
    "eval classify --precision --device": ("--precision", "--runtime-precision"),
}


@pytest.mark.parametrize("case", list(OLD_SPELLINGS))
def test_old_spellings_warn_and_still_work(case, tiny_runs, tmp_path, capsys):
    checkpoint = ["--checkpoint", str(tiny_runs[case.split()[1]] / "best.ckpt")]
    argv = {"predict classify --json": ["predict", "classify", *checkpoint, *_inputs("classify", tiny_runs),
                                        "--json"],
            "predict detect --save": ["predict", "detect", *checkpoint, *_inputs("detect", tiny_runs), "--out",
                                      str(tmp_path), "--save", "coco"],
            "predict sequence --csv --grid": ["predict", "sequence", *checkpoint, *_inputs("sequence", tiny_runs),
                                              "--csv", str(tmp_path / "p.csv"), "--grid", str(tmp_path / "g.png")],
            "eval sequence --out FILE.json": ["eval", "sequence", *checkpoint, "--out", str(tmp_path / "m.json")],
            "eval classify --precision --device": ["eval", "classify", *checkpoint, "--precision", "fp32",
                                                   "--device", "cpu", "--out", str(tmp_path)]}[case]
    assert main(argv) == 0
    captured = capsys.readouterr()
    old, new = OLD_SPELLINGS[case]
    warnings = [line for line in captured.err.splitlines() if line.startswith("warning: ")]
    assert any(old in w and new in w for w in warnings), captured.err
    assert len([w for w in warnings if w.startswith(f"warning: {old} ")]) == 1, captured.err  # said once
    if case == "predict classify --json":  # JSON lines on stdout, as before
        assert len([json.loads(line) for line in captured.out.splitlines()]) == _images("classify", tiny_runs)
    elif case == "predict detect --save":
        assert [p.name for p in tmp_path.iterdir()] == ["predictions.json"]
    elif case == "predict sequence --csv --grid":
        assert sorted(p.name for p in tmp_path.iterdir()) == ["g.png", "p.csv"]
        assert (tmp_path / "p.csv").read_text().startswith("file_path,label\n")
    elif case == "eval sequence --out FILE.json":
        assert "fixed_acc" in json.loads((tmp_path / "m.json").read_text())
    else:
        assert "--device is deprecated, use --accelerator" in captured.err
        assert "top1" in json.loads((tmp_path / "metrics.json").read_text())


@pytest.mark.parametrize("verb, task, fmt, choices", [
    ("predict", "classify", "kitti", "'json', 'csv'"),
    ("predict", "sequence", "coco", "'json', 'csv', 'png'"),
    ("eval", "detect", "png", "'json', 'csv'"),
])
def test_a_format_the_task_does_not_offer_is_one_error_line_naming_the_choices(verb, task, fmt, choices, capsys):
    argv = [verb, task, "--checkpoint", "x.ckpt", *(["img.png"] if verb == "predict" else []), "--format", fmt]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == f"error: argument --format: invalid choice: '{fmt}' (choose from {choices})", err
    assert len([line for line in err if line.startswith("error")]) == 1


def test_a_picture_on_stdout_is_refused(tiny_runs, capsys):
    assert main(["predict", "detect", "--checkpoint", str(tiny_runs["detect"] / "best.ckpt"), "x.png", "--out", "-",
                 "--format", "png"]) == 2
    assert capsys.readouterr().err == "error: --out - writes one text format to stdout (json or csv), not png\n"
