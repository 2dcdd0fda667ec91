import pytest

from data_writers import write_cifar10, write_image_folder


@pytest.fixture
def image_folder(tmp_path):
    return write_image_folder(tmp_path / "shapes")


@pytest.fixture
def cifar_dir(tmp_path):
    return write_cifar10(tmp_path / "cifar-10-batches-py")
