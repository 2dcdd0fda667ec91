"""Training-loop overhead: `train classify` (data loading, Lightning, callbacks, logging, checkpoints) against a bare
PyTorch loop of the same model, data, batch size, augmentation and optimiser, in images/s over whole epochs (training
pass + validation pass, as both run them), in one process, the sides in rotating order over `--rounds`.

Run:  .venv/bin/python benchmarks/bench_train_loop.py [--epochs 4] [--threads 2] [--rounds 5]

The bare loop uses AdamW's fused kernel as ours does, so ours/bare is the cost of everything around the step; a
second bare loop with torch's default AdamW (on CPU a Python loop over the parameters) shows what a plain loop gets
unless it asks for the fused kernel (ours/it).

Two set-ups: ResNet-18 at 32² on the built-in digits (1,437 training images, batch 32), and ResNet-18 at 224² on an
ImageFolder of scikit-image's bundled real photos (random crops of 8 photos, 2 classes × 24, batch 8). The first
epoch of each is left out (start-up, allocator warm-up); the figure is the median epoch. An epoch of ours is timed
from its start to the next epoch's start (the last one: to the end of fit), so it includes everything the engine does
between epochs: validation, results.csv, the best and last checkpoints.
"""
from __future__ import annotations

import argparse
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
from backbonekit.training.callbacks import ResultsCSV
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


def bare_epochs(data_arg: str, image_size: int, batch_size: int, epochs: int, lr: float,
                fused: bool = True) -> list[float]:
    """Seconds per epoch of a plain loop: the same data sets, loaders, model, normalisation and AdamW + cosine.
    ``fused``: AdamW's fused kernel, as ``train classify`` uses it (the loop-overhead comparison); without it, torch's
    default on CPU (a Python loop over the parameters), i.e. what a plain loop gets unless it asks."""
    torch.manual_seed(0)
    data = build_classification_data(data_arg, image_size=image_size, augment="basic", val_ratio=0.2, seed=0)
    train, val = make_loaders(data.train, data.val, batch_size)
    model = create_model("resnet18", num_classes=len(data.class_names))
    normalize = ImageNormalize.from_cfg(model.pretrained_cfg)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.05, fused=fused or None)
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


class _EpochClock:
    """Wall-clock marks at each epoch start and at the end of fit, taken by wrapping the engine's ResultsCSV hooks (a
    callback of every run), so the figure is measured outside the engine's own bookkeeping."""

    def __enter__(self):
        self.marks: list[float] = []
        self._saved = ResultsCSV.on_train_epoch_start, ResultsCSV.on_fit_end
        start, _ = self._saved
        marks = self.marks

        def on_train_epoch_start(callback, trainer, pl_module):
            marks.append(time.perf_counter())
            start(callback, trainer, pl_module)

        def on_fit_end(callback, trainer, pl_module):
            marks.append(time.perf_counter())

        ResultsCSV.on_train_epoch_start, ResultsCSV.on_fit_end = on_train_epoch_start, on_fit_end
        return self

    def __exit__(self, *exc):
        ResultsCSV.on_train_epoch_start, ResultsCSV.on_fit_end = self._saved

    def epochs(self) -> list[float]:
        return [b - a for a, b in zip(self.marks, self.marks[1:])]


def ours_epochs(data_arg: str, image_size: int, batch_size: int, epochs: int, lr: float, out: Path) -> list[float]:
    with _EpochClock() as clock:
            code = cli(["train", "classify", "--data", data_arg, "--model", "resnet18", "--image-size", str(image_size),
                    "--batch-size", str(batch_size), "--epochs", str(epochs), "--optimizer", "adamw", "--lr", str(lr),
                    "--weight-decay", "0.05", "--augment", "basic", "--progress", "lines", "--out", str(out),
                    "--name", "bench", "--exist-ok", "--seed", "0"])  # each round replaces the last
    if code != 0:
        raise SystemExit(f"train classify exited with {code}")
    times = clock.epochs()
    if len(times) != epochs:
        raise SystemExit(f"expected {epochs} epoch times, got {len(times)}")
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5,
                        help="rounds per set-up; each runs every side once, the order rotating from round to round")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    work = Path(tempfile.mkdtemp(prefix="bench-train-loop-"))
    setups = [("digits 32²", "digits", 32, 32), ("photos 224²", str(photo_folder(work / "photos")), 224, 8)]
    sides = ("bare", "bare-default", "ours")
    print(f"{'set-up':<14}{'ours img/s':>12}{'bare img/s':>12}{'ours/bare':>11}{'bare, default AdamW':>22}"
          f"{'ours/it':>9}   (median epoch of {args.epochs}, first left out; {args.threads} threads; "
          f"{args.rounds} rounds in rotating order; per-round ours/bare)")
    for label, data_arg, size, batch in setups:
        n_train = len(build_classification_data(data_arg, image_size=size, augment="none", val_ratio=0.2,
                                                seed=0).train)
        # A shared machine drifts over minutes; rotating the order spreads the drift over every side.
        times = {side: [] for side in sides}
        per_round = []
        for r in range(args.rounds):
            this = {}
            for side in sides[r % 3:] + sides[:r % 3]:
                if side == "ours":
                    run = ours_epochs(data_arg, size, batch, args.epochs, 1e-3, work / f"{label.split()[0]}-{r}")
                else:
                    run = bare_epochs(data_arg, size, batch, args.epochs, 1e-3, fused=side == "bare")
                this[side] = run[1:]
                times[side] += run[1:]
            per_round.append(statistics.median(this["bare"]) / statistics.median(this["ours"]))
        rate = {side: n_train / statistics.median(t) for side, t in times.items()}
        rounds = ", ".join(f"{x:.3f}" for x in per_round)
        print(f"{label:<14}{rate['ours']:>12.1f}{rate['bare']:>12.1f}{rate['ours'] / rate['bare']:>10.3f}×"
              f"{rate['bare-default']:>22.1f}{rate['ours'] / rate['bare-default']:>8.3f}×   rounds: {rounds}",
              flush=True)
        # The goal is read on the rounds: their median, and their spread against the gap to 1.
        print(f"{'':<14}ours/bare over the {len(per_round)} rounds: median {statistics.median(per_round):.3f}, "
              f"range {min(per_round):.3f}–{max(per_round):.3f}", flush=True)


if __name__ == "__main__":
    main()
