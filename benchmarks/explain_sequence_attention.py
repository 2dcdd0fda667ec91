"""Does `explain sequence` show where each edit is? The synthetic SeqDeepFake generator paints edit type e in a fixed
region (``synth.REGIONS``), so for every held-out step the model predicts correctly we know where it should look: the
benchmark trains a small SeqFakeFormer on the synthetic data, then counts the steps whose attention peak (the last
decoder layer's cross-attention, mean of heads, resized over the image as `explain sequence` draws it) lies inside
the region of that step's edit. Chance is the region's share of the image (where a peak dropped at random would land).

Run:  .venv/bin/python benchmarks/explain_sequence_attention.py [--num-images 1600] [--image-size 96] [--epochs 20]
          [--out runs/explain-seq] [--checkpoint RUN/best.ckpt (skip training)]
96² puts ResNet-18's stride-16 grid at 6×6, whose cell centres fall inside every region (at 64², 4×4, no centre lies
in the eyebrow band); a peak of the bilinear map lies at a cell centre.
"""
import argparse
import time
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from backbonekit.cli import main as cli

SUBSET = "facial_components"


def train(args) -> Path:
    from backbonekit.cli import build_parser
    from backbonekit.sequence.train import train_sequence

    data = Path(args.out) / "data"
    if not (data / SUBSET).exists():
        cli(["data", "synth", "seqdeepfake", "--out", str(data), "--subset", SUBSET, "--num-images",
             str(args.num_images), "--seed", "0", "--image-size", str(args.image_size)])
    # From random initialisation the backbone learns at the transformer's rate (the default 0.1× is for a
    # pretrained one).
    train_args = build_parser().parse_args([
        "train", "sequence", "--data", str(data), "--subset", SUBSET, "--backbone", args.backbone,
        "--image-size", str(args.image_size), "--epochs", str(args.epochs), "--batch-size", str(args.batch_size),
        "--backbone-lr-mult", "1", "--out", args.out, "--name", args.backbone, "--exist-ok", "--progress", "lines",
        "--seed", "0"])
    start = time.time()
    result = train_sequence(train_args)
    print(f"trained in {time.time() - start:.0f} s; best val Fixed {result.best_score:.1f}%", flush=True)
    return Path(args.out) / "sequence" / args.backbone / "best.ckpt"


def region_masks(size: int) -> dict[int, np.ndarray]:
    from backbonekit.sequence.synth import REGIONS, _region_mask

    return {e: _region_mask(parts, size) > 0 for e, parts in REGIONS[SUBSET].items()}


def step_score(heat: torch.Tensor, region: np.ndarray) -> tuple[bool, float]:
    """(whether the peak of ``heat`` (h, w), resized bilinearly over the image as the strip draws it, lies in
    ``region``, the share of the attention inside ``region``)."""
    from backbonekit.explain.overlay import resize_map

    big = resize_map(heat.numpy(), region.shape)
    return bool(region.flat[int(big.argmax())]), float(big[region].sum() / big.sum())


def evaluate(checkpoint: Path, data: Path, batch_size: int = 32) -> None:
    from backbonekit.sequence.data import SeqDeepFakeDataset
    from backbonekit.sequence.explain import edit_attention
    from backbonekit.sequence.task import load
    from backbonekit.sequence.vocab import edit_names

    trained = load(checkpoint).eval()
    size = trained.cfg.image_size
    masks, names = region_masks(size), edit_names(SUBSET)
    test = SeqDeepFakeDataset(data, SUBSET, "test", image_size=size)
    hits, counts, steps_total = defaultdict(int), defaultdict(int), 0
    mass, cells = defaultdict(float), Counter()
    for images, labels in DataLoader(test, batch_size=batch_size):
        predicted, maps = edit_attention(trained, images)
        for i in range(len(images)):
            for k in range(labels.shape[1]):
                edit = int(labels[i, k])
                if edit == 0:
                    break
                steps_total += 1
                if int(predicted[i, k]) != edit:
                    continue
                hit, share = step_score(maps[i, k], masks[edit])
                cells[np.unravel_index(int(maps[i, k].argmax()), maps.shape[-2:])] += 1
                counts[edit] += 1
                hits[edit] += hit
                mass[edit] += share
    report(hits, counts, mass, masks, names, steps_total, len(test))
    report_cells(cells, maps.shape[-2:])


def report_cells(cells: Counter, grid) -> None:
    """Whether the peaks move with the edit at all: a map that peaks on one cell whatever the step says nothing."""
    (cell, n), total = cells.most_common(1)[0], sum(cells.values())
    print(f"commonest peak: grid cell (row {cell[0]}, column {cell[1]}) of {grid[0]}×{grid[1]}, "
          f"{100 * n / total:.1f}% of the steps")


def report(hits, counts, mass, masks, names, steps_total, images) -> None:
    area = {e: float(m.mean()) for e, m in masks.items()}
    n = sum(counts.values())
    print(f"\n{images} held-out images, {steps_total} true edit steps, {n} predicted correctly "
          f"({100 * n / max(steps_total, 1):.1f}%); attention = last decoder layer, mean of heads")
    print(f"{'edit':<10}{'steps':>7}{'peak in region':>16}{'chance (area)':>15}{'attention mass in':>19}")
    for e in sorted(counts):
        print(f"{names[e]:<10}{counts[e]:>7}{100 * hits[e] / counts[e]:>15.1f}%{100 * area[e]:>14.1f}%"
              f"{100 * mass[e] / counts[e]:>18.1f}%")
    if n:
        chance = sum(counts[e] * area[e] for e in counts) / n
        share = sum(hits.values()) / n
        print(f"{'all':<10}{n:>7}{100 * share:>15.1f}%{100 * chance:>14.1f}%{100 * sum(mass.values()) / n:>18.1f}%")
        print(f"claim (peak in the edit's region in ≥ 70% of steps): {'met' if share >= 0.7 else 'NOT met'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="resnet18")
    parser.add_argument("--num-images", type=int, default=1600)
    parser.add_argument("--image-size", type=int, default=96)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--out", default="runs/explain-seq")
    parser.add_argument("--checkpoint", help="a trained run's best.ckpt on --out's data: evaluate only")
    args = parser.parse_args()
    checkpoint = Path(args.checkpoint) if args.checkpoint else train(args)
    evaluate(checkpoint, Path(args.out) / "data")


if __name__ == "__main__":
    main()
