"""The bad-input matrix: every command × (missing path, file instead of folder, folder instead of file, corrupt file,
checkpoint of another task, out-of-range number). Each must end in one `error:` line naming what is wrong (exit 2),
never a traceback; an argument error of a sub-command prints that sub-command's usage."""
import pytest
import torch

from backbonekit import create_model
from backbonekit.cli import main

# {placeholders}: cls/det/seq: a run folder of that task; *_data: its data; file: a text file; folder: an empty folder;
# junk: random bytes named .ckpt; junk_json, junk_png: corrupt files; missing: a path that does not exist.
CKPT = {"cls": "{cls}/best.ckpt", "det": "{det}/best.ckpt", "seq": "{seq}/best.ckpt"}
MATRIX = {
    "train classify": (["train", "classify", "--model", "resnet18", "--image-size", "16", "--epochs", "1"], [
        ("missing path", ["--data", "{missing}"], "{missing}"),
        ("file for folder", ["--data", "{file}"], "{file}: a file, not a folder"),
        ("folder for file", ["--data", "{cls_data}", "--pretrained", "{folder}"], "--pretrained {folder}: a folder"),
        ("corrupt file", ["--data", "{cls_data}", "--pretrained", "{junk}"], "not a PyTorch file"),
        ("other task", ["--data", "{cls_data}", "--teacher", CKPT["det"]], "detect"),
        ("out of range", ["--data", "{cls_data}", "--val-ratio", "1.5"], "--val-ratio"),
    ]),
    "train detect": (["train", "detect", "--image-size", "64", "--epochs", "1"], [
        ("missing path", ["--data", "{missing}"], "{missing}"),
        ("file for folder", ["--data", "{file}"], "{file}"),
        ("folder for file", ["--data", "{det_data}", "--pretrained", "{folder}"], "--pretrained {folder}: a folder"),
        ("corrupt file", ["--data", "{junk_json}"], "not valid JSON"),
        ("other task", ["--data", "{det_data}", "--pretrained", CKPT["cls"]],
         "a classify checkpoint; `train detect` takes a detect model's weights here (a classifier's weights go to "
         "--pretrained-backbone)"),
        ("out of range", ["--data", "{det_data}", "--val-ratio", "0"], "--val-ratio"),
    ]),
    "train sequence": (["train", "sequence", "--backbone", "resnet18", "--image-size", "32", "--epochs", "1"], [
        ("missing path", ["--data", "{missing}"], "{missing}"),
        ("file for folder", ["--data", "{file}"], "{file}"),
        ("folder for file", ["--data", "{seq_data}", "--pretrained-backbone", "{folder}"], "a folder"),
        ("corrupt file", ["--data", "{seq_data}", "--pretrained-backbone", "{junk}"], "not a PyTorch file"),
        ("other task", ["--data", "{seq_data}", "--pretrained-backbone", CKPT["det"]],
         "a detect checkpoint; `train sequence` takes a classify model's weights here"),
        ("out of range", ["--data", "{seq_data}", "--lr", "0"], "--lr must be positive"),
    ]),
    "train noisy-student": (["train", "noisy-student", "--image-size", "16", "--epochs", "1"], [
        ("missing path", ["--data", "{cls_data}", "--unlabeled", "{missing}", "--teacher", CKPT["cls"]], "{missing}"),
        ("file for folder", ["--data", "{cls_data}", "--unlabeled", "{file}", "--teacher", CKPT["cls"]], "{file}"),
        ("folder for file", ["--data", "{cls_data}", "--unlabeled", "{cls_data}", "--teacher", "{folder}"],
         "--teacher {folder}: a folder"),
        ("corrupt file", ["--data", "{cls_data}", "--unlabeled", "{cls_data}", "--teacher", "{junk}"],
         "not a PyTorch file"),
        ("other task", ["--data", "{cls_data}", "--unlabeled", "{cls_data}", "--teacher", CKPT["seq"]], "sequence"),
        ("out of range", ["--data", "{cls_data}", "--unlabeled", "{cls_data}", "--teacher", CKPT["cls"],
                          "--iterations", "0"], "--iterations"),
    ]),
}
for task, key, extra, bad_number in (("classify", "cls", [], ["--batch-size", "0"]),
                                     ("detect", "det", [], ["--batch-size", "0"]),
                                     ("sequence", "seq", ["--split", "test"], ["--batch-size", "0"])):
    other = "det" if key != "det" else "cls"
    MATRIX[f"eval {task}"] = (["eval", task, *extra], [
        ("missing path", ["--checkpoint", "{missing}"], "{missing}"),
        ("file for folder", ["--checkpoint", CKPT[key], "--data", "{file}"], "{file}"),
        ("folder for file", ["--checkpoint", "{folder}"], "--checkpoint {folder}: a folder"),
        ("corrupt file", ["--checkpoint", "{junk}"], "not a PyTorch file"),
        ("other task", ["--checkpoint", CKPT[other]], {"cls": "classify", "det": "detect"}[other]),
        ("out of range", ["--checkpoint", CKPT[key], *bad_number], "--batch-size"),
    ])
    MATRIX[f"predict {task}"] = (["predict", task], [
        ("missing path", ["--checkpoint", CKPT[key], "{missing}"], "{missing}"),
        ("file for folder", ["--checkpoint", CKPT[key], "{file}"], "{file}"),
        ("folder for file", ["--checkpoint", "{folder}", "{cls_data}"], "--checkpoint {folder}: a folder"),
        ("corrupt file", ["--checkpoint", CKPT[key], "{junk_png}"], "cannot read image"),
        ("other task", ["--checkpoint", CKPT[other], "{cls_data}"], {"cls": "classify", "det": "detect"}[other]),
        ("out of range", ["--checkpoint", CKPT[key], "{cls_data}", *bad_number], "--batch-size"),
    ])
    MATRIX[f"explain {task}"] = (["explain", task], [
        ("missing path", ["--checkpoint", CKPT[key], "{missing}"], "{missing}"),
        ("file for folder", ["--checkpoint", CKPT[key], "{file}"], "{file}"),
        ("folder for file", ["--checkpoint", "{folder}", "{cls_data}"], "--checkpoint {folder}: a folder"),
        ("corrupt file", ["--checkpoint", CKPT[key], "{junk_png}"], "cannot read image"),
        ("other task", ["--checkpoint", CKPT[other], "{cls_data}"],
         f"a {'detect' if other == 'det' else 'classify'} checkpoint, not {task}"),
        ("out of range", ["--checkpoint", CKPT[key], "{cls_data}", "--feature-maps", "0"], "--feature-maps"),
    ])
MATRIX["eval detect --predictions"] = (["eval", "detect"], [
    ("missing path", ["--predictions", "{missing}", "--data", "{det_data}"], "--predictions {missing}"),
    ("file for folder", ["--predictions", "{file}", "--data", "{det_data}"], "{file}"),
    ("folder for file", ["--predictions", "{folder}", "--data", "{det_data}/annotations.json"], "{folder}"),
    ("corrupt file", ["--predictions", "{junk_json}", "--data", "{det_data}"], "not valid JSON"),
    ("other task", ["--predictions", "{seq_data}/facial_components/annotations/test.csv", "--data", "{det_data}"],
     "test.csv"),
    ("out of range", ["--predictions", "{junk_json}", "--data", "{det_data}", "--recall-points", "7"],
     "--recall-points"),
])
MATRIX["eval sequence --predictions"] = (["eval", "sequence"], [
    ("missing path", ["--predictions", "{missing}", "--data", "{seq_data}"], "{missing}"),
    ("file for folder", ["--predictions", "{file}", "--data", "{file}"], "{file}"),
    ("folder for file", ["--predictions", "{folder}", "--data", "{seq_data}"], "{folder}"),
    ("corrupt file", ["--predictions", "{junk_png}", "--data", "{seq_data}"], "junk.png"),
    ("other task", ["--predictions", "{det_data}/annotations.json", "--data", "{seq_data}"], "annotations.json"),
    ("out of range", ["--predictions", "{file}", "--data", "{seq_data}", "--split", "dev"], "--split"),
])
MATRIX["export"] = (["export"], [
    ("missing path", ["--checkpoint", "{missing}"], "{missing}"),
    ("file for folder", ["--checkpoint", CKPT["cls"], "--out", "{file}/model.onnx"], "{file}"),
    ("folder for file", ["--checkpoint", "{folder}"], "--checkpoint {folder}: a folder"),
    ("corrupt file", ["--checkpoint", "{junk}"], "not a PyTorch file"),
    ("not a run's checkpoint", ["--checkpoint", "{plain}"], "not a `backbonekit train` checkpoint"),
    ("out of range", ["--checkpoint", CKPT["cls"], "--opset", "3"], "--opset"),
])
MATRIX["serve"] = (["serve", "--port", "1"], [  # each refused before a port is opened
    ("missing path", ["--checkpoint", "{missing}"], "{missing}"),
    ("folder for file", ["--checkpoint", "{folder}"], "--checkpoint {folder}: a folder"),
    ("corrupt file", ["--checkpoint", "{junk}"], "not a PyTorch file"),
    ("not a run's checkpoint", ["--checkpoint", "{plain}"], "not a `backbonekit train` checkpoint"),
    ("out of range", ["--checkpoint", CKPT["cls"], "--max-batch", "0"], "--max-batch"),
])
MATRIX["quantize"] = (["quantize"], [  # each refused before anything is quantised (nothing written: test_quantize)
    ("missing path", ["--checkpoint", "{missing}"], "{missing}"),
    ("file for folder", ["--checkpoint", CKPT["cls"], "--calibration-data", "{file}"],
     "--calibration-data {file}: a file, not a folder"),
    ("folder for file", ["--checkpoint", "{folder}"], "--checkpoint {folder}: a folder"),
    ("corrupt file", ["--checkpoint", "{junk}"], "not a PyTorch file"),
    ("not a run's checkpoint", ["--checkpoint", "{plain}"], "not a `backbonekit train` checkpoint"),
    ("out of range", ["--checkpoint", CKPT["cls"], "--calibration-images", "4"], "--calibration-images"),
])
MATRIX["data synth"] = (["data", "synth"], [
    ("file for folder", ["shapes", "--out", "{file}"], "{file}"),
    ("out of range", ["shapes", "--out", "{tmp}/s", "--num-images", "0"], "--num-images"),
    ("out of range (size)", ["seqdeepfake", "--out", "{tmp}/q", "--image-size", "4"], "--image-size"),
])
MATRIX["summary / bench / recipes"] = ([], [
    ("unknown model", ["summary", "resnet19"], "resnet19"),
    ("out of range", ["summary", "resnet18", "--image-size", "0"], "--image-size"),
    ("out of range (bench)", ["bench", "resnet18", "--batch-size", "0"], "--batch-size"),
    ("unknown recipe", ["recipes", "nope"], "nope"),
    ("missing config", ["train", "classify", "--config", "{missing}"], "{missing}"),
    ("corrupt config", ["train", "classify", "--config", "{junk_png}"], "junk.png"),
])

CASES = [(command, *case) for command, (prefix, cases) in MATRIX.items() for case in cases]


@pytest.fixture(scope="module")
def places(tiny_runs, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("bad_inputs")
    (tmp / "file.txt").write_text("just text\n")
    (tmp / "folder").mkdir()
    (tmp / "junk.ckpt").write_bytes(bytes(range(256)) * 8)
    (tmp / "junk.json").write_text('{"images": [')
    (tmp / "junk.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    torch.save(create_model("resnet18", num_classes=2).state_dict(), tmp / "plain.pth")  # weights, not a run's
    return {"cls": tiny_runs["classify"], "det": tiny_runs["detect"], "seq": tiny_runs["sequence"],
            "cls_data": tiny_runs["data"]["classify"], "det_data": tiny_runs["data"]["detect"],
            "seq_data": tiny_runs["data"]["sequence"], "file": tmp / "file.txt", "folder": tmp / "folder",
            "junk": tmp / "junk.ckpt", "junk_json": tmp / "junk.json", "junk_png": tmp / "junk.png",
            "missing": tmp / "missing", "plain": tmp / "plain.pth", "tmp": tmp}


def test_the_matrix_covers_every_command():
    from backbonekit.cli import build_parser
    from backbonekit.io.config_file import all_parsers

    covered = " ".join(MATRIX)
    without_input = {"models", "demo", "train", "eval", "predict", "data", "data synth shapes",
                     "data synth seqdeepfake", "data synth"}  # nothing to give them wrong, or covered as a group
    for parser in all_parsers(build_parser()):
        command = parser.prog.removeprefix("backbonekit").strip()
        if command and command not in without_input:
            assert command in covered, command
    assert len(CASES) >= 80


@pytest.mark.parametrize("command, case, argv, message", CASES, ids=[f"{c[0]}: {c[1]}" for c in CASES])
def test_bad_input_is_one_error_line(command, case, argv, message, places, tmp_path, capsys):
    prefix = MATRIX[command][0]
    fill = {k: str(v) for k, v in places.items()}
    argv = [a.format(**fill) for a in [*prefix, *argv]]
    writes_out = argv[0] in ("train", "explain") or argv[:2] in (["predict", "detect"], ["eval", "classify"],
                                                                 ["eval", "detect"])
    if writes_out and "--out" not in argv:
        argv += ["--out", str(tmp_path / "out")]
    try:
        code = main(argv)
    except SystemExit as e:  # argparse: usage of the sub-command, then its error line
        code = e.code
    err = capsys.readouterr().err
    assert code == 2, (code, err)
    assert "Traceback" not in err, err
    message = message.format(**fill)
    lines = err.strip().splitlines()
    if lines[0].startswith("usage: "):
        assert lines[0].startswith("usage: backbonekit " + " ".join(argv[:1])) and "error: " in lines[-1], err
    else:
        assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert message in err, (message, err)
