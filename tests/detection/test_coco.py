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


def _coco_layout(root):
    """COCO's own layout: annotations/instances_{train,val}2017.json, images in train2017/ and val2017/."""
    from detection.writers import write_coco

    for split, first_id in (("train2017", 7), ("val2017", 70)):
        data = coco_dict()
        for image, new_id in zip(data["images"], (first_id, first_id + 2)):
            for ann in data["annotations"]:
                ann["image_id"] = new_id if ann["image_id"] == image["id"] else ann["image_id"]
            image["id"] = new_id
        written = write_coco(root / "staging" / split, data)
        (root / "annotations").mkdir(exist_ok=True)
        written.rename(root / "annotations" / f"instances_{split}.json")
        (written.parent / "images").rename(root / split)
    return root


def test_cocos_own_layout_is_found_from_its_root(tmp_path):
    from backbonekit.detection.data import build_detection_data

    root = _coco_layout(tmp_path / "coco")
    data = build_detection_data(root, (32, 32), augment=False)
    assert data.format == "coco" and len(data.train) == len(data.val) == 2  # val2017 is the validation data
    assert data.train.image_root == root / "train2017" and data.val.image_root == root / "val2017"
    assert data.val[0][1]["image_id"] == 70
    assert CocoDetection(root / "annotations" / "instances_val2017.json").image_root == root / "val2017"


def test_a_wrong_image_folder_is_said_at_once_and_image_root_sets_it(tmp_path):
    path = write_coco(tmp_path / "data", coco_dict())
    moved = tmp_path / "pictures"
    (tmp_path / "data" / "images").rename(moved)
    with pytest.raises(DataError, match="image id 7: missing file .*--image-root sets that folder"):
        CocoDetection(path)
    assert CocoDetection(path, image_root=moved)[0][0].shape == (3, 40, 60)


def test_skip_bad_images_leaves_out_and_lists_unreadable_images(tmp_path):
    path = write_coco(tmp_path, coco_dict())
    (tmp_path / "images" / "b.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match="b.png: cannot read image"):
        CocoDetection(path)[1]
    ds = CocoDetection(path, skip_bad_images=True)
    assert len(ds) == 1 and ds[0][1]["image_id"] == 7
    assert ds.skipped_images == [(str(tmp_path / "images" / "b.png"), "not an image in a known format")]


def test_image_ids_come_from_the_annotation_file_by_file_name(tmp_path):
    from backbonekit.detection.coco import CocoImageIds

    ids = CocoImageIds([write_coco(tmp_path, coco_dict())])
    assert ids(tmp_path / "images" / "a.png") == 7 and ids("copied/elsewhere/b.png") == 9 and ids("c.png") is None
