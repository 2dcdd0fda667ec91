"""Training-loop overhead: `train classify` (data loading, Lightning, callbacks, logging, checkpoints) against a bare
PyTorch loop of the same model, data, batch size, augmentation and optimiser, in images/s over whole epochs (training
pass + validation pass, as both run them), in one process, bare and ours in alternating order over `--rounds`.

Run:  .venv/bin/python benchmarks/bench_train_loop.py [--epochs 4] [--threads 2] [--rounds 2]

Two set-ups: ResNet-18 at 32² on the built-in digits (1,437 training images, batch 32), and ResNet-18 at 224² on an
ImageFolder of scikit-image's bundled real photos (random crops of 8 photos, 2 classes × 24, batch 8). The first
epoch of each is left out (start-up, allocator warm-up); the figure is the median epoch. Ours is read from the run's
results.csv (`seconds`: the epoch's training and validation, as the engine times it).
"""
from __future__ import annotations

import argparse
import csv
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from backbonekit.classification.data import build_classification_data
from backbonekit.cli import main as cli
from backbonekit.models.registry import create_model
from backbonekit.nn.normalize import ImageNormalize
from backbonekit.training.loaders import make_loaders


def photo_folder(root: Path, per_class: int = 24, size: int = 256) -> Path:
    """Two classes of real photos (scikit-image's bundled ones), random crops resized to ``size``."""
    from skimage import data

    photos = {"animals": [data.chelsea(), data.cat(), data.coffee()],
              "scenes": [data.astronaut(), data.rocket(), data.immunohistochemistry()]}
    rng = np.random.default_rng(0)
    for name, images in photos.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            image = images[i % len(images)]
            h, w = image.shape[:2]
            side = int(min(h, w) * rng.uniform(0.6, 1.0))
            y, x = rng.integers(0, h - side + 1), rng.integers(0, w - side + 1)
            crop = Image.fromarray(image[y:y + side, x:x + side]).resize((size, size))
            crop.save(root / name / f"{i:03d}.jpg", quality=90)
    return root


def bare_epochs(data_arg: str, image_size: int, batch_size: int, epochs: int, lr: float) -> list[float]:
    """Seconds per epoch of a plain loop: the same data sets, loaders, model, normalisation and AdamW + cosine."""
    torch.manual_seed(0)
    data = build_classification_data(data_arg, image_size=image_size, augment="basic", val_ratio=0.2, seed=0)
    train, val = make_loaders(data.train, data.val, batch_size)
    model = create_model("resnet18", num_classes=len(data.class_names))
    normalize = ImageNormalize.from_cfg(model.pretrained_cfg)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.05)
    total = epochs * len(train)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 0.5 * (1 + np.cos(np.pi * s / total)))
    times = []
    for _ in range(epochs):
        start = time.perf_counter()
        model.train()
        for x, y in train:
            loss = F.cross_entropy(model(normalize(x)), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
        model.eval()
        correct = 0
        with torch.no_grad():
            for x, y in val:
                correct += int((model(normalize(x)).argmax(1) == y).sum())
        times.append(time.perf_counter() - start)
    return times


def ours_epochs(data_arg: str, image_size: int, batch_size: int, epochs: int, lr: float, out: Path) -> list[float]:
    code = cli(["train", "classify", "--data", data_arg, "--model", "resnet18", "--image-size", str(image_size),
                "--batch-size", str(batch_size), "--epochs", str(epochs), "--optimizer", "adamw", "--lr", str(lr),
                "--weight-decay", "0.05", "--augment", "basic", "--progress", "lines", "--out", str(out),
                "--name", "bench", "--seed", "0"])
    if code != 0:
        raise SystemExit(f"train classify exited with {code}")
    with open(out / "classify" / "bench" / "results.csv", newline="") as f:
        return [float(row["seconds"]) for row in csv.DictReader(f)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2,
                        help="bare/ours pairs per set-up, in alternating order (bare, ours, ours, bare, ...)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    work = Path(tempfile.mkdtemp(prefix="bench-train-loop-"))
    setups = [("digits 32²", "digits", 32, 32), ("photos 224²", str(photo_folder(work / "photos")), 224, 8)]
    print(f"{'set-up':<14}{'ours img/s':>12}{'bare img/s':>12}{'ours/bare':>11}   (median epoch of {args.epochs}, "
          f"first left out; {args.threads} threads; {args.rounds} alternating rounds, median of each side)")
    for label, data_arg, size, batch in setups:
        n_train = len(build_classification_data(data_arg, image_size=size, augment="none", val_ratio=0.2,
                                                seed=0).train)
        # A shared machine drifts over minutes; alternating the order spreads the drift over both sides.
        bare, ours, per_round = [], [], []
        for r in range(args.rounds):
            times = {}
            for side in ("bare", "ours") if r % 2 == 0 else ("ours", "bare"):
                times[side] = (bare_epochs(data_arg, size, batch, args.epochs, 1e-3) if side == "bare" else
                               ours_epochs(data_arg, size, batch, args.epochs, 1e-3, work / f"{label.split()[0]}-{r}"))
            b, o = times["bare"][1:], times["ours"][1:]
            bare += b
            ours += o
            per_round.append(statistics.median(b) / statistics.median(o))
        rate_bare = n_train / statistics.median(bare)
        rate_ours = n_train / statistics.median(ours)
        rounds = ", ".join(f"{x:.3f}" for x in per_round)
        print(f"{label:<14}{rate_ours:>12.1f}{rate_bare:>12.1f}{rate_ours / rate_bare:>10.3f}×   rounds: {rounds}",
              flush=True)


if __name__ == "__main__":
    main()
