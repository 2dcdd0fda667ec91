import shutil

import pytest
import torch

from backbonekit.errors import DataError
from backbonekit.sequence.data import SeqDeepFakeDataset, build_transform, format_label, parse_label


@pytest.mark.parametrize("text", ["[1, 2, 4, 0, 0]", "[1,2,4,0,0]", " [ 1 ,2,  4, 0,0 ] ", "1, 2, 4, 0, 0"])
def test_parse_label_any_spacing(text):
    assert parse_label(text) == [1, 2, 4, 0, 0]
    assert format_label(parse_label(text)) == "[1, 2, 4, 0, 0]"


@pytest.mark.parametrize("text,message", [
    ("[1 2 4 0 0]", "malformed"), ("[a, b, 0, 0, 0]", "malformed"), ("", "malformed"), ("[1, 2, 0, 0, 0", "malformed"),
    ("[1, 2, 0, 0]", "4 ids; expected 5"), ("[1, 2, 0, 0, 0, 0]", "6 ids"),
    ("[1, 7, 0, 0, 0]", "id 7 outside"), ("[-1, 0, 0, 0, 0]", "id -1 outside"),
    ("[1, 0, 2, 0, 0]", "edit after a 0"),
])
def test_parse_label_rejects(text, message):
    with pytest.raises(ValueError, match=message):
        parse_label(text)


def test_reads_official_layout(synth_root):
    ds = SeqDeepFakeDataset(synth_root, "facial_components", "train", image_size=64)
    image, label = ds[0]
    assert image.shape == (3, 64, 64) and image.dtype == torch.uint8  # the task normalises (0.5/0.5, the model's)
    assert label.shape == (5,) and label.dtype == torch.long
    assert ds.labels.shape == (len(ds), 5)


def test_train_augments_eval_does_not(synth_root):
    train = SeqDeepFakeDataset(synth_root, "facial_components", "train", image_size=64)
    evaluate = SeqDeepFakeDataset(synth_root, "facial_components", "train", image_size=64,
                                  transform=build_transform(64, train=False))
    torch.manual_seed(0)
    a = torch.stack([train[0][0] for _ in range(4)])
    assert (a - a[0]).abs().amax() > 0.01
    b = torch.stack([evaluate[0][0] for _ in range(2)])
    assert torch.equal(b[0], b[1])


def _copy(synth_root, tmp_path, subset="facial_components"):
    shutil.copytree(synth_root / subset, tmp_path / subset)
    return tmp_path / subset / "annotations" / "val.csv"


def _rewrite_row(csv_path, row: int, new_line: str):
    lines = csv_path.read_text().splitlines()
    lines[row] = new_line
    csv_path.write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize("bad_line,message", [
    ('{path},"[1, 2, 9, 0, 0]"', r"val.csv line 3: .*id 9 outside"),
    ('{path},"[1; 2; 0; 0; 0]"', r"val.csv line 3: malformed label"),
    ('{path},"[1, 2, 3]"', r"val.csv line 3: .*3 ids; expected 5"),
    ('facial_components/images/val/nose/999999.jpg,"[1, 0, 0, 0, 0]"',
     r"val.csv line 3: image .*999999.jpg does not exist"),
])
def test_bad_rows_name_file_and_line(synth_root, tmp_path, bad_line, message):
    csv_path = _copy(synth_root, tmp_path)
    path = csv_path.read_text().splitlines()[2].split(",")[0]
    _rewrite_row(csv_path, 2, bad_line.format(path=path))
    with pytest.raises(DataError, match=message):
        SeqDeepFakeDataset(tmp_path, "facial_components", "val")


def test_missing_columns(synth_root, tmp_path):
    csv_path = _copy(synth_root, tmp_path)
    _rewrite_row(csv_path, 0, "path,labels")
    with pytest.raises(DataError, match=r"val.csv: missing column\(s\) file_path, label"):
        SeqDeepFakeDataset(tmp_path, "facial_components", "val")


def test_missing_image_skip_is_counted(synth_root, tmp_path):
    csv_path = _copy(synth_root, tmp_path)
    rows = csv_path.read_text().splitlines()[1:]
    for row in rows[:2]:
        (tmp_path / row.split(",")[0]).unlink()
    ds = SeqDeepFakeDataset(tmp_path, "facial_components", "val", skip_missing=True)
    assert len(ds) == len(rows) - 2 and [line for _, line, _ in ds.skipped] == [2, 3]


def test_unreadable_image_names_row(synth_root, tmp_path):
    csv_path = _copy(synth_root, tmp_path)
    first = csv_path.read_text().splitlines()[1].split(",")[0]
    (tmp_path / first).write_bytes(b"not a jpeg")
    ds = SeqDeepFakeDataset(tmp_path, "facial_components", "val")
    with pytest.raises(DataError, match=r"val.csv line 2: .*: cannot read image"):
        ds[0]


def test_missing_annotation_file(tmp_path):
    with pytest.raises(DataError, match="no such annotation file"):
        SeqDeepFakeDataset(tmp_path, "facial_components", "test")
