import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def _threads():
    # The CI machine has 2 cores; more threads only add contention.
    torch.set_num_threads(2)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture
def image_folder(tmp_path):
    from data_writers import write_image_folder

    return write_image_folder(tmp_path / "shapes")


@pytest.fixture
def cifar_dir(tmp_path):
    from data_writers import write_cifar10

    return write_cifar10(tmp_path / "cifar-10-batches-py")
