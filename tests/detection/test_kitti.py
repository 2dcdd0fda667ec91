import pytest
import torch
from detection.writers import CAR, DONTCARE, MISC, PEDESTRIAN, VAN, write_kitti
from torchvision import tv_tensors

from backbonekit.detection.kitti import KittiDetection, parse_kitti_line, read_kitti_file, write_kitti_file
from backbonekit.errors import ConfigError, DataError


def test_parses_the_reference_lines():
    car = parse_kitti_line(CAR, "x.txt", 1)
    assert (car.type, car.truncated, car.occluded, car.alpha) == ("Car", 0.0, 0, -1.58)
    assert car.box == (587.01, 173.33, 614.12, 200.12)
    assert car.dimensions == (1.65, 1.67, 3.64) and car.location == (-0.65, 1.71, 46.70) and car.rotation_y == -1.59
    assert car.score is None and car.height == pytest.approx(26.79)
    dc = parse_kitti_line(DONTCARE, "x.txt", 2)
    assert (dc.type, dc.truncated, dc.occluded, dc.alpha, dc.location) == ("DontCare", -1, -1, -10, (-1000,) * 3)
    misc, ped = parse_kitti_line(MISC, "x", 3), parse_kitti_line(PEDESTRIAN, "x", 4)
    assert (misc.type, misc.occluded) == ("Misc", 2) and (ped.truncated, ped.occluded) == (0.88, 3)


def test_result_lines_have_a_score_and_round_trip(tmp_path):
    det = parse_kitti_line(CAR + " 0.875", "r.txt", 1, with_score=True)
    assert det.score == 0.875
    with pytest.raises(DataError, match="r.txt:1: expected 16"):
        parse_kitti_line(CAR, "r.txt", 1, with_score=True)
    objects = [parse_kitti_line(line, "x", i) for i, line in enumerate([CAR, DONTCARE, VAN], 1)]
    write_kitti_file(tmp_path / "a.txt", objects)
    assert (tmp_path / "a.txt").read_text().splitlines() == [CAR, DONTCARE, VAN]  # the exact official format
    assert [o.box for o in read_kitti_file(tmp_path / "a.txt")] == [o.box for o in objects]


@pytest.mark.parametrize("line, message", [
    ("Car 0.00 0 -1.58 587.01 173.33 614.12 200.12 1.65 1.67 3.64 -0.65 1.71 46.70", "expected 15 .* found 14"),
    (CAR + " 0.5", "expected 15 .* found 16"),
    ("Car 0.00 0 -1.58 587.01 abc 614.12 200.12 1.65 1.67 3.64 -0.65 1.71 46.70 -1.59", "field 'top' is not a number"),
    ("Car 0.00 0 -1.58 587.01 173.33 514.12 200.12 1.65 1.67 3.64 -0.65 1.71 46.70 -1.59", "inverted box"),
    ("Car 0.00 0 -1.58 587.01 173.33 614.12 100.12 1.65 1.67 3.64 -0.65 1.71 46.70 -1.59", "inverted box"),
    ("Bus 0.00 0 -1.58 587.01 173.33 614.12 200.12 1.65 1.67 3.64 -0.65 1.71 46.70 -1.59", "unknown object type 'Bus'"),
    ("car 0.00 0 -1.58 587.01 173.33 614.12 200.12 1.65 1.67 3.64 -0.65 1.71 46.70 -1.59", "unknown object type"),
    ("Car 0.00 1.5 -1.58 587.01 173.33 614.12 200.12 1.65 1.67 3.64 -0.65 1.71 46.70 -1.59", "'occluded'"),
    ("Car 1.70 0 -1.58 587.01 173.33 614.12 200.12 1.65 1.67 3.64 -0.65 1.71 46.70 -1.59", "'truncated'"),
    ("Car 0.00 0 nan 587.01 173.33 614.12 200.12 1.65 1.67 3.64 -0.65 1.71 46.70 -1.59", "'alpha' is not finite"),
])
def test_bad_lines_name_file_and_line(tmp_path, line, message):
    path = tmp_path / "000042.txt"
    path.write_text(CAR + "\n\n" + line + "\n")
    with pytest.raises(DataError, match=rf"000042.txt:3: .*{message}"):
        read_kitti_file(path)


def test_dataset_mapping_rule(kitti_root):
    ds = KittiDetection(kitti_root)
    assert len(ds) == 4 and ds.classes == ("Car", "Pedestrian", "Cyclist")
    image, target = ds[0]
    assert isinstance(image, tv_tensors.Image) and image.dtype == torch.uint8 and image.shape == (3, 375, 1242)
    assert isinstance(target["boxes"], tv_tensors.BoundingBoxes)
    # Car and Pedestrian kept (the pedestrian clipped to the 1242-wide image); Truck and Misc dropped.
    assert target["labels"].tolist() == [0, 1]
    assert torch.allclose(target["boxes"], torch.tensor([[587.01, 173.33, 614.12, 200.12],
                                                         [1200.0, 150.0, 1242.0, 260.0]]))
    # DontCare and Van (Car's neighbour) are ignore regions.
    assert torch.allclose(target["ignore_boxes"], torch.tensor([[503.89, 169.71, 590.61, 190.13],
                                                                [0.0, 160.0, 120.5, 260.7]]))
    assert target["truncated"].tolist() == pytest.approx([0.0, 0.88]) and target["occluded"].tolist() == [0, 3]
    assert target["height"].tolist() == pytest.approx([26.79, 110.0], abs=1e-4)
    assert target["image_id"] == "000000" and target["orig_size"].tolist() == [375, 1242]
    _, empty = ds[1]
    assert empty["boxes"].shape == (0, 4) and empty["labels"].shape == (0,) and empty["ignore_boxes"].shape == (0, 4)


def test_class_list_is_configurable(kitti_root):
    ds = KittiDetection(kitti_root, classes=("Van", "Car"))
    _, target = ds[0]
    assert target["labels"].tolist() == [1, 0]  # Car, Van in file order
    assert len(target["ignore_boxes"]) == 1  # only DontCare: Van is a class now
    with pytest.raises(ConfigError, match="Bus"):
        KittiDetection(kitti_root, classes=("Car", "Bus"))


def test_root_may_point_at_the_training_folder(kitti_root):
    assert len(KittiDetection(kitti_root / "training")) == 4
    with pytest.raises(DataError, match="not a KITTI folder"):
        KittiDetection(kitti_root / "training" / "image_2")


def test_missing_image_names_the_label_file(tmp_path):
    root = write_kitti(tmp_path, {"000000": CAR + "\n", "000001": CAR + "\n"}, images=["000000"])
    with pytest.raises(DataError, match="000001.txt: no image 000001.png"):
        KittiDetection(root)


def test_bad_label_in_a_dataset_names_file_and_line(tmp_path):
    root = write_kitti(tmp_path, {"000000": CAR + "\nCar 0 0\n"})
    with pytest.raises(DataError, match="000000.txt:2: expected 15"):
        KittiDetection(root)


def test_box_wholly_outside_the_image_errors_or_is_skipped(tmp_path):
    outside = "Car 0.00 0 -1.58 1300.00 173.33 1400.12 200.12 1.65 1.67 3.64 -0.65 1.71 46.70 -1.59"
    root = write_kitti(tmp_path, {"000000": CAR + "\n" + outside + "\n"})
    with pytest.raises(DataError, match="000000.txt:2: box .* outside the 1242×375 image"):
        KittiDetection(root)
    ds = KittiDetection(root, out_of_image="skip")
    assert ds.skipped == 1 and len(ds[0][1]["boxes"]) == 1


def test_seeded_split(tmp_path):
    root = write_kitti(tmp_path, {f"{i:06d}": "" for i in range(10)}, size=(8, 8))
    train = KittiDetection(root, split="train", val_fraction=0.3, seed=1)
    val = KittiDetection(root, split="val", val_fraction=0.3, seed=1)
    names = lambda ds: {r.label.stem for r in ds.records}  # noqa: E731
    assert len(val) == 3 and len(train) == 7 and not names(train) & names(val)
    assert names(val) == names(KittiDetection(root, split="val", val_fraction=0.3, seed=1))
    assert names(val) != names(KittiDetection(root, split="val", val_fraction=0.3, seed=2))


def test_detections_become_result_lines(tmp_path):
    from backbonekit.detection.kitti import detections_to_kitti

    objects = detections_to_kitti(torch.tensor([[1.0, 2.0, 30.5, 40.25]]), torch.tensor([0.75]), torch.tensor([2]))
    write_kitti_file(tmp_path / "r.txt", objects)
    line = (tmp_path / "r.txt").read_text().strip()
    assert line == ("Cyclist -1.00 -1 -10.00 1.00 2.00 30.50 40.25 -1.00 -1.00 -1.00 -1000.00 -1000.00 -1000.00 "
                    "-10.00 0.7500")
    assert read_kitti_file(tmp_path / "r.txt", with_score=True)[0].score == 0.75


def test_a_class_name_with_spaces_is_one_field_written_and_read_back(tmp_path):
    from backbonekit.detection.kitti import detections_to_kitti, kitti_type_name, read_kitti_file, write_kitti_file

    objects = detections_to_kitti(torch.tensor([[1.0, 2.0, 30.0, 40.0]]), torch.tensor([0.9]), torch.tensor([0]),
                                  ["traffic light"])
    write_kitti_file(tmp_path / "000000.txt", objects)
    line = (tmp_path / "000000.txt").read_text()
    assert len(line.split()) == 16 and line.startswith("traffic_light ")
    back = read_kitti_file(tmp_path / "000000.txt", with_score=True, types=[kitti_type_name("traffic light")])
    assert back[0].type == "traffic_light" and back[0].box == pytest.approx((1, 2, 30, 40)) and back[0].score == 0.9


def test_skip_bad_images_leaves_out_unreadable_images_after_the_same_split(kitti_root):
    from backbonekit.detection.kitti import KittiDetection

    plain = KittiDetection(kitti_root, split="val", val_fraction=0.5, seed=0)
    broken = plain.records[0].image
    broken.write_bytes(broken.read_bytes()[:40])  # truncated
    with pytest.raises(DataError, match="cannot read image"):
        KittiDetection(kitti_root, split="val", val_fraction=0.5, seed=0)
    kept = KittiDetection(kitti_root, split="val", val_fraction=0.5, seed=0, skip_bad_images=True)
    assert [r.label for r in kept.records] == [r.label for r in plain.records[1:]]
    assert kept.skipped_images[0][0] == str(broken)


def test_an_image_with_no_label_file_is_counted_or_refused(tmp_path):
    """Left out of training (the split is over the label files) but named in the data line; --strict-labels
    refuses it. An empty label file is an image without objects, not a missing label."""
    from backbonekit.detection.data import build_detection_data
    from backbonekit.detection.train import data_summary

    root = write_kitti(tmp_path, {f"{i:06d}": CAR + "\n" for i in range(4)} | {"000004": ""}, size=(375, 1242),
                       images=[f"{i:06d}" for i in range(7)])
    data = build_detection_data(root, (64, 128), val_fraction=0.25, augment=False)
    assert len(data.train) + len(data.val) == 5 and [p.name for p in data.unlabelled] == ["000005.png", "000006.png"]
    line = data_summary(data)
    assert line.startswith(f"data: {root} (KITTI), 4 training and 1 validation images; 2 image(s) with no label "
                           "file left out (000005.png, 000006.png; --strict-labels refuses them)"), line
    with pytest.raises(DataError, match=r"image_2: 2 image\(s\) have no label file in label_2 \(first: 000005.png\)"):
        build_detection_data(root, (64, 128), strict_labels=True)
    (root / "training" / "image_2" / "000005.png").unlink()
    (root / "training" / "image_2" / "000006.png").unlink()
    data = build_detection_data(root, (64, 128), strict_labels=True)
    assert not data.unlabelled and "no label file" not in data_summary(data)
