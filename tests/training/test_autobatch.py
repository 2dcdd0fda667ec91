"""--batch-size auto: the search on a fake out-of-memory, the CUDA trial logic, and a real CPU out-of-memory."""
import pytest
import torch

from backbonekit.errors import ConfigError
from backbonekit.training.autobatch import (TrialResult, auto_batch_size, cpu_trial, cuda_trial, parse_memory,
                                            search_batch_size)

FACTORY = "backbonekit.training.autobatch_step:make_step"
RECIPE = {"task": "classify", "spec": "backbonekit.classification.spec",
          "config": {"model": "resnet18", "num_classes": 10, "image_size": 32}}


def _fake_oom_above(limit):
    def trial(b):
        if b > limit:
            return TrialResult(b, False, error="out of memory")
        return TrialResult(b, True, peak_bytes=b * 1000)
    return trial


@pytest.mark.parametrize("limit", [1, 3, 37, 64, 1000])
@pytest.mark.parametrize("start", [2, 128])
def test_search_finds_the_largest_batch_that_fits(limit, start):
    best, trials = search_batch_size(_fake_oom_above(limit), start=start, max_batch=512, rel_tol=0)
    assert best == min(limit, 512)
    assert len(trials) <= 20


def test_search_stops_at_max_and_reports_nothing_fits():
    assert search_batch_size(_fake_oom_above(10_000), max_batch=100)[0] == 100
    with pytest.raises(ConfigError, match="even a batch of 1"):
        search_batch_size(_fake_oom_above(0))


def test_cuda_trial_counts_oom_and_budget():
    class FakeMemory:
        peak = 0

        def empty_cache(self):
            pass

        def reset_peak_memory_stats(self):
            self.peak = 0

        def max_memory_allocated(self):
            return self.peak

    memory = FakeMemory()

    def step(b):
        if b > 48:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        memory.peak = b * 10**8  # 100 MB per image

    trial = cuda_trial(step, budget=3 * 10**9, memory=memory)
    assert trial(16).fits and not trial(31).fits  # 3.1 GB > 3 GB budget
    oom = trial(64)
    assert not oom.fits and "out of memory" in oom.error
    assert search_batch_size(trial, rel_tol=0)[0] == 30


def test_cpu_needs_a_budget():
    with pytest.raises(ConfigError, match="--max-memory"):
        auto_batch_size(FACTORY, RECIPE, cpu_budget_bytes=None)


def test_parse_memory():
    assert parse_memory("4GB") == 4 * 10**9 and parse_memory("512MiB") == 512 * 2**20 and parse_memory("1.5g") == 1.5e9
    with pytest.raises(ConfigError):
        parse_memory("lots")


def test_real_out_of_memory_under_an_address_space_limit():
    # The parent holds more resident memory than the trial will ever use: the trial's peak must still be its own
    # (ru_maxrss would report the parent's, carried over through fork and exec, and so 0 after the baseline).
    ballast = torch.ones(300 * 2**20 // 4)  # 300 MiB, touched
    small = cpu_trial(FACTORY, RECIPE, 8, budget=800 * 10**6)
    del ballast
    assert small.fits and 0 < small.peak_bytes < 800 * 10**6
    huge = cpu_trial(FACTORY, RECIPE, 100_000, budget=800 * 10**6)  # the input alone is 300 MB of uint8, the
    # first activation 3.3 GB
    assert not huge.fits and "can't allocate memory" in huge.error


def test_cli_batch_size_auto(image_folder, tmp_path, capsys):
    from backbonekit.cli import main

    # 11 training images (18 minus a third for validation): 10 steps an epoch would take batches of 1, which
    # BatchNorm cannot train on, so 2: one cheap trial in a real memory-capped process, printed as it runs.
    assert main(["train", "classify", "--data", str(image_folder), "--model", "resnet18", "--image-size", "32",
                 "--epochs", "1", "--batch-size", "auto", "--max-memory", "1GB", "--val-ratio", "0.34",
                 "--progress", "lines", "--out", str(tmp_path / "runs")]) == 0
    err = capsys.readouterr().err
    assert "auto batch size: trying 2 …" in err and "auto batch size: 2 fits, peak" in err
    assert ("auto batch size: 2 (capped: 11 training images, 6 steps an epoch (at least 10 where the data allows); "
            "measured peak" in err and "tried 2)" in err)
    assert main(["train", "classify", "--data", str(image_folder), "--batch-size", "auto"]) == 2
    assert "needs a memory budget: add --max-memory" in capsys.readouterr().err


def test_the_batch_leaves_at_least_ten_steps_an_epoch():
    from backbonekit.training.autobatch import MIN_STEPS, steps_cap

    assert MIN_STEPS == 10
    assert [steps_cap(n) for n in (1, 11, 128, 1437)] == [1, 2, 12, 143]  # memory alone chose 1437: one step


def test_each_trial_is_reported_as_it_runs():
    lines = []
    search_batch_size(_fake_oom_above(5), start=4, max_batch=64, rel_tol=0, report=lines.append)
    assert lines[:2] == ["auto batch size: trying 4 …", "auto batch size: 4 fits, peak 0.00 GB (0.0s)"]
    assert "auto batch size: 8 does not fit (0.0s)" in lines
