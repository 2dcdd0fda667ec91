"""find_batch_size in this process: a step that raises an out-of-memory above some size, as CUDA or the CPU
allocator would, and errors that are not out-of-memory (they must not be mistaken for "does not fit")."""
import pytest
import torch

from backbonekit.training.autobatch import find_batch_size, is_out_of_memory


@pytest.mark.parametrize("error", [
    lambda: torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"),
    lambda: RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory: you tried "
                         "to allocate 8589934592 bytes. Error code 12 (Cannot allocate memory)"),
    lambda: RuntimeError("CUDA error: out of memory"),
    lambda: MemoryError(),
])
def test_fake_out_of_memory_above_a_size(error):
    seen = []

    def step(b):
        seen.append(b)
        if b > 23:
            raise error()

    choice = find_batch_size(step, device="cpu", start=2, max_batch=1000, rel_tol=0)
    assert choice.batch_size == 23
    assert seen[:10] == [2, 2, 4, 4, 8, 8, 16, 16, 32, 24]  # doubling (two steps per trial), then bisection
    assert "23" in choice.describe() and "32✗" in choice.describe()


def test_cuda_budget_from_measured_peak():
    class FakeCuda:  # torch.cuda's counters, for a machine without a GPU
        peak = 0

        def get_device_properties(self, i):
            return type("Props", (), {"total_memory": 10 * 10**9})

        def empty_cache(self):
            pass

        def reset_peak_memory_stats(self):
            self.peak = 0

        def max_memory_allocated(self):
            return self.peak

    cuda = FakeCuda()

    def step(b):
        cuda.peak = 1_000 + b * 50 * 10**6  # 50 MB per image

    choice = find_batch_size(step, device="cuda", fraction=0.6, memory=cuda, rel_tol=0)
    assert choice.budget_bytes == 6 * 10**9
    assert choice.batch_size == 119 and choice.peak_bytes == 1_000 + 119 * 50 * 10**6


def test_other_errors_are_raised_not_counted():
    def step(b):
        raise RuntimeError("mat1 and mat2 shapes cannot be multiplied")

    with pytest.raises(RuntimeError, match="shapes"):
        find_batch_size(step)
    assert not is_out_of_memory(ValueError("out of memory"))  # only allocator errors count
