import pytest


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    """Tiny models on a handful of 32-pixel images; subprocesses (SIGTERM, DDP, batch-size trials) read
    OMP_NUM_THREADS at start."""
