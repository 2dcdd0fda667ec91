"""Train each survey family briefly on real images (scikit-learn's digits) with one recipe; accuracy, time, size.

Run:  .venv/bin/python benchmarks/survey.py [--epochs 6] [--models alexnet resnet18 …] [--threads 1]

Data: ``sklearn.datasets.load_digits``: 1,797 real 8×8 grey images of handwritten digits (10 classes), split 80/20
stratified with a fixed seed, upscaled bilinearly to 32×32 and repeated to 3 channels, normalised with each model's
mean/std. AlexNet needs at least 63×63 (its unpadded 11×11/4 conv and three 3×3/2 pools), so it alone trains at
64×64: the per-model minimum rather than 64×64 for all, which would quadruple every other model's cost.

Recipe, the same for every model: AdamW (lr 1e-3, weight decay 0.05), cosine decay to 0 over all steps, batch 64,
fixed epochs, seed 0, no augmentation, from random initialisation; GoogLeNet adds its auxiliary losses with weight
0.3 (its paper's recipe; the heads are training-only). A plain PyTorch loop through the public API, one torch thread
by default. Accuracy is on the 360 held-out images, after the last epoch.
"""
from __future__ import annotations

import argparse
import math
import time

import numpy as np
import torch
import torch.nn.functional as F

import backbonekit as bk

MODELS = [
    ("alexnet", {}),
    ("vgg11_bn", {}),
    ("googlenet", {"aux_logits": True}),
    ("resnet18", {}),
    ("densenet121", {}),
    ("seresnet50", {}),
    ("resnet18", {"deform_stages": (3, 4)}),
]
MIN_SIZE = {"alexnet": 64}


def load_digits(seed: int):
    from sklearn.datasets import load_digits as sk_digits
    from sklearn.model_selection import train_test_split

    data = sk_digits()
    x = torch.tensor(data.images, dtype=torch.float32)[:, None] / 16.0  # (N, 1, 8, 8) in [0, 1]
    y = torch.tensor(data.target, dtype=torch.long)
    train_idx, test_idx = train_test_split(np.arange(len(y)), test_size=0.2, stratify=data.target, random_state=seed)
    return (x[train_idx], y[train_idx]), (x[test_idx], y[test_idx])


def prepare(x: torch.Tensor, size: int, mean, std) -> torch.Tensor:
    x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False).repeat(1, 3, 1, 1)
    return (x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)


def loss_of(out, y: torch.Tensor) -> torch.Tensor:
    if isinstance(out, tuple):  # GoogLeNetOutputs(logits, aux_logits2, aux_logits1) in training
        return F.cross_entropy(out[0], y) + 0.3 * sum(F.cross_entropy(a, y) for a in out[1:])
    return F.cross_entropy(out, y)


def run(name: str, kwargs: dict, data, args) -> dict:
    (x_train, y_train), (x_test, y_test) = data
    size = max(args.size, MIN_SIZE.get(name, 0))
    torch.manual_seed(args.seed)
    model = bk.create_model(name, num_classes=10, **kwargs)
    cfg = model.pretrained_cfg
    x_train, x_test = prepare(x_train, size, cfg["mean"], cfg["std"]), prepare(x_test, size, cfg["mean"], cfg["std"])
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.05)
    steps_per_epoch = math.ceil(len(y_train) / args.batch_size)
    total = args.epochs * steps_per_epoch
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 0.5 * (1 + math.cos(math.pi * s / total)))
    g = torch.Generator().manual_seed(args.seed)
    start = time.perf_counter()
    model.train()
    for _ in range(args.epochs):
        order = torch.randperm(len(y_train), generator=g)
        for i in range(steps_per_epoch):
            idx = order[i * args.batch_size:(i + 1) * args.batch_size]
            loss = loss_of(model(x_train[idx]), y_train[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
    train_s = time.perf_counter() - start
    model.eval()
    with torch.inference_mode():
        pred = torch.cat([model(x_test[i:i + 256]).argmax(1) for i in range(0, len(y_test), 256)])
    label = name + ("+dcn" + "".join(map(str, kwargs["deform_stages"])) if kwargs.get("deform_stages") else "")
    return {"model": label, "input": f"{size}×{size}", "params": sum(p.numel() for p in model.parameters()),
            "epochs": args.epochs, "train_s": train_s, "accuracy": (pred == y_test).float().mean().item(),
            "final_loss": loss.item()}


def render(rows: list[dict]) -> None:
    header = f"{'model':<18} {'input':>7} {'params':>13} {'epochs':>6} {'train s':>8} {'s/epoch':>8} " \
             f"{'last loss':>9} {'test acc':>8}"
    print(header)
    print("-" * len(header))
    for r in rows:
        print(f"{r['model']:<18} {r['input']:>7} {r['params']:>13,} {r['epochs']:>6} {r['train_s']:>8.1f} "
              f"{r['train_s'] / r['epochs']:>8.1f} {r['final_loss']:>9.3f} {100 * r['accuracy']:>7.1f}%")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--size", type=int, default=32, help="input side (AlexNet: at least 64)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--models", nargs="*", help="subset of the default names (e.g. alexnet resnet18)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data = load_digits(args.seed)
    print(f"digits: {len(data[0][1])} train / {len(data[1][1])} test images; AdamW lr {args.lr}, wd 0.05, cosine, "
          f"batch {args.batch_size}, {args.epochs} epochs, seed {args.seed}, {args.threads} thread(s)\n")
    rows = []
    for name, kwargs in MODELS:
        if args.models and name not in args.models:
            continue
        rows.append(run(name, kwargs, data, args))
        print(f"  done {rows[-1]['model']}: {rows[-1]['train_s']:.0f} s, {100 * rows[-1]['accuracy']:.1f}%", flush=True)
    print()
    render(rows)


if __name__ == "__main__":
    main()
