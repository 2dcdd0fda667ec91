import os

import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def _threads():
    # The CI machine has 2 cores; more threads only add contention.
    torch.set_num_threads(2)


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread (and OMP_NUM_THREADS=1 for subprocesses) for a test module of many small ops: on a busy
    2-core machine a second OpenMP thread mostly spins waiting for the first (measured: 105 s vs 13 s for the effdet
    parity file under load). Use with ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    before, env = torch.get_num_threads(), os.environ.get("OMP_NUM_THREADS")
    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
    if env is None:
        os.environ.pop("OMP_NUM_THREADS", None)
    else:
        os.environ["OMP_NUM_THREADS"] = env


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
