"""Training speed of a small-stem classifier on Fashion-MNIST-shaped batches (28 px, random uint8), 2 threads: the
task's own loss, backward and AdamW step, after 2 warm-up steps. Prints every 10 steps the images/s of wall time and
the images per 2 CPU-seconds of this process: on a machine other processes share, the second is what two dedicated
cores would approach (an upper bound: it assumes the two threads scale perfectly).

    python benchmarks/fashion_mnist_speed.py --model resnet18 --batch-size 128 --steps 60
    python benchmarks/fashion_mnist_speed.py --precision bf16
"""
from __future__ import annotations

import argparse
import time

import torch


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="resnet18")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--image-size", type=int, default=28)
    p.add_argument("--precision", choices=("fp32", "bf16"), default="fp32")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    training_speed(args.model, batch_size=args.batch_size, steps=args.steps, image_size=args.image_size,
                   precision=args.precision, threads=args.threads, report=True)


def training_speed(model: str, *, batch_size: int = 128, steps: int = 60, image_size: int = 28,
                   precision: str = "fp32", threads: int = 2, report: bool = False) -> tuple[float, float]:
    """Images per second of wall time and per ``threads`` CPU-seconds of this process, after 2 warm-up steps."""
    torch.set_num_threads(threads)
    from backbonekit.classification.task import ClassificationTask

    task = ClassificationTask(model=model, num_classes=10, image_size=image_size, stem="small").train()
    optimizer = torch.optim.AdamW(task.parameters(), 1e-3)
    size, n = image_size, batch_size
    x, y = torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8), torch.randint(0, 10, (n,))

    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            loss = task.training_loss((x, y))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    for _ in range(2):
        step()
    wall, cpu = time.perf_counter(), time.process_time()
    for i in range(1, steps + 1):
        step()
        dw, dc = time.perf_counter() - wall, time.process_time() - cpu
        if report and (i % 10 == 0 or i == steps):
            print(f"{model} small stem {size} px, batch {n}, {precision}: {i} steps in {dw:.0f} s: "
                  f"{i * n / dw:.1f} images/s wall, {i * n / (dc / threads):.1f} per {threads} "
                  f"CPU-seconds", flush=True)
    return steps * n / dw, steps * n / (dc / threads)


if __name__ == "__main__":
    main()
