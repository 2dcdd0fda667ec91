"""Data formats and their errors: digits, CIFAR-10 pickles, ImageFolder trees, corrupt and truncated images."""
import io

import numpy as np
import pytest
import torch
from PIL import Image

from backbonekit.classification.data import build_classification_data, detect_format, find_images, load_image
from backbonekit.classification.transforms import build_transforms, mixing_collate
from backbonekit.errors import ConfigError, DataError
from data_writers import write_cifar10, write_image_folder


def test_digits_split_is_stratified_and_seeded():
    a = build_classification_data("digits", image_size=32, augment="none", seed=1)
    b = build_classification_data("digits", image_size=32, augment="none", seed=1)
    c = build_classification_data("digits", image_size=32, augment="none", seed=2)
    assert len(a.train) + len(a.val) == 1797 and len(a.val) == 360
    assert a.val.labels == b.val.labels and a.val.labels != c.val.labels
    counts = np.bincount(a.val.labels)
    assert counts.min() >= 35 and counts.max() <= 37  # about 20% of each class
    x, y = a.val[0]
    assert x.shape == (3, 32, 32) and x.dtype == torch.float32 and 0 <= y < 10


def test_cifar10_official_pickle_layout(cifar_dir):
    assert detect_format(str(cifar_dir.parent)) == "cifar10"  # the folder holding cifar-10-batches-py works too
    data = build_classification_data(str(cifar_dir), image_size=32, augment="basic")
    assert data.source == "cifar10" and data.class_names[0] == "airplane" and len(data.class_names) == 10
    assert len(data.train) == 20 and len(data.val) == 4
    assert data.train[0][0].shape == (3, 32, 32)


def test_cifar10_pixels_are_read_in_channel_planes(tmp_path):
    root = write_cifar10(tmp_path / "c")
    data = build_classification_data(str(root), image_size=32, augment="none", mean=(0, 0, 0), std=(1, 1, 1))
    import pickle

    with open(root / "test_batch", "rb") as f:
        raw = pickle.load(f, encoding="bytes")[b"data"][0]
    x, _ = data.val[0]
    # Row-major 1024 red values, then green, then blue.
    assert torch.allclose(x[1, 0, :4] * 255, torch.tensor(raw[1024:1028], dtype=torch.float32), atol=0.5)


def test_cifar10_missing_batch(tmp_path):
    root = write_cifar10(tmp_path / "c", skip=("data_batch_3",))
    with pytest.raises(DataError, match="data_batch_3: missing"):
        build_classification_data(str(root), image_size=32)


def test_cifar10_corrupt_batch(tmp_path):
    root = write_cifar10(tmp_path / "c")
    (root / "data_batch_2").write_bytes(b"not a pickle")
    with pytest.raises(DataError, match="data_batch_2: not a CIFAR-10 batch file"):
        build_classification_data(str(root), image_size=32)


def test_image_folder_single_tree_is_split(image_folder):
    data = build_classification_data(str(image_folder), image_size=24, val_ratio=0.5, seed=0)
    assert data.class_names == ["cat", "dog", "fox"]
    assert len(data.train) == 9 and len(data.val) == 9
    assert sorted(data.val.labels) == [0, 0, 0, 1, 1, 1, 2, 2, 2]


def test_image_folder_train_val(tmp_path):
    write_image_folder(tmp_path / "d" / "train", per_class=4)
    write_image_folder(tmp_path / "d" / "val", per_class=2, fmt="jpg")
    data = build_classification_data(str(tmp_path / "d"), image_size=24)
    assert len(data.train) == 12 and len(data.val) == 6


def test_val_classes_must_match(tmp_path):
    write_image_folder(tmp_path / "d" / "train")
    write_image_folder(tmp_path / "d" / "val", classes=("cat", "dog", "owl"))
    with pytest.raises(DataError, match="classes differ.*fox, owl"):
        build_classification_data(str(tmp_path / "d"), image_size=24)


def test_empty_class_folder(image_folder):
    (image_folder / "emu").mkdir()
    with pytest.raises(DataError, match="emu: class folder has no images"):
        build_classification_data(str(image_folder), image_size=24)


def test_no_class_folders(tmp_path):
    (tmp_path / "flat").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "flat" / "a.png")
    with pytest.raises(DataError, match="no class folders"):
        build_classification_data(str(tmp_path / "flat"), image_size=24)


def test_missing_data_path():
    with pytest.raises(DataError, match="no such folder"):
        detect_format("/nonexistent/data")


def _truncated_jpeg(path):
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(buf, "JPEG")
    path.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])


def test_corrupt_and_truncated_images_are_reported_with_their_path(image_folder):
    (image_folder / "cat" / "broken.png").write_bytes(b"\x89PNG garbage")
    _truncated_jpeg(image_folder / "dog" / "cut.jpg")
    data = build_classification_data(str(image_folder), image_size=24, val_ratio=0.5)
    errors = []
    for dataset in (data.train, data.val):
        for i in range(len(dataset)):
            try:
                dataset[i]
            except DataError as e:
                errors.append(str(e))
    assert len(errors) == 2
    assert any("broken.png: cannot read image" in e for e in errors)
    assert any("cut.jpg: cannot read image" in e for e in errors)


def test_skip_bad_images_counts_them(image_folder):
    (image_folder / "cat" / "broken.png").write_bytes(b"garbage")
    _truncated_jpeg(image_folder / "dog" / "cut.jpg")
    data = build_classification_data(str(image_folder), image_size=24, skip_bad_images=True)
    assert sorted(p.rsplit("/", 1)[-1] for p, _ in data.skipped) == ["broken.png", "cut.jpg"]
    assert len(data.train) + len(data.val) == 18
    for dataset in (data.train, data.val):
        for i in range(len(dataset)):
            dataset[i]  # nothing bad is left


def test_load_image_and_find_images(image_folder):
    assert load_image(image_folder / "cat" / "000.png").mode == "RGB"
    assert len(find_images([str(image_folder)])) == 18
    with pytest.raises(DataError, match="no such image"):
        load_image(image_folder / "nope.png")
    (image_folder.parent / "empty").mkdir()
    with pytest.raises(DataError, match="no images found"):
        find_images([str(image_folder.parent / "empty")])
    with pytest.raises(DataError, match="no such file or folder"):
        find_images([str(image_folder / "missing")])


def test_transforms_normalise_and_augment():
    image = torch.full((3, 40, 40), 255, dtype=torch.uint8)
    out = build_transforms(32, train=False, mean=(0.5,) * 3, std=(0.5,) * 3)(image)
    assert out.shape == (3, 32, 32) and torch.allclose(out, torch.ones_like(out))
    aug = build_transforms(32, train=True, augment="randaugment", mean=(0.5,) * 3, std=(0.5,) * 3)
    assert aug(torch.randint(0, 255, (3, 40, 40), dtype=torch.uint8)).shape == (3, 32, 32)
    with pytest.raises(ConfigError, match="--augment"):
        build_transforms(32, train=True, augment="heavy", mean=(0,) * 3, std=(1,) * 3)


def test_cutmix_mixup_give_soft_labels_that_sum_to_one():
    assert mixing_collate(4) is None
    collate = mixing_collate(4, cutmix_alpha=1.0, mixup_alpha=0.2)
    batch = [(torch.rand(3, 16, 16), i % 4) for i in range(8)]
    images, labels = collate(batch)
    assert images.shape == (8, 3, 16, 16) and labels.shape == (8, 4)
    torch.testing.assert_close(labels.sum(1), torch.ones(8))
    assert (labels.max(1).values < 1).any()  # something was mixed
