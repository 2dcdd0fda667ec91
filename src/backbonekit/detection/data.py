"""Which detection data set a ``--data`` path is (KITTI folder or COCO JSON), split into train and val, with the
transforms of each split.

- KITTI: a folder with ``training/image_2`` + ``training/label_2`` (or those two directly); ``--classes`` picks the
  classes (default Car, Pedestrian, Cyclist); the one labelled folder is split by ``val_fraction`` and ``seed``.
- COCO: an annotation JSON (or a folder holding ``annotations.json``, or a root in COCO's own layout:
  ``annotations/instances_train2017.json`` with the images in ``train2017/``); its categories are the classes. A
  separate validation JSON can be given with ``val_data`` (COCO's layout: its ``instances_val*.json`` is taken);
  otherwise the images are split like KITTI's. ``image_root`` is the folder the JSON's file names are relative to,
  when it is none of the usual places (``CocoDetection``).

With ``skip_bad_images`` unreadable images are left out after the split (so the split does not change) and listed in
``DetectionData.skipped``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from torch.utils.data import Dataset

from backbonekit.detection.coco import CocoDetection, coco_split_files
from backbonekit.detection.kitti import DEFAULT_CLASSES, KittiDetection, resolve_kitti_root
from backbonekit.detection.transforms import eval_transforms, train_transforms
from backbonekit.errors import DataError


@dataclass
class DetectionData:
    train: Dataset
    val: Dataset
    class_names: list[str]
    format: str                                   # "kitti" or "coco"
    category_ids: list[int] = field(default_factory=list)  # COCO: label → category id
    source: str = ""
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (image, why) left out with skip_bad_images
    unlabelled: list[Path] = field(default_factory=list)  # KITTI images with no label file, left out


def data_format(data: str | Path) -> str:
    """"kitti" or "coco" for a ``--data`` path; anything else is a ``DataError`` saying what was expected."""
    path = Path(data)
    if path.suffix == ".json" or (path.is_dir() and ((path / "annotations.json").is_file()
                                                     or coco_split_files(path, "train"))):
        return "coco"
    if path.is_dir():
        resolve_kitti_root(path)  # raises with what a KITTI folder must hold
        return "kitti"
    what = "a file that is not a COCO annotation JSON" if path.exists() else "no such data set"
    raise DataError(f"{path}: {what} (give a KITTI folder with training/image_2 and training/label_2, "
                    "a COCO annotation JSON, or a COCO root with annotations/instances_train*.json)")


def build_detection_data(data: str | Path, image_size: tuple[int, int], *, classes=None, val_fraction: float = 0.2,
                         seed: int = 0, augment: bool = True, val_data: str | Path | None = None,
                         scale_range: tuple[float, float] = (0.5, 1.5), image_root: str | Path | None = None,
                         skip_bad_images: bool = False, strict_labels: bool = False) -> DetectionData:
    """Train (augmented unless ``augment=False``) and val (letterboxed) data sets at (H, W) ``image_size``;
    ``strict_labels``: a KITTI image with no label file is an error rather than left out."""
    size = tuple(image_size)
    train_tf = train_transforms(size, scale_range=scale_range) if augment else eval_transforms(size)
    val_tf = eval_transforms(size)
    if data_format(data) == "kitti":
        if image_root is not None:
            raise DataError(f"{data}: --image-root applies to COCO data; KITTI images are in image_2/")
        classes = tuple(classes or DEFAULT_CLASSES)
        common = dict(classes=classes, val_fraction=val_fraction, seed=seed, skip_bad_images=skip_bad_images,
                      strict_labels=strict_labels)
        train = KittiDetection(data, split="train", transforms=train_tf, **common)
        val = KittiDetection(data, split="val", transforms=val_tf, **common)
        return DetectionData(train, val, list(classes), "kitti", source=str(data),
                             skipped=train.skipped_images + val.skipped_images, unlabelled=train.unlabelled_images)
    if classes:
        raise DataError(f"{data}: --classes applies to KITTI data; a COCO file's classes are its categories")
    common = dict(image_root=image_root, skip_bad_images=skip_bad_images)
    if val_data is None and coco_layout_val(data) is not None:  # its images are in their own folder (val2017/)
        val_data, val_root = coco_layout_val(data), None
    else:
        val_root = image_root
    if val_data is not None:
        train = CocoDetection(data, transforms=train_tf, **common)
        val = CocoDetection(val_data, transforms=val_tf, image_root=val_root, skip_bad_images=skip_bad_images)
        if val.classes != train.classes:
            raise DataError(f"{val_data}: categories {list(val.classes)} differ from those of {data} "
                            f"{list(train.classes)}")
    else:
        common.update(val_fraction=val_fraction, seed=seed)
        train = CocoDetection(data, split="train", transforms=train_tf, **common)
        val = CocoDetection(data, split="val", transforms=val_tf, **common)
    return DetectionData(train, val, list(train.classes), "coco", list(train.category_ids), str(data),
                         skipped=train.skipped_images + val.skipped_images)


def coco_layout_val(data: str | Path) -> Path | None:
    """The validation JSON of a root in COCO's own layout given as ``--data`` (its one ``instances_val*.json``)."""
    root = Path(data)
    if not root.is_dir() or (root / "annotations.json").is_file():
        return None
    found = coco_split_files(root, "val")
    return found[0] if len(found) == 1 else None
