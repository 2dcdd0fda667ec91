"""torch.compile and bf16 on this CPU, each against eager fp32 measured in the same process: inference of the fused
classifier (what `predict`/`eval` run) and one training step (forward, backward, AdamW) of the classification task.

Run:  .venv/bin/python benchmarks/bench_compile_precision.py [--model resnet18] [--threads 2]

Printed per row: steady-state images/s (median of timed repeats after warm-up), the ratio to eager fp32, and the
one-off cost of the first call (compilation included) — what `--compile` adds to the start of a run. bf16 rows are
`torch.autocast("cpu", torch.bfloat16)` — what `--precision bf16-mixed` does — and are skipped where the CPU has no
bf16 instructions. The max |difference| of the logits from eager fp32 is printed for each row.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from backbonekit.classification.task import ClassificationTask
from backbonekit.nn.fuse import fuse_batchnorm


def _cpu_has_bf16() -> bool:
    try:
        flags = open("/proc/cpuinfo").read()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def timed(fn, repeats: int) -> tuple[float, float]:
    """(first call's seconds, median seconds of ``repeats`` later calls after two warm-ups)."""
    start = time.perf_counter()
    fn()
    first = time.perf_counter() - start
    fn(), fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return first, statistics.median(times)


def inference_rows(model_name: str, size: int, batch: int, repeats: int, bf16: bool) -> list[tuple]:
    torch.manual_seed(0)
    task = ClassificationTask(model=model_name, num_classes=1000, image_size=size).eval()
    task.model = fuse_batchnorm(task.model, inplace=True)
    x = torch.randint(0, 256, (batch, 3, size, size), dtype=torch.uint8)
    with torch.inference_mode():
        reference = task(x).float()
    rows = []

    def run(autocast: bool):
        def call():
            with torch.inference_mode(), torch.autocast("cpu", torch.bfloat16, enabled=autocast):
                return task(x)
        return call

    variants = [("eager fp32", False, False), ("compiled fp32", True, False)]
    if bf16:
        variants += [("eager bf16", False, True), ("compiled bf16", True, True)]
    for label, compiled, autocast in variants:
        torch._dynamo.reset()
        task.model.compile() if compiled else None
        call = run(autocast)
        first, median = timed(call, repeats)
        diff = (call().float() - reference).abs().max().item()
        rows.append((f"inference {size}² batch {batch}: {label}", batch / median, first, diff))
        if compiled:  # back to the plain module for the next row
            task.model._compiled_call_impl = None
    return rows


def training_rows(model_name: str, size: int, batch: int, repeats: int, bf16: bool) -> list[tuple]:
    rows = []
    x = torch.randint(0, 256, (batch, 3, size, size), dtype=torch.uint8)
    y = torch.randint(0, 10, (batch,))
    variants = [("eager fp32", False, False), ("compiled fp32", True, False)]
    if bf16:
        variants += [("eager bf16-mixed", False, True), ("compiled bf16-mixed", True, True)]
    for label, compiled, autocast in variants:
        torch._dynamo.reset()
        torch.manual_seed(0)
        task = ClassificationTask(model=model_name, num_classes=10, image_size=size).train()
        if compiled:
            task.model.compile()
        optimizer = torch.optim.AdamW(task.parameters(), lr=1e-3)

        def step():
            with torch.autocast("cpu", torch.bfloat16, enabled=autocast):
                loss = F.cross_entropy(task(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            return loss.detach()

        first, median = timed(step, repeats)
        rows.append((f"train step {size}² batch {batch}: {label}", batch / median, first, float("nan")))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet18")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    bf16 = _cpu_has_bf16()
    print(f"{args.model}, {args.threads} threads, bf16 instructions: {'yes' if bf16 else 'no (bf16 rows skipped)'}")
    groups = [inference_rows(args.model, 224, 8, args.repeats, bf16),
              training_rows(args.model, 32, 32, args.repeats, bf16),
              training_rows(args.model, 224, 8, max(3, args.repeats // 3), bf16)]
    print(f"{'row':<46}{'images/s':>10}{'vs eager fp32':>15}{'first call s':>14}{'max |Δlogit|':>14}")
    for rows in groups:
        base = rows[0][1]
        for label, rate, first, diff in rows:
            print(f"{label:<46}{rate:>10.1f}{rate / base:>14.2f}×{first:>14.1f}{diff:>14.3g}")


if __name__ == "__main__":
    main()
