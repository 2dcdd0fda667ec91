"""The MNIST family's IDX files as a classification source (Fashion-MNIST, MNIST, KMNIST), the Fashion-MNIST
augmentations and ``eval classify --split test``. Every test writes small IDX files of its own."""
import gzip
import json
import struct

import numpy as np
import pytest
import torch
from torch.utils.data import Subset

from backbonekit.classification import idx
from backbonekit.classification.data import TensorImages, build_classification_data, channel_stats
from backbonekit.classification.transforms import build_transforms
from backbonekit.cli import main
from backbonekit.errors import DataError
from data_writers import write_idx, write_image_folder


@pytest.fixture
def no_system_data(tmp_path, monkeypatch):
    """Neither the variable nor the Debian folder holds anything unless a test puts it there."""
    monkeypatch.setattr(idx, "SYSTEM_DATA", tmp_path / "usr-share-datasets")
    monkeypatch.delenv(idx.ENV_DATA, raising=False)
    return tmp_path


@pytest.mark.parametrize("gz", [True, False])
def test_fashion_mnist_by_name_from_the_variable(tmp_path, monkeypatch, no_system_data, gz):
    write_idx(tmp_path / "data" / "fashion-mnist", n_train=50, n_test=20, gz=gz)
    monkeypatch.setenv(idx.ENV_DATA, str(tmp_path / "data"))
    data = build_classification_data("fashion-mnist", image_size=28, val_ratio=0.2, seed=3)
    assert data.source == "idx"
    assert data.class_names[0] == "T-shirt/top" and data.class_names[-1] == "Ankle boot"
    # The official split kept: validation carved from the 50 training images, the 20 test images apart.
    assert (len(data.train), len(data.val), len(data.test)) == (40, 10, 20)
    assert sorted(data.val.labels) == list(range(10))  # stratified: one of each class
    assert "10 of the 50 training images" in data.split and "20 test images" in data.split
    x, y = data.test[0]
    assert x.shape == (3, 28, 28) and x.dtype == torch.uint8 and y == 0
    assert torch.equal(x[0], x[2])  # grey bytes as three equal channels


def test_the_debian_folder_is_the_fallback_and_the_variable_comes_first(tmp_path, monkeypatch, no_system_data):
    write_idx(idx.SYSTEM_DATA / "fashion-mnist", n_train=30, n_test=10)
    assert idx.find_named("fashion-mnist") == idx.SYSTEM_DATA / "fashion-mnist"
    write_idx(tmp_path / "mine" / "fashion-mnist", n_train=20, n_test=10)
    monkeypatch.setenv(idx.ENV_DATA, str(tmp_path / "mine"))
    assert idx.find_named("fashion-mnist") == tmp_path / "mine" / "fashion-mnist"


def test_missing_data_names_the_three_ways_to_get_it(no_system_data, capsys):
    with pytest.raises(DataError) as e:
        build_classification_data("fashion-mnist", image_size=28)
    message = str(e.value)
    assert "apt-get install dataset-fashion-mnist" in message and "--data FOLDER" in message
    assert idx.ENV_DATA in message and "nothing is downloaded" in message and "\n" not in message
    assert main(["train", "classify", "--data", "fashion-mnist", "--epochs", "1"]) == 2
    assert "dataset-fashion-mnist" in capsys.readouterr().err


def test_any_folder_of_the_four_files(tmp_path):
    # Spelled as some mirrors do ("train-images.idx3-ubyte"), raw; a folder that names no data set: label numbers.
    root = write_idx(tmp_path / "somewhere", n_train=30, n_test=10, gz=False)
    for path in root.iterdir():
        path.rename(root / path.name.replace("-idx", ".idx"))
    data = build_classification_data(str(root), image_size=32, val_ratio=0.5)
    assert data.class_names == [str(i) for i in range(10)]
    assert data.train[0][0].shape == (3, 32, 32)  # resized to the model's size
    assert (len(data.train) + len(data.val), len(data.test)) == (30, 10)


@pytest.mark.parametrize("name,classes,flips", [("mnist", idx.MNIST, False), ("kmnist", idx.KMNIST, False),
                                                ("fashion-mnist", idx.FASHION_MNIST, True)])
def test_the_family_by_name(tmp_path, monkeypatch, no_system_data, name, classes, flips):
    write_idx(tmp_path / name, n_train=20, n_test=10)
    monkeypatch.setenv(idx.ENV_DATA, str(tmp_path))
    assert build_classification_data(name, image_size=28).class_names == list(classes)
    # A mirrored digit or character is another symbol: no flips in training; a mirrored shoe is a shoe.
    assert idx.flip_ok(name) is flips and idx.flip_ok(str(tmp_path / name)) is flips
    assert idx.which_dataset(str(tmp_path / "FashionMNIST" / "raw")) == "fashion-mnist"  # torchvision's layout


def _rewrite(path, transform):
    payload = gzip.decompress(path.read_bytes())
    path.write_bytes(gzip.compress(transform(payload)))


def _labels_as_images(root):
    images, labels = root / "train-images-idx3-ubyte.gz", root / "train-labels-idx1-ubyte.gz"
    images.write_bytes(labels.read_bytes())


BAD_FILES = {
    "wrong magic": ("train-images-idx3-ubyte.gz", _labels_as_images, "magic number 2049"),
    "truncated data": ("t10k-images-idx3-ubyte.gz", lambda r: _rewrite(r / "t10k-images-idx3-ubyte.gz",
                                                                       lambda b: b[:-100]), "truncated"),
    "longer than the header": ("train-labels-idx1-ubyte.gz", lambda r: _rewrite(r / "train-labels-idx1-ubyte.gz",
                                                                                lambda b: b + b"\0"), "longer"),
    "short header": ("t10k-labels-idx1-ubyte.gz", lambda r: _rewrite(r / "t10k-labels-idx1-ubyte.gz",
                                                                     lambda b: b[:5]), "header"),
    "counts differ": ("t10k-labels-idx1-ubyte.gz",
                      lambda r: _rewrite(r / "t10k-labels-idx1-ubyte.gz",
                                         lambda b: struct.pack(">2I", 2049, 9) + b[8:17]), "9 labels for the 10"),
    "truncated gzip": ("train-images-idx3-ubyte.gz",
                       lambda r: (r / "train-images-idx3-ubyte.gz").write_bytes(
                           (r / "train-images-idx3-ubyte.gz").read_bytes()[:200]), "gzip"),
    "label outside the classes": ("train-labels-idx1-ubyte.gz",
                                  lambda r: _rewrite(r / "train-labels-idx1-ubyte.gz",
                                                     lambda b: b[:8] + b"\x0c" + b[9:]), "label 12"),
    "missing file": ("t10k-images-idx3-ubyte.gz", lambda r: (r / "t10k-images-idx3-ubyte.gz").unlink(), "missing"),
}


@pytest.mark.parametrize("case", BAD_FILES)
def test_a_bad_file_is_one_error_naming_it(tmp_path, capsys, case):
    file, damage, words = BAD_FILES[case]
    root = write_idx(tmp_path / "fashion-mnist", n_train=20, n_test=10)
    damage(root)
    with pytest.raises(DataError) as e:
        build_classification_data(str(root), image_size=28)
    assert str(root / file) in str(e.value) and words in str(e.value) and "\n" not in str(e.value)
    assert main(["train", "classify", "--data", str(root), "--epochs", "1", "--out", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err
    assert str(root / file) in err and "Traceback" not in err
    assert not (tmp_path / "runs" / "classify").exists() or not any((tmp_path / "runs" / "classify").iterdir())


def test_channel_stats_are_the_training_images_mean_and_std():
    rng = np.random.default_rng(0)
    colour = torch.from_numpy(rng.integers(0, 256, (30, 3, 9, 7), dtype=np.uint8))
    grey = torch.from_numpy(rng.integers(0, 100, (30, 1, 9, 7), dtype=np.uint8))
    for images in (colour, grey.expand(-1, 3, -1, -1)):
        data = TensorImages(images, [0] * 30, lambda x: x)
        subset = [3, 5, 8, 21]
        for dataset, chosen in ((data, images), (Subset(data, subset), images[subset])):
            mean, std = channel_stats(dataset)
            x = chosen.double() / 255
            assert np.allclose(mean, x.mean((0, 2, 3)).tolist(), atol=1e-9)
            assert np.allclose(std, x.std((0, 2, 3), unbiased=False).tolist(), atol=1e-9)


def test_pad_and_crop_shifts_by_at_most_the_padding_and_erasing_fills_grey():
    torch.manual_seed(0)
    image = torch.randint(1, 255, (3, 28, 28), dtype=torch.uint8)
    assert torch.equal(build_transforms(28, train=True, flip=False, crop_padding=0)(image), image)
    crop = build_transforms(28, train=True, flip=False, crop_padding=4)
    shifts = set()
    for _ in range(30):
        out = crop(image)
        # The 20×20 centre of the crop is the image shifted by (dy, dx), both within the padding.
        found = [(dy, dx) for dy in range(-4, 5) for dx in range(-4, 5)
                 if torch.equal(out[:, 4:24, 4:24], image[:, 4 + dy:24 + dy, 4 + dx:24 + dx])]
        assert found
        shifts.add(found[0])
    assert len(shifts) > 5
    erase = build_transforms(28, train=True, flip=False, crop_padding=0, random_erasing=1.0)
    for _ in range(10):
        out = erase(image)
        changed = (out != image).any(0)
        assert changed.any() and (out[:, changed] == 127).all()
        assert 0.02 * 784 * 0.5 <= changed.sum() <= 0.4 * 784 * 1.1  # one rectangle of 2-40% of the image
    with pytest.raises(Exception, match="random-erasing"):
        build_transforms(28, train=True, random_erasing=1.5)


def test_train_then_score_the_official_test_split(tmp_path, capsys):
    root = write_idx(tmp_path / "fashion-mnist", n_train=20, n_test=10, size=16)
    runs = tmp_path / "runs"
    assert main(["train", "classify", "--data", str(root), "--model", "resnet18", "--stem", "small", "--image-size",
                 "16", "--epochs", "1", "--batch-size", "10", "--crop-padding", "2", "--random-erasing", "0.5",
                 "--normalize", "data", "--val-ratio", "0.5", "--out", str(runs), "--name", "r",
                 "--progress", "lines"]) == 0
    run = runs / "classify" / "r"
    hparams = (run / "hparams.yaml").read_text()
    assert "stem: small" in hparams and "10 of the 20 training images" in hparams
    capsys.readouterr()
    assert main(["eval", "classify", "--checkpoint", str(run / "best.safetensors"), "--split", "test",
                 "--out", str(tmp_path / "scores")]) == 0
    out = capsys.readouterr().out
    assert "official test split" in out and "10 images" in out and "Ankle boot" in out
    result = json.loads((tmp_path / "scores" / "metrics.json").read_text())
    assert result["split"] == "the official test split" and result["images"] == 10
    # Data without a test split apart from its validation data: refused in one line.
    folder = write_image_folder(tmp_path / "folder", per_class=2, size=16)
    assert main(["eval", "classify", "--checkpoint", str(run / "best.ckpt"), "--data", str(folder),
                 "--split", "test"]) == 2
    assert "no test split" in capsys.readouterr().err
    # The stem and the data's statistics travel with the weights.
    from backbonekit.classification.task import load
    trained = load(run / "best.safetensors")
    assert trained.model.stem_type == "small" and trained.model.conv1.kernel_size == (3, 3)
    assert trained.normalize.mean.flatten()[0].item() != pytest.approx(0.485)
