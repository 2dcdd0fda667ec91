"""KITTI 2D object detection: the label_2 / result file format, and a dataset of one training folder.

File format (KITTI object devkit readme): one object per line, 15 space-separated fields, a 16th (score) only in result files::

    type truncated occluded alpha left top right bottom height width length x y z rotation_y [score]

How KITTI types become training targets (``KittiDetection``), following the official evaluation so that what we
train on is what gets scored:

- a type in ``classes`` is an object of that class (label = its index in ``classes``);
- a *neighbour* type — Van when Car is a class, Person_sitting when Pedestrian is a class — and every ``DontCare``
  region become ignore boxes: the evaluator neither rewards nor punishes detections there, so the matcher must not
  train anchors on them as background either;
- every other type (Truck, Tram, Misc, and KITTI types left out of ``classes``) is dropped.

Boxes are clipped to the image. A box that lies wholly outside its image (nothing left after clipping) is an error
naming file and line; with ``out_of_image="skip"`` it is left out and counted in ``KittiDetection.skipped``. An
unreadable image stops with its path, or with ``skip_bad_images`` is left out and listed in ``skipped_images``. An
image with no label file is left out and listed in ``unlabelled_images`` (with ``strict_labels``: an error).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset
from torchvision import tv_tensors

from backbonekit.io.images import load_image_tensor, unreadable_images
from backbonekit.errors import ConfigError, DataError

KITTI_TYPES = ("Car", "Van", "Truck", "Pedestrian", "Person_sitting", "Cyclist", "Tram", "Misc", "DontCare")
DEFAULT_CLASSES = ("Car", "Pedestrian", "Cyclist")
# Objects of these types are "ignored, not counted" when their key is scored (the official evaluation's rule).
NEIGHBOURS = {"Car": "Van", "Pedestrian": "Person_sitting"}
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")

FIELDS = ("type", "truncated", "occluded", "alpha", "left", "top", "right", "bottom",
          "height", "width", "length", "x", "y", "z", "rotation_y", "score")


@dataclass
class KittiObject:
    """One line of a KITTI label or result file."""
    type: str
    truncated: float
    occluded: int
    alpha: float
    box: tuple[float, float, float, float]  # left, top, right, bottom in pixels (xyxy)
    dimensions: tuple[float, float, float] = (-1.0, -1.0, -1.0)  # height, width, length (m)
    location: tuple[float, float, float] = (-1000.0, -1000.0, -1000.0)  # x, y, z in camera coordinates (m)
    rotation_y: float = -10.0
    score: float | None = None
    line: int = 0  # 1-based line number in its file, for messages

    @property
    def height(self) -> float:
        """Box height in pixels: the quantity the difficulty levels filter on."""
        return self.box[3] - self.box[1]

    def to_line(self) -> str:
        """The object as one line in the official format (16 fields when it has a score)."""
        if self.type == "DontCare":  # the label files write DontCare's unused fields as these integers
            box = " ".join(f"{v:.2f}" for v in self.box)
            return f"DontCare -1 -1 -10 {box} -1 -1 -1 -1000 -1000 -1000 -10"
        values = [self.truncated, self.occluded, self.alpha, *self.box, *self.dimensions, *self.location,
                  self.rotation_y]
        text = [self.type] + [str(v) if isinstance(v, int) else f"{v:.2f}" for v in values]
        if self.score is not None:
            text.append(f"{self.score:.4f}")
        return " ".join(text)


def parse_kitti_line(text: str, source: str, line: int, with_score: bool | None = False,
                     types=KITTI_TYPES) -> KittiObject:
    """One line → ``KittiObject``; ``with_score``: False for label files (15 fields), True for results (16), None for
    either; ``types``: the object types allowed (KITTI's; ``kitti_type_name`` of other class names for result files
    of a detector trained on other data). Every problem is a ``DataError`` naming ``source`` and ``line``."""
    where = f"{source}:{line}"
    fields = text.split()
    allowed = {False: (15,), True: (16,), None: (15, 16)}[with_score]
    if len(fields) not in allowed:
        expect = " or ".join(str(n) for n in allowed)
        raise DataError(f"{where}: expected {expect} space-separated fields, found {len(fields)}")
    kind = fields[0]
    if kind not in types:
        official = {t.lower(): t for t in types}.get(kind.lower())
        hint = (f"; types are case-sensitive here: write {official!r} (the official devkit would read {kind!r} as "
                f"{official!r})" if official else "")
        what = "KITTI types" if tuple(types) == KITTI_TYPES else "types"
        raise DataError(f"{where}: unknown object type {kind!r} ({what}: {', '.join(types)}{hint})")
    numbers = []
    for name, value in zip(FIELDS[1:], fields[1:]):
        try:
            number = float(value)
        except ValueError:
            raise DataError(f"{where}: field '{name}' is not a number: {value!r}") from None
        if not math.isfinite(number):
            raise DataError(f"{where}: field '{name}' is not finite: {value!r}")
        numbers.append(number)
    truncated, occluded, alpha, left, top, right, bottom = numbers[:7]
    if not occluded.is_integer() or int(occluded) not in (-1, 0, 1, 2, 3):
        raise DataError(f"{where}: field 'occluded' must be -1, 0, 1, 2 or 3, found {fields[2]!r}")
    if not -1.0 <= truncated <= 1.0:
        raise DataError(f"{where}: field 'truncated' must lie in [0, 1] (or -1), found {fields[1]!r}")
    if right < left or bottom < top:
        raise DataError(f"{where}: inverted box (left {left}, top {top}, right {right}, bottom {bottom})")
    return KittiObject(type=kind, truncated=truncated, occluded=int(occluded), alpha=alpha,
                       box=(left, top, right, bottom), dimensions=tuple(numbers[7:10]),
                       location=tuple(numbers[10:13]), rotation_y=numbers[13],
                       score=numbers[14] if len(numbers) == 15 else None, line=line)


def read_kitti_file(path: str | Path, with_score: bool | None = False, types=KITTI_TYPES) -> list[KittiObject]:
    """All objects of one label (``with_score=False``) or result (``True``) file; blank lines are skipped, an empty
    file is an image without objects."""
    path = Path(path)
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: cannot read ({e})") from None
    return [parse_kitti_line(line, str(path), number, with_score, types)
            for number, line in enumerate(text.splitlines(), start=1) if line.strip()]


def write_kitti_file(path: str | Path, objects: list[KittiObject]) -> None:
    Path(path).write_text("".join(obj.to_line() + "\n" for obj in objects))


def resolve_kitti_root(root: str | Path) -> Path:
    """``<root>/training`` when it holds ``image_2``/``label_2``, else ``root`` itself if it does."""
    root = Path(root)
    for folder in (root / "training", root):
        if (folder / "label_2").is_dir() and (folder / "image_2").is_dir():
            return folder
    raise DataError(f"{root}: not a KITTI folder (expected training/image_2 and training/label_2, "
                    "or image_2 and label_2 directly under it)")


def unlabelled_images(folder: Path) -> list[Path]:
    """Images in ``folder/image_2`` with no ``folder/label_2/<stem>.txt`` (KITTI gives an image without objects an
    empty file)."""
    labelled = {p.stem for p in (folder / "label_2").glob("*.txt")}
    return sorted(p for p in (folder / "image_2").iterdir()
                  if p.suffix.lower() in IMAGE_SUFFIXES and p.stem not in labelled)


def find_image(image_dir: Path, stem: str) -> Path | None:
    for suffix in IMAGE_SUFFIXES:
        if (image_dir / (stem + suffix)).is_file():
            return image_dir / (stem + suffix)
    return None


def split_indices(n: int, split: str, val_fraction: float, seed: int) -> list[int]:
    """A seeded train/val split of ``range(n)``: the same seed always gives the same split."""
    if split == "all":
        return list(range(n))
    if split not in ("train", "val"):
        raise ConfigError(f"split must be 'train', 'val' or 'all', not {split!r}")
    if not 0.0 < val_fraction < 1.0:
        raise ConfigError(f"val fraction must lie strictly between 0 and 1, not {val_fraction}")
    order = np.random.default_rng(seed).permutation(n)
    n_val = max(1, round(n * val_fraction)) if n > 1 else 0
    chosen = order[:n_val] if split == "val" else order[n_val:]
    return sorted(int(i) for i in chosen)


@dataclass
class KittiRecord:
    image: Path
    label: Path
    size: tuple[int, int]  # (H, W)
    objects: list[KittiObject]


class KittiDetection(Dataset):
    """KITTI 2D detection from one folder with ``image_2``/``label_2`` (the official ``training`` folder).

    Items are ``(image, target)``: a uint8 ``tv_tensors.Image`` and a dict with ``boxes`` (``BoundingBoxes``, xyxy
    pixels), ``labels`` (0-based long), ``ignore_boxes`` (DontCare and neighbour types), the KITTI extras of each
    kept object — ``truncated``, ``occluded``, ``height`` (its unclipped box height) — for the evaluator, and
    ``image_id`` (the file stem, as a string) and ``orig_size`` (H, W). ``transforms(image, target)`` runs last.
    """

    def __init__(self, root: str | Path, classes=DEFAULT_CLASSES, split: str = "all", val_fraction: float = 0.2,
                 seed: int = 0, transforms=None, out_of_image: str = "error", skip_bad_images: bool = False,
                 strict_labels: bool = False):
        self.classes = tuple(classes)
        for name in self.classes:
            if name not in KITTI_TYPES or name == "DontCare":
                raise ConfigError(f"unknown KITTI class {name!r} (choose from {', '.join(KITTI_TYPES[:-1])})")
        if out_of_image not in ("error", "skip"):
            raise ConfigError(f"out_of_image must be 'error' or 'skip', not {out_of_image!r}")
        self.ignore_types = {"DontCare"} | {NEIGHBOURS[c] for c in self.classes
                                            if c in NEIGHBOURS and NEIGHBOURS[c] not in self.classes}
        self.out_of_image = out_of_image
        self.transforms = transforms
        self.skipped = 0  # boxes wholly outside their image, with out_of_image="skip"
        self.folder = resolve_kitti_root(root)
        labels = sorted((self.folder / "label_2").glob("*.txt"))
        if not labels:
            raise DataError(f"{self.folder / 'label_2'}: no label files (*.txt)")
        # Images the split never sees (it is drawn over the label files); counted so that the caller can say so.
        self.unlabelled_images = unlabelled_images(self.folder)
        if strict_labels and self.unlabelled_images:
            raise DataError(f"{self.folder / 'image_2'}: {len(self.unlabelled_images)} image(s) have no label file in "
                            f"label_2 (first: {self.unlabelled_images[0].name}); give an image without objects an "
                            "empty .txt, or leave out --strict-labels to train without them")
        chosen = [labels[i] for i in split_indices(len(labels), split, val_fraction, seed)]
        self.skipped_images: list[tuple[str, str]] = []  # (image, why) left out with skip_bad_images
        if skip_bad_images:  # after the split, so the split is the same with and without skipping
            chosen = self._readable(chosen)
        self.records = [self._record(label) for label in chosen]

    def _readable(self, labels: list[Path]) -> list[Path]:
        images = {label: find_image(self.folder / "image_2", label.stem) for label in labels}
        bad = unreadable_images([image for image in images.values() if image is not None])
        kept = []
        for label, image in images.items():
            if image is None:
                self.skipped_images.append((str(self.folder / "image_2" / f"{label.stem}.png"), "no such file"))
            elif image in bad:
                self.skipped_images.append((str(image), bad[image]))
            else:
                kept.append(label)
        return kept

    def _record(self, label: Path) -> KittiRecord:
        image = find_image(self.folder / "image_2", label.stem)
        if image is None:
            raise DataError(f"{label}: no image {label.stem}.png (or .jpg) in {self.folder / 'image_2'}")
        try:
            with Image.open(image) as im:  # reads the header only
                width, height = im.size
        except OSError as e:
            raise DataError(f"{image}: cannot read image ({e})") from None
        kept = []
        for obj in read_kitti_file(label):
            if obj.type not in self.classes and obj.type not in self.ignore_types:
                continue
            x1, y1, x2, y2 = obj.box
            if min(x2, width) - max(x1, 0) <= 0 or min(y2, height) - max(y1, 0) <= 0:
                if self.out_of_image == "skip":
                    self.skipped += 1
                    continue
                raise DataError(f"{label}:{obj.line}: box {obj.box} lies outside the {width}×{height} image")
            kept.append(obj)
        return KittiRecord(image=image, label=label, size=(height, width), objects=kept)

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int):
        record = self.records[index]
        image = load_image(record.image)
        if tuple(image.shape[-2:]) != record.size:
            raise DataError(f"{record.image}: size changed since the data set was indexed")
        target = self.make_target(record)
        if self.transforms is not None:
            image, target = self.transforms(image, target)
        return image, target

    def make_target(self, record: KittiRecord) -> dict:
        objects = [o for o in record.objects if o.type in self.classes]
        ignored = [o for o in record.objects if o.type in self.ignore_types]
        canvas = record.size

        def boxes(objs):
            data = torch.tensor([o.box for o in objs], dtype=torch.float32).reshape(-1, 4)
            data[:, 0::2] = data[:, 0::2].clamp(0, canvas[1])
            data[:, 1::2] = data[:, 1::2].clamp(0, canvas[0])
            return tv_tensors.BoundingBoxes(data, format="XYXY", canvas_size=canvas)

        return {
            "boxes": boxes(objects),
            "labels": torch.tensor([self.classes.index(o.type) for o in objects], dtype=torch.long),
            "ignore_boxes": boxes(ignored),
            "truncated": torch.tensor([o.truncated for o in objects], dtype=torch.float32),
            "occluded": torch.tensor([o.occluded for o in objects], dtype=torch.long),
            "height": torch.tensor([o.height for o in objects], dtype=torch.float32),
            "image_id": record.label.stem,
            "orig_size": torch.tensor(canvas),
        }


def load_image(path: Path) -> tv_tensors.Image:
    """An RGB uint8 image as (3, H, W); an unreadable file is a ``DataError`` naming it."""
    return tv_tensors.Image(load_image_tensor(path))


def detections_to_kitti(boxes: torch.Tensor, scores: torch.Tensor, labels: torch.Tensor,
                        classes=DEFAULT_CLASSES) -> list[KittiObject]:
    """One image's detections (xyxy in original pixels, scores, 0-based labels) as KITTI result objects; the
    fields a 2D detector does not estimate get the values the devkit expects for "unknown" (-1, -10, -1000)."""
    types = [kitti_type_name(name) for name in classes]
    return [KittiObject(types[int(label)], -1.0, -1, -10.0, tuple(float(v) for v in box), score=float(score))
            for box, score, label in zip(boxes.tolist(), scores.tolist(), labels.tolist())]


def kitti_type_name(class_name: str) -> str:
    """A class name as one field of a KITTI line: the format splits on spaces, so "traffic light" is written
    "traffic_light" (KITTI's own types join words the same way: Person_sitting)."""
    return "_".join(class_name.split())
