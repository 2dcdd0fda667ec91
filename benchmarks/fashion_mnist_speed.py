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
    torch.set_num_threads(args.threads)
    from backbonekit.classification.task import ClassificationTask

    task = ClassificationTask(model=args.model, num_classes=10, image_size=args.image_size, stem="small").train()
    optimizer = torch.optim.AdamW(task.parameters(), 1e-3)
    size, n = args.image_size, args.batch_size
    x, y = torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8), torch.randint(0, 10, (n,))

    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.precision == "bf16"):
            loss = task.training_loss((x, y))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    for _ in range(2):
        step()
    wall, cpu = time.perf_counter(), time.process_time()
    for i in range(1, args.steps + 1):
        step()
        if i % 10 == 0 or i == args.steps:
            dw, dc = time.perf_counter() - wall, time.process_time() - cpu
            print(f"{args.model} small stem {size} px, batch {n}, {args.precision}: {i} steps in {dw:.0f} s: "
                  f"{i * n / dw:.1f} images/s wall, {i * n / (dc / args.threads):.1f} per {args.threads} "
                  f"CPU-seconds", flush=True)


if __name__ == "__main__":
    main()
