"""COCO-format detection data: ``{"images": [...], "annotations": [...], "categories": [...]}``.

Category ids may be any integers (COCO's own run 1…90 with gaps); they become contiguous 0-based labels in the
order of increasing id, and ``CocoDetection.category_ids[label]`` maps back for writing results. Boxes are COCO
``[x, y, width, height]`` in pixels and become xyxy, clipped to the image. ``iscrowd`` annotations become ignore
boxes (like KITTI's DontCare: not positives, not background). Zero-area boxes are left out and counted in
``skipped``; a negative width or height, a missing field or a wrong type is a ``DataError`` naming the field and the
annotation id.
"""
from __future__ import annotations

import json
import numbers
from pathlib import Path

import torch
from torch.utils.data import Dataset
from torchvision import tv_tensors

from backbonekit.errors import DataError
from backbonekit.detection.kitti import load_image, split_indices
from backbonekit.io.images import unreadable_images


def read_json(path: str | Path) -> object:
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e})") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: not valid JSON ({e})") from None


def _field(record: dict, name: str, kinds, where: str):
    """``record[name]``, which must exist and be of ``kinds``; else a DataError saying which field of what."""
    if not isinstance(record, dict):
        raise DataError(f"{where}: expected an object, found {type(record).__name__}")
    if name not in record:
        raise DataError(f"{where}: missing field '{name}'")
    value = record[name]
    if not isinstance(value, kinds) or isinstance(value, bool):
        raise DataError(f"{where}: field '{name}' has the wrong type ({type(value).__name__})")
    return value


def _bbox(ann: dict, where: str) -> list[float]:
    box = _field(ann, "bbox", list, where)
    if len(box) != 4 or not all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in box):
        raise DataError(f"{where}: field 'bbox' must be 4 numbers [x, y, width, height], found {box!r}")
    if box[2] < 0 or box[3] < 0:
        raise DataError(f"{where}: field 'bbox' has a negative width or height: {box!r}")
    return [float(v) for v in box]


def parse_coco(data: object, source: str) -> tuple[list[dict], dict[int, list[dict]], list[dict]]:
    """Validate a COCO dict → (images, annotations by image id, categories sorted by id)."""
    if not isinstance(data, dict):
        raise DataError(f"{source}: expected a JSON object with images, annotations and categories")
    images = _field(data, "images", list, source)
    annotations = _field(data, "annotations", list, source)
    categories = _field(data, "categories", list, source)
    for i, cat in enumerate(categories):
        where = f"{source}: categories[{i}]"
        _field(cat, "id", int, where)
        _field(cat, "name", str, where)
    categories = sorted(categories, key=lambda c: c["id"])
    known_categories = {c["id"] for c in categories}
    if len(known_categories) != len(categories):
        raise DataError(f"{source}: duplicate category ids")
    by_image: dict[int, list[dict]] = {}
    for i, img in enumerate(images):
        where = f"{source}: images[{i}]"
        image_id = _field(img, "id", int, where)
        where = f"{source}: image id {image_id}"
        _field(img, "file_name", str, where)
        for name in ("width", "height"):
            if _field(img, name, int, where) <= 0:
                raise DataError(f"{where}: field '{name}' must be positive")
        if image_id in by_image:
            raise DataError(f"{where}: duplicate image id")
        by_image[image_id] = []
    for i, ann in enumerate(annotations):
        ann_id = _field(ann, "id", int, f"{source}: annotations[{i}]")
        where = f"{source}: annotation id {ann_id}"
        image_id = _field(ann, "image_id", int, where)
        if image_id not in by_image:
            raise DataError(f"{where}: field 'image_id' names an unknown image {image_id}")
        category_id = _field(ann, "category_id", int, where)
        if category_id not in known_categories:
            raise DataError(f"{where}: field 'category_id' names an unknown category {category_id}")
        _bbox(ann, where)
        if ann.get("iscrowd", 0) not in (0, 1):
            raise DataError(f"{where}: field 'iscrowd' must be 0 or 1")
        by_image[image_id].append(ann)
    return images, by_image, categories


def resolve_coco_json(data: str | Path) -> Path:
    """A JSON file itself, a folder holding ``annotations.json``, or a root in COCO's own layout (the one
    ``annotations/instances_train*.json``)."""
    data = Path(data)
    if data.is_dir() and not (data / "annotations.json").is_file():
        found = coco_split_files(data, "train")
        if len(found) > 1:
            raise DataError(f"{data}: several training annotation files ({', '.join(f.name for f in found)}): "
                            "give --data one of them")
        data = found[0] if found else data / "annotations.json"
    elif data.is_dir():
        data = data / "annotations.json"
    if not data.is_file():
        raise DataError(f"{data}: no such COCO annotation file")
    return data


def coco_split_files(root: Path, split: str) -> list[Path]:
    """COCO's own layout: ``<root>/annotations/instances_<split><year>.json`` (train2017, val2017, …)."""
    return sorted((root / "annotations").glob(f"instances_{split}*.json"))


def default_image_root(annotation_file: Path) -> Path:
    """Where a JSON's ``file_name`` entries are: ``images/`` beside it; in COCO's own layout
    (``<root>/annotations/instances_val2017.json``) ``<root>/val2017``; else the JSON's own folder."""
    if (annotation_file.parent / "images").is_dir():
        return annotation_file.parent / "images"
    if annotation_file.parent.name == "annotations" and "_" in annotation_file.stem:
        split_folder = annotation_file.parent.parent / annotation_file.stem.rsplit("_", 1)[1]
        if split_folder.is_dir():
            return split_folder
    return annotation_file.parent


class CocoDetection(Dataset):
    """Images and boxes of a COCO-format JSON file, as ``(image, target)`` like ``KittiDetection``.

    ``image_root`` defaults to ``<json folder>/images`` when that exists, else the JSON's folder.
    ``target`` holds ``boxes`` (``BoundingBoxes`` xyxy), ``labels`` (0-based), ``ignore_boxes`` (crowd boxes),
    ``image_id`` (the COCO id) and ``orig_size``.
    """

    def __init__(self, annotation_file: str | Path, image_root: str | Path | None = None, split: str = "all",
                 val_fraction: float = 0.2, seed: int = 0, transforms=None, skip_bad_images: bool = False):
        self.annotation_file = resolve_coco_json(annotation_file)
        images, self.annotations, categories = parse_coco(read_json(self.annotation_file), str(self.annotation_file))
        self.category_ids = [c["id"] for c in categories]  # label → category id
        self.classes = tuple(c["name"] for c in categories)
        self.label_of = {cat_id: label for label, cat_id in enumerate(self.category_ids)}
        self.image_root = Path(image_root) if image_root is not None else default_image_root(self.annotation_file)
        images = sorted(images, key=lambda img: img["id"])
        self.images = [images[i] for i in split_indices(len(images), split, val_fraction, seed)]
        self.skipped_images: list[tuple[str, str]] = []  # (image, why) left out with skip_bad_images
        if skip_bad_images:  # after the split, so the split is the same with and without skipping
            bad = unreadable_images([self.image_root / img["file_name"] for img in self.images])
            self.skipped_images = [(str(path), reason) for path, reason in bad.items()]
            self.images = [img for img in self.images if self.image_root / img["file_name"] not in bad]
        elif self.images:
            self.image_path(0)  # a wrong image folder is said now, not after the first epoch's wait
        self.transforms = transforms
        self.skipped = sum(1 for img in self.images for a in self.annotations[img["id"]]
                           if a["bbox"][2] == 0 or a["bbox"][3] == 0)

    def __len__(self) -> int:
        return len(self.images)

    def image_path(self, index: int) -> Path:
        path = self.image_root / self.images[index]["file_name"]
        if not path.is_file():
            raise DataError(f"{self.annotation_file}: image id {self.images[index]['id']}: missing file {path} "
                            f"(file names are read relative to {self.image_root}; --image-root sets that folder)")
        return path

    def __getitem__(self, index: int):
        info = self.images[index]
        image = load_image(self.image_path(index))
        canvas = (info["height"], info["width"])
        if tuple(image.shape[-2:]) != canvas:
            raise DataError(f"{self.image_root / info['file_name']}: image is {image.shape[-1]}×{image.shape[-2]}, "
                            f"the JSON says {info['width']}×{info['height']}")
        target = self.make_target(info)
        if self.transforms is not None:
            image, target = self.transforms(image, target)
        return image, target

    def make_target(self, info: dict) -> dict:
        canvas = (info["height"], info["width"])
        anns = [a for a in self.annotations[info["id"]] if a["bbox"][2] > 0 and a["bbox"][3] > 0]
        crowd = [a.get("iscrowd", 0) == 1 for a in anns]

        def boxes(selected):
            data = torch.tensor([a["bbox"] for a in selected], dtype=torch.float32).reshape(-1, 4)
            data[:, 2:] += data[:, :2]  # xywh → xyxy
            data[:, 0::2] = data[:, 0::2].clamp(0, canvas[1])
            data[:, 1::2] = data[:, 1::2].clamp(0, canvas[0])
            return tv_tensors.BoundingBoxes(data, format="XYXY", canvas_size=canvas)

        objects = [a for a, c in zip(anns, crowd) if not c]
        return {
            "boxes": boxes(objects),
            "labels": torch.tensor([self.label_of[a["category_id"]] for a in objects], dtype=torch.long),
            "ignore_boxes": boxes([a for a, c in zip(anns, crowd) if c]),
            "image_id": info["id"],
            "orig_size": torch.tensor(canvas),
        }


class CocoImageIds:
    """COCO image ids by file name, read from annotation files, so that results written for image files name the
    images as the annotations do (and ``eval detect --predictions`` accepts them). An image is found by its path
    relative to the image folder (``file_name``), or by its base name where that is unique."""

    def __init__(self, annotation_files: list[str | Path]):
        self.sources = [resolve_coco_json(f) for f in annotation_files]
        self.by_name: dict[str, int] = {}
        base_names: dict[str, set[int]] = {}
        for source in self.sources:
            images, _, _ = parse_coco(read_json(source), str(source))
            for image in images:
                name = Path(image["file_name"]).as_posix()
                self.by_name[name] = image["id"]
                base_names.setdefault(Path(name).name, set()).add(image["id"])
        for name, ids in base_names.items():
            if len(ids) == 1:
                self.by_name.setdefault(name, next(iter(ids)))

    def __call__(self, path: str | Path) -> int | None:
        parts = Path(path).parts
        for start in range(len(parts)):  # the longest tail of the path that the annotations name
            found = self.by_name.get("/".join(parts[start:]))
            if found is not None:
                return found
        return None
