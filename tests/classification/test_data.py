"""Data formats and their errors: digits, CIFAR-10 pickles, ImageFolder trees, corrupt and truncated images,
transforms and batch mixing. Every file is written here, in its true format."""
import io
import pickle

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.transforms import v2

from backbonekit.classification.data import (ClassificationData, build_classification_data, build_eval_transform,
                                             detect_format)
from backbonekit.io.images import find_images, load_image
from backbonekit.classification.transforms import build_transforms, mixing_collate
from backbonekit.errors import ConfigError, DataError
from data_writers import write_cifar10, write_image_folder



def _noise_bytes(fmt: str, size: int = 64) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (size, size, 3), dtype=np.uint8)).save(buf, fmt)
    return buf.getvalue()


def _write_truncated(path, fmt="JPEG"):
    """A real image file cut in half: the header still parses, so only a full decode finds the damage."""
    data = _noise_bytes(fmt)
    path.write_bytes(data[: len(data) // 2])
    with Image.open(path) as image:  # the lazy open succeeds: this is the case a plain Image.open would miss
        assert image.size == (64, 64)
    return path


def _all_items(dataset):
    return [dataset[i] for i in range(len(dataset))]


# ----------------------------------------------------------------------------------------------- digits

def test_digits_split_is_stratified_seeded_and_complete():
    a = build_classification_data("digits", image_size=32, augment="none", seed=1)
    b = build_classification_data("digits", image_size=32, augment="none", seed=1)
    c = build_classification_data("digits", image_size=32, augment="none", seed=2)
    assert isinstance(a, ClassificationData) and a.source == "digits" and a.skipped == []
    assert a.class_names == [str(d) for d in range(10)]
    assert (len(a.train), len(a.val)) == (1437, 360)
    assert a.val.labels == b.val.labels and a.val.labels != c.val.labels
    assert torch.equal(a.val.images, b.val.images) and not torch.equal(a.val.images, c.val.images)
    val_counts, train_counts = np.bincount(a.val.labels), np.bincount(a.train.labels)
    assert val_counts.min() >= 35 and val_counts.max() <= 37  # about 20% of each class of ~180
    np.testing.assert_allclose(val_counts / (val_counts + train_counts), 0.2, atol=0.01)
    # Together the two splits are the 1,797 digits with their labels, each once.
    from sklearn.datasets import load_digits

    assert sorted(a.train.labels + a.val.labels) == sorted(load_digits().target.tolist())


def test_digits_pixels_are_scaled_to_uint8_and_three_channels():

    data = build_classification_data("digits", image_size=8, augment="none", val_ratio=0.5)
    images = torch.cat([data.train.images, data.val.images])
    assert images.dtype == torch.uint8 and images.shape[1:] == (3, 8, 8)
    assert images.max() == 255 and images.min() == 0  # 16 → 255, 0 → 0
    assert torch.equal(images[:, 0], images[:, 2])  # gray copied to all channels
    from sklearn.datasets import load_digits

    raw = load_digits().images
    x, y = data.train[0]
    first = int(data.train.labels[0])
    assert y == first and x.shape == (3, 8, 8) and x.dtype == torch.uint8
    # The first training image is one of the real digits, scaled by 255/16.
    matches = np.abs(raw * 255 / 16 - x[0].numpy().astype(float)).max(axis=(1, 2)) < 1
    assert matches.any()


def test_digits_val_ratio_and_its_bounds():
    data = build_classification_data("digits", image_size=8, augment="none", val_ratio=0.1)
    assert len(data.val) == 180
    with pytest.raises(ConfigError, match="--val-ratio"):
        build_classification_data("digits", image_size=8, val_ratio=1.0)


def test_digits_training_transform_does_not_flip():
    data = build_classification_data("digits", image_size=32, augment="basic")
    kinds = {type(t) for t in data.train.transform.transforms}
    assert v2.RandomCrop in kinds and v2.RandomHorizontalFlip not in kinds  # a mirrored 2 is no 2


# ----------------------------------------------------------------------------------------------- CIFAR-10

def test_cifar10_official_pickle_layout(cifar_dir):
    assert detect_format(str(cifar_dir)) == "cifar10"
    assert detect_format(str(cifar_dir.parent)) == "cifar10"  # the folder holding cifar-10-batches-py works too
    data = build_classification_data(str(cifar_dir.parent), image_size=32, augment="basic")
    assert data.source == "cifar10" and len(data.class_names) == 10
    assert data.class_names[:2] == ["airplane", "automobile"] and data.class_names[-1] == "truck"
    assert len(data.train) == 20 and len(data.val) == 4  # 5 training batches of 4, the test batch as validation
    expected = []
    for name in [f"data_batch_{i}" for i in range(1, 6)]:
        with open(cifar_dir / name, "rb") as f:
            expected += pickle.load(f, encoding="bytes")[b"labels"]
    assert data.train.labels == expected  # batches in order 1..5
    x, y = data.train[0]
    assert x.shape == (3, 32, 32) and x.dtype == torch.uint8 and y == expected[0]


def test_cifar10_pixels_are_read_in_channel_planes(tmp_path):
    root = write_cifar10(tmp_path / "c")
    data = build_classification_data(str(root), image_size=32, augment="none")
    with open(root / "test_batch", "rb") as f:
        raw = pickle.load(f, encoding="bytes")[b"data"][1]
    x, _ = data.val[1]
    # 1024 red values (row-major 32×32), then 1024 green, then 1024 blue.
    assert torch.equal(x, torch.from_numpy(raw.reshape(3, 32, 32)))
    assert int(x[1, 0, 1]) == int(raw[1024 + 1])


@pytest.mark.parametrize("missing", ["data_batch_1", "data_batch_3", "test_batch", "batches.meta"])
def test_cifar10_missing_file_is_named(tmp_path, missing):
    root = write_cifar10(tmp_path / "c", skip=(missing,) if missing != "batches.meta" else ())
    if missing == "batches.meta":
        (root / "batches.meta").unlink()
    assert detect_format(str(root)) == "cifar10"  # still recognised, so the error is about the missing file
    with pytest.raises(DataError, match=f"{missing}: missing"):
        build_classification_data(str(root), image_size=32)


def test_cifar10_corrupt_batch(tmp_path):
    root = write_cifar10(tmp_path / "c")
    (root / "data_batch_2").write_bytes(b"not a pickle")
    with pytest.raises(DataError, match="data_batch_2: not a CIFAR-10 batch file"):
        build_classification_data(str(root), image_size=32)


def test_cifar10_wrong_shapes_and_labels(tmp_path):
    root = write_cifar10(tmp_path / "c")
    with open(root / "data_batch_4", "wb") as f:
        pickle.dump({b"labels": [1, 2], b"data": np.zeros((2, 1024), np.uint8)}, f)
    with pytest.raises(DataError, match=r"data_batch_4: expected uint8 data N×3072.*\(2, 1024\)"):
        build_classification_data(str(root), image_size=32)
    with open(root / "data_batch_4", "wb") as f:
        pickle.dump({b"labels": [1, 12], b"data": np.zeros((2, 3072), np.uint8)}, f)
    with pytest.raises(DataError, match="data_batch_4: label 12 is outside the 10 classes"):
        build_classification_data(str(root), image_size=32)
    with open(root / "data_batch_4", "wb") as f:
        pickle.dump({b"data": np.zeros((2, 3072), np.uint8)}, f)
    with pytest.raises(DataError, match="data_batch_4: no field 'labels'"):
        build_classification_data(str(root), image_size=32)


# ----------------------------------------------------------------------------------------------- ImageFolder

def test_image_folder_single_tree_is_split_by_class_and_seed(image_folder):
    a = build_classification_data(str(image_folder), image_size=24, val_ratio=0.5, seed=0)
    b = build_classification_data(str(image_folder), image_size=24, val_ratio=0.5, seed=0)
    c = build_classification_data(str(image_folder), image_size=24, val_ratio=0.5, seed=3)
    assert detect_format(str(image_folder)) == "imagefolder" and a.source == "imagefolder"
    assert a.class_names == ["cat", "dog", "fox"]
    assert len(a.train) == 9 and len(a.val) == 9
    assert sorted(a.val.labels) == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert a.val.samples == b.val.samples and a.val.samples != c.val.samples
    assert not {p for p, _ in a.train.samples} & {p for p, _ in a.val.samples}
    assert all(path.parent.name == a.class_names[label] for path, label in a.train.samples + a.val.samples)
    x, y = a.train[0]
    assert x.shape == (3, 24, 24) and x.dtype == torch.uint8 and y in (0, 1, 2)


def test_image_folder_train_and_val_subfolders(tmp_path):
    write_image_folder(tmp_path / "d" / "train", per_class=4)
    write_image_folder(tmp_path / "d" / "val", per_class=2, fmt="jpg")
    data = build_classification_data(str(tmp_path / "d"), image_size=24)
    assert data.class_names == ["cat", "dog", "fox"]
    assert len(data.train) == 12 and len(data.val) == 6
    assert all("val" in p.parts and p.suffix == ".jpg" for p, _ in data.val.samples)
    assert data.val.labels == [0, 0, 1, 1, 2, 2]


def test_image_folder_test_subfolder_and_train_alone(tmp_path):
    write_image_folder(tmp_path / "d" / "train", per_class=4)
    write_image_folder(tmp_path / "d" / "test", per_class=1)
    assert len(build_classification_data(str(tmp_path / "d"), image_size=24).val) == 3
    write_image_folder(tmp_path / "e" / "train", per_class=5)
    data = build_classification_data(str(tmp_path / "e"), image_size=24, val_ratio=0.4)
    assert data.class_names == ["cat", "dog", "fox"]  # "train" is the tree, not a class
    assert len(data.train) == 9 and sorted(data.val.labels) == [0, 0, 1, 1, 2, 2]


def test_image_folder_reads_nested_and_mixed_images_and_ignores_the_rest(image_folder):
    (image_folder / "cat" / "more").mkdir()
    Image.new("L", (10, 14), 200).save(image_folder / "cat" / "more" / "gray.JPG")  # gray, upper-case extension
    Image.new("RGBA", (9, 9)).save(image_folder / "dog" / "alpha.png")
    (image_folder / "dog" / "notes.txt").write_text("not an image")
    (image_folder / "fox" / "._000.png").write_bytes(b"macOS resource fork")  # hidden: not an image
    (image_folder / ".cache").mkdir()
    data = build_classification_data(str(image_folder), image_size=16, val_ratio=0.25)
    assert data.class_names == ["cat", "dog", "fox"]
    assert len(data.train) + len(data.val) == 20
    assert all(x.shape == (3, 16, 16) for x, _ in _all_items(data.train) + _all_items(data.val))


def test_val_classes_must_match_and_the_difference_is_named(tmp_path):
    write_image_folder(tmp_path / "d" / "train")
    write_image_folder(tmp_path / "d" / "val", classes=("cat", "dog", "owl"))
    with pytest.raises(DataError, match="classes differ.*only in train: fox; only in val: owl"):
        build_classification_data(str(tmp_path / "d"), image_size=24)


def test_empty_class_folder_is_named(image_folder):
    (image_folder / "emu").mkdir()
    (image_folder / "emu" / "readme.txt").write_text("no images here")
    with pytest.raises(DataError, match=r"emu: class folder has no images"):
        build_classification_data(str(image_folder), image_size=24)


def test_no_images_at_all(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="empty: no images"):
        build_classification_data(str(tmp_path / "empty"), image_size=24)
    (tmp_path / "flat").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "flat" / "a.png")
    with pytest.raises(DataError, match="flat: images but no class folders"):
        build_classification_data(str(tmp_path / "flat"), image_size=24)


def test_missing_data_path():
    with pytest.raises(DataError, match="/nonexistent/data: no such folder"):
        detect_format("/nonexistent/data")


# ----------------------------------------------------------------------------------------------- bad images

@pytest.mark.parametrize("name,content", [
    ("garbage.png", b"\x89PNG garbage"),
    ("empty.jpg", b""),
    ("cut.jpg", "JPEG"),
    ("cut.png", "PNG"),
])
def test_load_image_names_the_bad_file(tmp_path, name, content):
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        _write_truncated(path, content)
    with pytest.raises(DataError, match=rf"^{path}: cannot read image \(.+\)$"):
        load_image(path)


def test_load_image_reason_for_truncation(tmp_path):
    with pytest.raises(DataError, match="truncated"):
        load_image(_write_truncated(tmp_path / "cut.jpg"))
    with pytest.raises(DataError, match="no such file"):
        load_image(tmp_path / "nope.png")


def test_corrupt_and_truncated_images_are_reported_when_read(image_folder):
    (image_folder / "cat" / "broken.png").write_bytes(b"\x89PNG garbage")
    _write_truncated(image_folder / "dog" / "cut.jpg")
    data = build_classification_data(str(image_folder), image_size=24, val_ratio=0.5)
    assert len(data.train) + len(data.val) == 20 and data.skipped == []  # not checked up front without skip
    errors = []
    for dataset in (data.train, data.val):
        for i in range(len(dataset)):
            try:
                dataset[i]
            except DataError as e:
                errors.append(str(e))
    assert len(errors) == 2
    assert any(e.startswith(str(image_folder / "cat" / "broken.png") + ": cannot read image") for e in errors)
    assert any(e.startswith(str(image_folder / "dog" / "cut.jpg") + ": cannot read image") for e in errors)


def test_skip_bad_images_leaves_them_out_and_lists_them(image_folder):
    (image_folder / "cat" / "broken.png").write_bytes(b"garbage")
    _write_truncated(image_folder / "dog" / "cut.jpg")
    _write_truncated(image_folder / "fox" / "cut.png", "PNG")
    data = build_classification_data(str(image_folder), image_size=24, skip_bad_images=True, val_ratio=0.5)
    assert sorted(p.rsplit("/", 1)[-1] for p, _ in data.skipped) == ["broken.png", "cut.jpg", "cut.png"]
    assert all(reason for _, reason in data.skipped)
    assert dict(data.skipped)[str(image_folder / "dog" / "cut.jpg")].startswith("image file is truncated")
    assert len(data.train) + len(data.val) == 18
    assert sorted(data.val.labels) == [0, 0, 0, 1, 1, 1, 2, 2, 2]  # split after dropping, still stratified
    assert len(_all_items(data.train)) + len(_all_items(data.val)) == 18  # nothing bad is left


def test_skip_bad_images_with_train_and_val(tmp_path):
    write_image_folder(tmp_path / "d" / "train", per_class=2)
    write_image_folder(tmp_path / "d" / "val", per_class=1)
    _write_truncated(tmp_path / "d" / "val" / "cat" / "cut.jpg")
    data = build_classification_data(str(tmp_path / "d"), image_size=24, skip_bad_images=True)
    assert [p for p, _ in data.skipped] == [str(tmp_path / "d" / "val" / "cat" / "cut.jpg")]
    assert (len(data.train), len(data.val)) == (6, 3)


def test_find_images(image_folder, tmp_path):
    (image_folder / "cat" / "notes.txt").write_text("x")
    (image_folder / "cat" / ".hidden.png").write_bytes(b"x")
    found = find_images([str(image_folder)])
    assert len(found) == 18 and found == sorted(found) and all(p.suffix == ".png" for p in found)
    one = image_folder / "dog" / "003.png"
    assert find_images([one, str(image_folder / "fox")])[0] == one  # files as given, then the folder's images
    assert len(find_images([one, one])) == 1
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no images found in .*empty"):
        find_images([str(tmp_path / "empty")])
    with pytest.raises(DataError, match="missing: no such file or folder"):
        find_images([str(image_folder / "missing")])


def test_datasets_and_collate_pickle(image_folder):
    """DataLoader workers and DDP spawn send datasets and the collate function to other processes by pickle."""
    for data in (build_classification_data(str(image_folder), image_size=16, augment="none"),
                 build_classification_data("digits", image_size=16, augment="randaugment")):
        for dataset in (data.train, data.val):
            copy = pickle.loads(pickle.dumps(dataset))
            assert len(copy) == len(dataset)
        torch.testing.assert_close(pickle.loads(pickle.dumps(data.val))[0][0], data.val[0][0])
    collate = pickle.loads(pickle.dumps(mixing_collate(3, cutmix_alpha=1.0, mixup_alpha=0.2)))
    assert collate([(torch.randint(0, 256, (3, 8, 8), dtype=torch.uint8), i % 3) for i in range(4)])[1].shape == (4, 3)


# ----------------------------------------------------------------------------------------------- transforms

def test_eval_transform_keeps_uint8_pixels():
    # Normalisation is the task's (nn/normalize.py, with the model's statistics), not the data pipeline's.
    image = torch.full((3, 40, 40), 255, dtype=torch.uint8)
    image[1] = 0
    out = build_eval_transform(32)(image)
    assert out.shape == (3, 32, 32) and out.dtype == torch.uint8
    assert (out[0] == 255).all() and (out[1] == 0).all()


def test_eval_transform_keeps_aspect_and_crops_the_centre():
    # A wide PIL image: red left third, green middle, blue right third. Resize + centre crop shows only green.
    array = np.zeros((20, 60, 3), np.uint8)
    array[:, :20, 0] = array[:, 20:40, 1] = array[:, 40:, 2] = 255
    out = build_eval_transform(16)(Image.fromarray(array))
    assert out.shape == (3, 16, 16)
    inner = out[:, :, 1:-1]  # the outermost columns blend with the neighbours when antialiased
    assert inner[1].min() > 252 and inner[0].max() < 3 and inner[2].max() < 3
    # Larger sizes crop 87.5% of the resized image, as torchvision and timm evaluate.
    big = build_eval_transform(224)
    assert [type(t) for t in big.transforms][1:3] == [v2.Resize, v2.CenterCrop]
    assert big.transforms[1].size == [256] and big(torch.zeros(3, 300, 400, dtype=torch.uint8)).shape == (3, 224, 224)


@pytest.mark.parametrize("size,augment", [(32, "basic"), (32, "randaugment"), (96, "basic"), (96, "randaugment"),
                                          (32, "none")])
def test_training_transforms_give_the_size_and_vary(size, augment):
    tf = build_transforms(size, train=True, augment=augment)
    image = torch.randint(0, 255, (3, 50, 70), dtype=torch.uint8)
    outs = [tf(image) for _ in range(4)]
    assert all(o.shape == (3, size, size) and o.dtype == torch.uint8 for o in outs)
    random = any(not torch.equal(outs[0], o) for o in outs[1:])
    assert random == (augment != "none")
    assert tf(Image.fromarray(image.permute(1, 2, 0).numpy())).shape == (3, size, size)  # PIL input too


def test_training_transform_choice_of_crop():
    small = {type(t) for t in build_transforms(32, train=True, augment="basic").transforms}
    large = build_transforms(128, train=True, augment="randaugment").transforms
    assert v2.RandomCrop in small and v2.RandomResizedCrop not in small
    crop = next(t for t in large if isinstance(t, v2.RandomResizedCrop))
    assert crop.scale == (0.6, 1.0) and any(isinstance(t, v2.RandAugment) for t in large)


def test_transform_options_are_checked():
    with pytest.raises(ConfigError, match="--augment"):
        build_transforms(32, train=True, augment="heavy")
    with pytest.raises(ConfigError, match="--augment"):
        build_classification_data("digits", image_size=32, augment="heavy")
    with pytest.raises(ConfigError, match="--cutmix"):
        mixing_collate(3, cutmix_alpha=-1)


# ----------------------------------------------------------------------------------------------- CutMix / MixUp

@pytest.mark.parametrize("cutmix,mixup", [(1.0, 0.0), (0.0, 0.4), (1.0, 0.2)])
def test_cutmix_mixup_give_soft_labels_that_sum_to_one(cutmix, mixup):
    collate = mixing_collate(4, cutmix_alpha=cutmix, mixup_alpha=mixup)
    batch = [(torch.randint(0, 256, (3, 16, 16), dtype=torch.uint8), i % 4) for i in range(8)]
    images, labels = collate(batch)
    assert images.shape == (8, 3, 16, 16) and labels.shape == (8, 4) and labels.dtype == torch.float32
    # Mixed pixels are 0–1 floats, which the tasks' input contract takes as they are.
    assert images.dtype == torch.float32 and 0 <= images.min() and images.max() <= 1
    torch.testing.assert_close(labels.sum(1), torch.ones(8))
    assert (labels >= 0).all()
    assert (labels.max(1).values < 1).any()  # something was mixed
    # Each row mixes its own class with at most one other.
    own = labels[torch.arange(8), torch.arange(8) % 4]
    assert (own > 0).all() and ((labels > 0).sum(1) <= 2).all()


def test_no_mixing_gives_no_collate():
    assert mixing_collate(4) is None
    assert mixing_collate(4, cutmix_alpha=0.0, mixup_alpha=0.0) is None


@pytest.mark.parametrize("classes, per_class, message", [
    (("cat",), 6, "1 class (cat); a classifier needs at least 2 classes"),
    (("cat", "dog"), 1, "1 training image(s) after holding out 1 for validation (--val-ratio 0.2); training needs "
                        "at least 2 (BatchNorm cannot normalise a batch of one)"),
])
def test_data_a_classifier_cannot_train_on_is_one_line_saying_what_it_needs(classes, per_class, message, tmp_path):
    root = write_image_folder(tmp_path / "d", classes=classes, per_class=per_class)
    with pytest.raises(DataError) as raised:
        build_classification_data(str(root), image_size=16)
    assert str(raised.value).startswith(f"{root}: {message}"), raised.value


def test_the_smallest_trainable_data_builds_and_a_refused_one_is_an_error_line(tmp_path, capsys):
    """Two classes of two images (one held out) is enough; one class through the CLI is an
    error line (it was a torchmetrics traceback, one training image a BatchNorm one)."""
    from backbonekit.cli import main

    smallest = write_image_folder(tmp_path / "ok", classes=("cat", "dog"), per_class=2)
    built = build_classification_data(str(smallest), image_size=16)
    assert len(built.train) >= 2 and len(built.class_names) == 2
    bad = write_image_folder(tmp_path / "one", classes=("cat",), per_class=6)
    assert main(["train", "classify", "--data", str(bad), "--image-size", "16", "--epochs", "1",
                 "--out", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {bad}: 1 class") and err.count("\n") == 1, err
    assert not (tmp_path / "runs").exists()
