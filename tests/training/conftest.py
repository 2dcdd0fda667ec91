import os

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread(monkeypatch):
    # These tests train tiny models on a handful of 32-pixel images: a second thread gains nothing, and on a busy
    # 2-core machine OpenMP threads spin waiting for each other. Subprocesses (SIGTERM, DDP, batch-size trials)
    # read OMP_NUM_THREADS at start.
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
