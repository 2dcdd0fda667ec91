import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def _threads():
    # The CI machine has 2 cores; more threads only add contention.
    torch.set_num_threads(2)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
