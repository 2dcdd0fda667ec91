"""``--batch-size auto``: the largest batch whose train step fits a memory budget.

CUDA: steps run in this process; the peak of ``torch.cuda.max_memory_allocated`` must stay under a fraction of the
card (default 0.6, as Ultralytics) and an out-of-memory error counts as "does not fit".
CPU: each trial runs in a fresh process whose address space is capped with ``RLIMIT_AS`` at what torch itself takes
plus the budget, so running out of memory is real (torch raises "DefaultCPUAllocator: can't allocate memory") and
cannot take this process or the machine down; the trial reports its peak resident memory.
Search: double until a step fails, then bisect between the last fit and the first failure; each trial is printed
as it starts and ends. The batch is at most a tenth of the training set (``MIN_STEPS`` steps an epoch).
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Callable

from backbonekit.errors import ConfigError

# Set by the process that searched so that the processes DDP starts use its choice instead of searching again.
ENV_AUTO_BATCH = "BACKBONEKIT_AUTO_BATCH_SIZE"
# The batch never takes more than 1/MIN_STEPS of the training set: memory alone chose the whole set on small data
# (1-3 optimiser steps an epoch, too few for a warm-up or a schedule to mean anything).
MIN_STEPS = 10

Trial = Callable[[int], "TrialResult"]


@dataclass
class TrialResult:
    batch_size: int
    fits: bool
    peak_bytes: int = 0
    error: str = ""


@dataclass
class BatchChoice:
    batch_size: int
    device: str
    budget_bytes: int
    peak_bytes: int
    trials: list[TrialResult] = field(default_factory=list)
    capped: str = ""  # why the search stopped below what memory allows, if it did

    def describe(self) -> str:
        tried = " ".join(f"{t.batch_size}{'' if t.fits else '✗'}" for t in self.trials)
        cap = f"{self.capped}; " if self.capped else ""
        return (f"auto batch size: {self.batch_size} ({cap}measured peak {_gb(self.peak_bytes)} of a "
                f"{_gb(self.budget_bytes)} budget on {self.device}; tried {tried})")


def _gb(n: int) -> str:
    return f"{n / 1e9:.2f} GB"


def parse_memory(text: str) -> int:
    m = re.fullmatch(r"\s*([\d.]+)\s*([kmgt]?i?b?)\s*", str(text).lower())
    if not m:
        raise ConfigError(f"--max-memory takes a size such as 4GB or 512MB, got {text!r}")
    unit = m.group(2).rstrip("b")
    scale = {"": 1, "k": 1e3, "m": 1e6, "g": 1e9, "t": 1e12, "ki": 2**10, "mi": 2**20, "gi": 2**30, "ti": 2**40}[unit]
    return int(float(m.group(1)) * scale)


def search_batch_size(trial: Trial, start: int = 2, max_batch: int = 4096, rel_tol: float = 0.1,
                      report: Callable[[str], None] | None = None) -> tuple[int, list[TrialResult]]:
    """Largest batch size in [1, max_batch] that fits, to within ``rel_tol`` of the true limit. ``report`` gets a
    line as each trial starts and ends (a trial can take seconds)."""
    trials: list[TrialResult] = []

    def run(b: int) -> bool:
        started = time.time()
        if report:
            report(f"auto batch size: trying {b} …")
        result = trial(b)
        trials.append(result)
        if report:
            peak = f", peak {_gb(result.peak_bytes)}" if result.peak_bytes else ""
            report(f"auto batch size: {b} {'fits' if result.fits else 'does not fit'}{peak} "
                   f"({time.time() - started:.1f}s)")
        return result.fits

    good, bad, b = None, None, max(1, min(start, max_batch))
    while True:
        if run(b):
            good = b
            if b >= max_batch:
                return good, trials
            b = min(b * 2, max_batch)
        else:
            bad = b
            break
    while good is None:  # the first guess was too large: halve until something fits
        if bad == 1:
            raise ConfigError(f"even a batch of 1 does not fit the memory budget ({trials[-1].error or 'too large'})")
        b = bad // 2
        if run(b):
            good = b
        else:
            bad = b
    while bad - good > max(1, int(good * rel_tol)):
        mid = (good + bad) // 2
        if run(mid):
            good = mid
        else:
            bad = mid
    return good, trials


def resolve_batch_size(requested: str | int, factory: str, recipe: dict, *, max_batch: int,
                       max_memory: str | None = None, memory_fraction: float = 0.6) -> int:
    """``--batch-size``: a number, or "auto" for the largest batch whose train step (``factory``, see
    ``auto_batch_size``) fits the memory budget; the search prints what it chose and measured."""
    if str(requested).lower() != "auto":
        try:
            size = int(requested)
        except ValueError:
            raise ConfigError(f"--batch-size must be a number or 'auto', got {requested!r}") from None
        if size < 1:
            raise ConfigError("--batch-size must be at least 1")
        return size
    if os.environ.get(ENV_AUTO_BATCH):  # a DDP process started by the one that has already searched
        return int(os.environ[ENV_AUTO_BATCH])
    budget = parse_memory(max_memory) if max_memory else None
    cap = steps_cap(max_batch)
    choice = auto_batch_size(factory, recipe, cpu_budget_bytes=budget, cuda_fraction=memory_fraction,
                             max_batch=cap, report=_progress)
    if cap < max_batch and choice.batch_size == cap and choice.trials[-1].fits:
        choice.capped = (f"capped: {max_batch} training images, {-(-max_batch // cap)} steps an epoch (at least "
                         f"{MIN_STEPS} where the data allows)")
    print(choice.describe(), file=sys.stderr)
    os.environ[ENV_AUTO_BATCH] = str(choice.batch_size)  # inherited by the processes DDP starts
    return choice.batch_size


def steps_cap(train_size: int) -> int:
    """The largest batch ``auto`` may choose for ``train_size`` training images: ``MIN_STEPS`` steps an epoch or
    more, but at least 2 images (BatchNorm cannot train on one)."""
    return min(max(1, train_size), max(2, train_size // MIN_STEPS))


def _progress(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


@contextlib.contextmanager
def batch_size_scope():
    """Around one training run: a later run in this process searches again."""
    owns = ENV_AUTO_BATCH not in os.environ
    try:
        yield
    finally:
        if owns:
            os.environ.pop(ENV_AUTO_BATCH, None)


def find_batch_size(step: Callable[[int], None], *, device: str = "cpu", budget_bytes: int | None = None,
                    fraction: float = 0.6, start: int = 2, max_batch: int = 4096, rel_tol: float = 0.1,
                    memory=None, report: Callable[[str], None] | None = None) -> BatchChoice:
    """In this process: the largest ``b`` for which ``step(b)`` (one train step) neither runs out of memory nor, on
    CUDA, peaks above the budget (``budget_bytes``, or ``fraction`` of the card). On CPU only a raised
    out-of-memory counts; for a real CPU budget use ``auto_batch_size``, which caps the memory of a trial process."""
    import torch

    if device.startswith("cuda"):
        memory = memory or torch.cuda
        if budget_bytes is None:
            budget_bytes = int(memory.get_device_properties(0).total_memory * fraction)
    trial = memory_trial(step, budget_bytes, memory)
    best, trials = search_batch_size(trial, start=start, max_batch=max_batch, rel_tol=rel_tol, report=report)
    return BatchChoice(best, device, budget_bytes or 0, _peak_of(best, trials), trials)


def auto_batch_size(factory: str, recipe: dict, *, cpu_budget_bytes: int | None = None, cuda_fraction: float = 0.6,
                    max_batch: int = 4096, start: int = 2, rel_tol: float = 0.1,
                    report: Callable[[str], None] | None = None) -> BatchChoice:
    """``factory`` is "module:function" returning ``step(batch_size)`` for ``recipe`` (plain data, so a trial
    process can rebuild it)."""
    import torch

    if torch.cuda.is_available():
        step = _import(factory)({**recipe, "device": "cuda"})
        return find_batch_size(step, device="cuda", fraction=cuda_fraction, start=start, max_batch=max_batch,
                               rel_tol=rel_tol, report=report)
    if cpu_budget_bytes is None:
        raise ConfigError("--batch-size auto on CPU needs a memory budget: add --max-memory (e.g. 4GB)")
    trial = lambda b: cpu_trial(factory, recipe, b, cpu_budget_bytes)  # noqa: E731
    best, trials = search_batch_size(trial, start=start, max_batch=max_batch, rel_tol=rel_tol, report=report)
    return BatchChoice(best, "cpu", cpu_budget_bytes, _peak_of(best, trials), trials)


def _peak_of(best: int, trials: list[TrialResult]) -> int:
    return max((t.peak_bytes for t in trials if t.fits and t.batch_size == best), default=0)


def is_out_of_memory(e: BaseException) -> bool:
    """CUDA's OutOfMemoryError, the CPU allocator's "can't allocate memory", or Python's MemoryError."""
    import torch

    if isinstance(e, (torch.OutOfMemoryError, MemoryError)):
        return True
    text = str(e).lower()
    return isinstance(e, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text)


def memory_trial(step: Callable[[int], None], budget: int | None, memory=None) -> Trial:
    """A trial that runs ``step`` here; with ``memory`` (torch.cuda, or a stand-in in tests) the measured peak must
    also stay within ``budget``."""

    def trial(b: int) -> TrialResult:
        if memory is not None:
            memory.empty_cache()
            memory.reset_peak_memory_stats()
        try:
            step(b)
            step(b)  # the second step holds optimiser state too
        except Exception as e:  # noqa: BLE001 - anything but an out-of-memory is a real error
            if not is_out_of_memory(e):
                raise
            if memory is not None:
                memory.empty_cache()
            return TrialResult(b, False, error=str(e).strip().splitlines()[0][:200] if str(e).strip() else "OOM")
        if memory is None:
            return TrialResult(b, True)
        peak = memory.max_memory_allocated()
        return TrialResult(b, budget is None or peak <= budget, peak)
    return trial


def cuda_trial(step: Callable[[int], None], budget: int, memory=None) -> Trial:
    """``memory_trial`` on the GPU; ``memory`` (for tests) replaces torch.cuda's counters."""
    import torch

    return memory_trial(step, budget, memory or torch.cuda)


def cpu_trial(factory: str, recipe: dict, batch_size: int, budget: int, timeout: float = 600) -> TrialResult:
    env = {**os.environ, "MALLOC_ARENA_MAX": "2"}  # glibc reserves 64 MB of address space per arena otherwise
    cmd = [sys.executable, "-m", "backbonekit.training.autobatch", factory, json.dumps(recipe), str(batch_size),
           str(budget)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        reason = (proc.stderr.strip().splitlines() or [f"exit code {proc.returncode}"])[-1]
        return TrialResult(batch_size, False, error=reason[:200])
    out = json.loads(lines[-1])
    return TrialResult(batch_size, out["fits"], out.get("peak_bytes", 0), out.get("error", ""))


def _import(factory: str):
    import importlib

    module, _, name = factory.partition(":")
    return getattr(importlib.import_module(module), name)


def _proc_status(field: str) -> int:
    """A memory figure of this process from /proc/self/status, in bytes (VmSize, VmRSS, VmHWM…)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def _trial_main(factory: str, recipe_json: str, batch_size: str, budget: str) -> None:
    import resource

    import torch

    torch.set_num_threads(torch.get_num_threads())  # start the thread pool before the cap is measured
    # VmHWM, not getrusage's ru_maxrss: Linux carries ru_maxrss over from the forked parent through exec, so a
    # trial started by a large process would report that process's peak and measure nothing of its own.
    base_rss = _proc_status("VmRSS")
    limit = _proc_status("VmSize") + int(budget)
    resource.setrlimit(resource.RLIMIT_AS, (limit, resource.getrlimit(resource.RLIMIT_AS)[1]))
    try:
        step = _import(factory)(json.loads(recipe_json))
        step(int(batch_size))
        step(int(batch_size))
        fits, error = True, ""
    except Exception as e:  # noqa: BLE001 - "DefaultCPUAllocator: can't allocate memory" and the like
        if not is_out_of_memory(e):
            raise
        fits, error = False, str(e).strip().splitlines()[0][:200]
    peak = max(0, _proc_status("VmHWM") - base_rss)
    print(json.dumps({"fits": fits, "peak_bytes": peak, "error": error}), flush=True)


if __name__ == "__main__":
    _trial_main(*sys.argv[1:5])
