"""The official SeqDeepFake layout: ``<root>/<subset>/annotations/{train,val,test}.csv`` plus the images.

Each CSV has columns ``file_path`` (relative to ``root``) and ``label`` (a string such as ``"[1, 2, 4, 0, 0]"``, any
spacing). Every problem raises ``DataError`` naming the CSV and its line; a missing or unreadable image is an error
too, unless ``skip_missing=True`` (``--skip-bad-images``), which leaves those rows out and lists them in
``dataset.skipped`` (file path, CSV line, why).
"""
from __future__ import annotations

import csv
import re
import sys
from pathlib import Path
from typing import Callable

import torch
from PIL import Image
from torch.utils.data import Dataset
from torchvision.transforms import v2

from backbonekit.io.images import load_image, report_skip, unreadable_images
from backbonekit.errors import DataError
from backbonekit.sequence.vocab import MAX_EDITS, NUM_EDIT_TYPES, edit_names

SPLITS = ("train", "val", "test")
COLUMNS = ("file_path", "label")
_LABEL = re.compile(r"^\s*\[?\s*(-?\d+(?:\s*,\s*-?\d+)*)\s*,?\s*\]?\s*$")


def parse_label(text: str) -> list[int]:
    """``"[1, 2, 4, 0, 0]"`` (any spacing) → ``[1, 2, 4, 0, 0]``; ``ValueError`` says what is wrong."""
    m = _LABEL.match(text or "")
    if m is None or text.strip().startswith("[") != text.strip().endswith("]"):
        raise ValueError(f"malformed label {text!r} (expected a list like '[1, 2, 4, 0, 0]')")
    ids = [int(t) for t in m.group(1).split(",")]
    if len(ids) != MAX_EDITS:
        raise ValueError(f"label {text!r} has {len(ids)} ids; expected {MAX_EDITS}")
    bad = [i for i in ids if not 0 <= i <= NUM_EDIT_TYPES]
    if bad:
        raise ValueError(f"label {text!r} has id {bad[0]} outside 0–{NUM_EDIT_TYPES}")
    first_zero = ids.index(0) if 0 in ids else MAX_EDITS
    if any(ids[first_zero:]):
        raise ValueError(f"label {text!r} has an edit after a 0 (padding must come last)")
    return ids


def format_label(ids) -> str:
    """The annotation format: ``[1, 2, 4, 0, 0]``."""
    return "[" + ", ".join(str(int(i)) for i in ids) + "]"


def read_annotations(csv_path: str | Path, kind: str = "annotation") -> list[tuple[str, list[int], int]]:
    """Rows of an annotation (or, with ``kind="predictions"``, a predictions) CSV as (file_path, label, line)."""
    csv_path = Path(csv_path)
    try:
        with open(csv_path, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
            if missing:
                found = ", ".join(reader.fieldnames or []) or "no header"
                raise DataError(f"{csv_path}: missing column(s) {', '.join(missing)} "
                                f"(found {found}; expected file_path,label)")
            rows = []
            for row in reader:
                line = reader.line_num
                try:
                    rows.append((row["file_path"].strip(), parse_label(row["label"]), line))
                except (ValueError, AttributeError) as e:
                    raise DataError(f"{csv_path} line {line}: {e}") from None
    except (FileNotFoundError, NotADirectoryError):
        raise DataError(f"{csv_path}: no such {kind} file") from None
    except IsADirectoryError:
        raise DataError(f"{csv_path}: a folder, not a CSV {kind} file (file_path,label)") from None
    except (UnicodeDecodeError, csv.Error) as e:
        raise DataError(f"{csv_path}: not a readable CSV ({e})") from None
    return rows


def build_transform(image_size: int = 256, *, train: bool) -> Callable:
    """The official augmentation for training; evaluation only resizes. uint8 out: the task normalises with the
    model's statistics (0.5/0.5, the official ``Normalize``)."""
    steps = [v2.ToImage(), v2.Resize((image_size, image_size), antialias=True)]
    if train:
        steps += [v2.ColorJitter(brightness=(0.5, 1.3), contrast=(0.8, 1.5), saturation=(0.2, 1.5)),
                  v2.RandomHorizontalFlip()]
    return v2.Compose(steps)


class SeqDeepFakeDataset(Dataset):
    """One split of one subset; items are ``(image (3, S, S) uint8, label (5,) long)``.

    ``samples`` holds (absolute path, label, CSV line); ``skipped`` the (file_path, line) of rows left out.
    """

    def __init__(self, root: str | Path, subset: str, split: str, *, transform: Callable | None = None,
                 image_size: int = 256, skip_missing: bool = False):
        if split not in SPLITS:
            raise DataError(f"unknown split {split!r}; choose from {', '.join(SPLITS)}")
        edit_names(subset)  # raises on an unknown subset
        self.root, self.subset, self.split = Path(root), subset, split
        if not self.root.is_dir():
            what = "a file" if self.root.exists() else "no such folder"
            raise DataError(f"{self.root}: {what}, not a SeqDeepFake data root (one holding "
                            f"{subset}/annotations/{split}.csv)")
        self.csv_path = self.root / subset / "annotations" / f"{split}.csv"
        self.transform = transform or build_transform(image_size, train=split == "train")
        self.samples: list[tuple[Path, list[int], int]] = []
        self.skipped: list[tuple[str, int, str]] = []
        for file_path, label, line in read_annotations(self.csv_path):
            path = self.root / file_path
            if path.is_file():
                self.samples.append((path, label, line))
            elif skip_missing:
                self.skipped.append((file_path, line, "no such file"))
            else:
                raise DataError(f"{self.csv_path} line {line}: image {path} does not exist "
                                "(pass skip_missing / --skip-bad-images to leave such rows out)")
        if skip_missing:  # decoded once here, so that a broken file is left out rather than met mid-epoch
            bad = unreadable_images([path for path, _, _ in self.samples])
            self.skipped += [(path.relative_to(self.root).as_posix(), line, f"cannot read image ({bad[path]})")
                             for path, _, line in self.samples if path in bad]
            self.samples = [sample for sample in self.samples if sample[0] not in bad]
        if not self.samples:
            raise DataError(f"{self.csv_path}: no usable rows")

    def report_skipped(self) -> None:
        """Every left-out row named on stderr, then their count."""
        for file_path, line, reason in self.skipped:
            report_skip(f"{self.csv_path} line {line} {file_path}", reason)
        if self.skipped:
            print(f"{self.split}: skipped {len(self.skipped)} row(s) (--skip-bad-images)", file=sys.stderr)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        path, label, line = self.samples[i]
        image = load_image(path, where=f"{self.csv_path} line {line}")
        return self.transform(image), torch.tensor(label, dtype=torch.long)

    @property
    def labels(self) -> torch.Tensor:
        return torch.tensor([label for _, label, _ in self.samples], dtype=torch.long).view(-1, MAX_EDITS)
