"""Checkpoints written by the background thread: a snapshot of the state when asked, in order, failures reported."""
import os
import threading

import pytest
import torch

from backbonekit.errors import WeightsError
from backbonekit.training.checkpoint_io import BackgroundCheckpointIO, load_checkpoint_file


def test_the_file_holds_the_state_at_save_time_not_later_changes(tmp_path):
    io = BackgroundCheckpointIO()
    gate = threading.Event()
    io._submit(gate.wait, 10)  # the writer is busy until the tensors have changed
    weights = torch.zeros(1000)
    io.save_checkpoint({"w": weights, "nested": [{"m": weights}]}, tmp_path / "a.ckpt")
    weights += 1  # training goes on while the thread writes
    gate.set()
    io.teardown()
    saved = load_checkpoint_file(tmp_path / "a.ckpt")
    assert torch.equal(saved["w"], torch.zeros(1000)) and torch.equal(saved["nested"][0]["m"], torch.zeros(1000))


def test_a_link_follows_the_write_it_names(tmp_path):
    io = BackgroundCheckpointIO()
    for step in range(3):
        io.save_checkpoint({"step": step, "w": torch.full((50_000,), float(step))}, tmp_path / "best.ckpt")
        io.link(tmp_path / "best.ckpt", tmp_path / "last.ckpt")
    io.teardown()
    assert load_checkpoint_file(tmp_path / "last.ckpt")["step"] == 2
    assert (tmp_path / "last.ckpt").samefile(tmp_path / "best.ckpt")


class _Unsaveable:
    def __reduce__(self):
        raise RuntimeError("No space left on device")


def test_a_failed_write_is_raised_naming_the_file_and_the_old_one_is_kept(tmp_path):
    io = BackgroundCheckpointIO()
    path = tmp_path / "last.ckpt"
    io.save_checkpoint({"step": 1}, path)
    io.wait()
    io.save_checkpoint({"step": 2, "bad": _Unsaveable()}, path)
    with pytest.raises(WeightsError, match=r"last\.ckpt: cannot write checkpoint \(No space left on device\)"):
        io.teardown()
    assert load_checkpoint_file(path) == {"step": 1}


def test_a_failed_write_stops_the_next_save(tmp_path):
    io = BackgroundCheckpointIO()
    io.save_checkpoint({"bad": _Unsaveable()}, tmp_path / "a.ckpt")
    io._pending[0].exception()  # let it fail
    with pytest.raises(WeightsError, match="a.ckpt"):
        io.save_checkpoint({"step": 2}, tmp_path / "b.ckpt")
    io.teardown()


@pytest.mark.skipif(not hasattr(os, "setpriority") or not hasattr(threading, "get_native_id"), reason="Linux")
def test_the_writer_thread_yields_the_cpu_to_training():
    # On 2 cores the writer's serialising and fsyncing took cores from the step (0.73× a bare loop's speed).
    io, seen = BackgroundCheckpointIO(), []
    io._submit(lambda: seen.append(os.getpriority(os.PRIO_PROCESS, threading.get_native_id())))
    io.teardown()
    assert seen == [19] and os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) < 19
