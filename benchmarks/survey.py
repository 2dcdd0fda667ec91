"""Train each survey family briefly on real images (scikit-learn's digits) with one recipe; accuracy, time, size.

Run:  .venv/bin/python benchmarks/survey.py [--epochs 2] [--models alexnet resnet18 …] [--threads 1]

Data: ``sklearn.datasets.load_digits``: 1,797 real 8×8 grey images of handwritten digits (10 classes), split 80/20
stratified with a fixed seed, upscaled bilinearly to 32×32 and repeated to 3 channels, normalised with each model's
mean/std. AlexNet needs at least 63×63 (its unpadded 11×11/4 conv and three 3×3/2 pools), so it alone trains at
64×64: the per-model minimum rather than 64×64 for all, which would quadruple every other model's cost.

Recipe, the same for every model: AdamW (lr 3e-4, weight decay 0.05), cosine decay to 0 over all steps, batch 64,
fixed epochs, seed 0, no augmentation, from random initialisation; GoogLeNet adds its auxiliary losses with weight
0.3 (its paper's recipe; the heads are training-only). A plain PyTorch loop through the public API, one torch thread
by default. Accuracy is on the 360 held-out images after the last epoch, with the BatchNorm statistics as trained
("test acc") and recomputed over the training set with the final weights ("precise-BN acc", pycls' PreciseBN; the
same for models without BatchNorm), which is what a few dozen steps need: see ``recalibrate_bn``.

Measured (2 epochs, 1 thread, on a 2-core machine shared with other jobs, load average ~7, so times are inflated):

    model                input        params epochs  train s  s/epoch last loss test acc precise-BN acc
    alexnet              64×64    57,044,810      2     73.5     36.7     1.465    34.7%          34.7%
    vgg11_bn             32×32   128,812,810      2    209.4    104.7     1.154    76.4%          77.5%
    googlenet            32×32     9,960,638      2     51.7     25.9     0.308    12.2%          98.6%
    resnet18             32×32    11,181,642      2     38.7     19.3     0.045    95.8%          96.4%
    densenet121          32×32     6,964,106      2     89.1     44.5     0.136    96.1%          95.8%
    seresnet50           32×32    26,059,514      2    138.1     69.1     0.222    84.4%          87.2%
    resnet18+dcn34       32×32    11,835,042      2     76.1     38.0     0.063    97.2%          97.2%
"""
from __future__ import annotations

import argparse
import math
import time

import numpy as np
import torch
import torch.nn.functional as F

import backbonekit as bk
from backbonekit.nn.batchnorm import reestimate_batch_norm

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
    # fused: one kernel for the whole update, ~5× faster than the per-tensor loop on CPU (VGG's 129M weights).
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.05, fused=True)
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
    accuracy = evaluate(model, x_test, y_test)
    recalibrate_bn(model, x_train)
    precise = evaluate(model, x_test, y_test)
    label = name + ("+dcn" + "".join(map(str, kwargs["deform_stages"])) if kwargs.get("deform_stages") else "")
    return {"model": label, "input": f"{size}×{size}", "params": sum(p.numel() for p in model.parameters()),
            "epochs": args.epochs, "train_s": train_s, "accuracy": accuracy, "precise_bn": precise,
            "final_loss": loss.item()}


def evaluate(model, x: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    with torch.inference_mode():
        pred = torch.cat([model(x[i:i + 256]).argmax(1) for i in range(0, len(y), 256)])
    return (pred == y).float().mean().item()


def recalibrate_bn(model, x: torch.Tensor, batch_size: int = 256) -> None:
    """"Precise BN": the running statistics recomputed as exact averages over the training set with the final
    weights. After a few dozen steps the running averages (momentum 0.1) still mix in the statistics of much earlier
    weights, which can make eval-mode outputs nearly constant."""
    reestimate_batch_norm(model, [x[i:i + batch_size] for i in range(0, len(x), batch_size)])


def render(rows: list[dict]) -> None:
    header = f"{'model':<18} {'input':>7} {'params':>13} {'epochs':>6} {'train s':>8} {'s/epoch':>8} " \
             f"{'last loss':>9} {'test acc':>8} {'precise-BN acc':>14}"
    print(header)
    print("-" * len(header))
    for r in rows:
        print(f"{r['model']:<18} {r['input']:>7} {r['params']:>13,} {r['epochs']:>6} {r['train_s']:>8.1f} "
              f"{r['train_s'] / r['epochs']:>8.1f} {r['final_loss']:>9.3f} {100 * r['accuracy']:>7.1f}% "
              f"{100 * r['precise_bn']:>13.1f}%")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--size", type=int, default=32, help="input side (AlexNet: at least 64)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=3e-4)
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
