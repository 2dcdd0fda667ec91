import copy
import json

import pytest
import torch
from detection.writers import coco_dict, write_coco

from backbonekit.detection.coco import CocoDetection
from backbonekit.errors import DataError


def test_any_category_ids_become_contiguous_labels(tmp_path):
    ds = CocoDetection(write_coco(tmp_path, coco_dict()))
    assert ds.category_ids == [3, 18] and ds.classes == ("car", "dog")  # sorted by id; label → id kept
    image, target = ds[0]
    assert image.shape == (3, 40, 60) and target["image_id"] == 7
    assert target["labels"].tolist() == [1, 0]
    # xywh → xyxy, clipped to the 60×40 image; the crowd box is an ignore region.
    assert target["boxes"].tolist() == [[10, 5, 30, 15], [50, 30, 60, 40]]
    assert target["ignore_boxes"].tolist() == [[0, 0, 8, 8]]
    assert ds[1][1]["labels"].tolist() == [0]  # iscrowd absent means 0


def test_image_root_defaults_and_missing_files(tmp_path):
    path = write_coco(tmp_path, coco_dict())
    assert CocoDetection(tmp_path).annotation_file == path  # a folder holding annotations.json works too
    (tmp_path / "images" / "b.png").unlink()
    with pytest.raises(DataError, match="image id 9: missing file"):
        CocoDetection(path)[1]


def test_zero_area_boxes_are_skipped_and_counted(tmp_path):
    data = coco_dict()
    data["annotations"][0]["bbox"] = [10, 5, 0, 10]
    ds = CocoDetection(write_coco(tmp_path, data))
    assert ds.skipped == 1 and ds[0][1]["labels"].tolist() == [0]


@pytest.mark.parametrize("edit, message", [
    (lambda d: d["annotations"][1].pop("bbox"), "annotation id 2: missing field 'bbox'"),
    (lambda d: d["annotations"][1].update(bbox=[1, 2, 3]), "annotation id 2: field 'bbox' must be 4 numbers"),
    (lambda d: d["annotations"][1].update(bbox=[1, 2, "3", 4]), "annotation id 2: field 'bbox' must be 4 numbers"),
    (lambda d: d["annotations"][1].update(bbox=[1, 2, -3, 4]), "annotation id 2: field 'bbox' has a negative"),
    (lambda d: d["annotations"][2].update(category_id=5), "annotation id 3: field 'category_id' names an unknown"),
    (lambda d: d["annotations"][3].update(image_id=1), "annotation id 4: field 'image_id' names an unknown image"),
    (lambda d: d["annotations"][3].update(image_id="9"), "annotation id 4: field 'image_id' has the wrong type"),
    (lambda d: d["annotations"][0].update(iscrowd=2), "annotation id 1: field 'iscrowd' must be 0 or 1"),
    (lambda d: d["annotations"][0].pop("id"), r"annotations\[0\]: missing field 'id'"),
    (lambda d: d["images"][1].pop("width"), "image id 9: missing field 'width'"),
    (lambda d: d.pop("categories"), "missing field 'categories'"),
])
def test_malformed_fields_are_named(tmp_path, edit, message):
    data = copy.deepcopy(coco_dict())
    write_coco(tmp_path, data)
    edit(data)
    (tmp_path / "annotations.json").write_text(json.dumps(data))
    with pytest.raises(DataError, match=message):
        CocoDetection(tmp_path / "annotations.json")


def test_invalid_json(tmp_path):
    (tmp_path / "annotations.json").write_text("{ not json")
    with pytest.raises(DataError, match="not valid JSON"):
        CocoDetection(tmp_path / "annotations.json")


def test_split_is_seeded(tmp_path):
    path = write_coco(tmp_path, coco_dict())
    train = CocoDetection(path, split="train", val_fraction=0.5)
    val = CocoDetection(path, split="val", val_fraction=0.5)
    assert {i["id"] for i in train.images} | {i["id"] for i in val.images} == {7, 9} and len(val) == 1
    assert torch.equal(CocoDetection(path, split="val", val_fraction=0.5)[0][1]["boxes"], val[0][1]["boxes"])
