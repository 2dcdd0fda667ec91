"""The README's `train classify` / `train noisy-student` examples, each at the size the README states, with the
command's defaults for everything they do not set: prints each run's best validation top-1, its largest validation
loss (a diverging run shows 1e3-1e5 there) and the wall time.

Run:  .venv/bin/python benchmarks/readme_classify.py [--examples ema cifar …] [--out runs/readme-classify]

Data: the built-in digits, and for the CIFAR-10 example the same digits written in CIFAR-10's python-pickle format
(32×32 RGB, 5 training batches and a test batch; nothing is downloaded). Examples that need a teacher run it first
(``few-base`` for ``pseudo-teacher``, ``big`` for ``distill``).
"""
import argparse
import csv
import json
import pickle
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

FEW = ["--data", "digits", "--labels-per-class", "14"]
EXAMPLES = {
    "ema": ["train", "classify", "--data", "digits", "--model", "resnet18", "--image-size", "32", "--epochs", "10",
            "--ema", "0.999", "--precision", "bf16-mixed"],
    "cifar": ["train", "classify", "--data", "{cifar}", "--model", "resnet18", "--image-size", "32", "--epochs", "10"],
    "r1": ["train", "classify", "--data", "digits", "--model", "resnet18", "--image-size", "32", "--optimizer",
           "adamw", "--epochs", "2"],
    "fixmatch": ["train", "classify", *FEW, "--unlabeled", "digits-rest", "--semi", "fixmatch", "--threshold",
                 "0.95", "--mu", "7", "--lambda-u", "1", "--image-size", "32", "--epochs", "30"],
    "few-base": ["train", "classify", *FEW, "--image-size", "32", "--epochs", "30"],
    "pseudo-teacher": ["train", "classify", *FEW, "--unlabeled", "digits-rest", "--semi", "pseudo-label",
                       "--teacher", "{out}/classify/few-base/best.safetensors", "--distill-alpha", "0",
                       "--image-size", "32", "--epochs", "30"],
    "big": ["train", "classify", "--data", "digits", "--model", "resnet34", "--image-size", "16", "--epochs", "6"],
    "distill": ["train", "classify", "--data", "digits", "--model", "resnet18", "--image-size", "16", "--teacher",
                "{out}/classify/big/best.safetensors", "--distill-temperature", "4", "--distill-alpha", "0.9"],
    "noisy-student": ["train", "noisy-student", *FEW, "--unlabeled", "digits-rest", "--teacher-model", "resnet18",
                      "--students", "resnet18,resnet34", "--iterations", "2", "--threshold", "0.3", "--soft",
                      "--image-size", "16", "--epochs", "10", "--batch-size", "16"],
    "ddp": ["train", "classify", "--data", "digits", "--devices", "2", "--accelerator", "cpu", "--strategy", "ddp",
            "--image-size", "32", "--epochs", "4"],
}
NEEDS = {"pseudo-teacher": "few-base", "distill": "big"}


def write_cifar_digits(root: Path) -> Path:
    """scikit-learn's digits in CIFAR-10's on-disk format: 8×8 grey upscaled to 32×32 RGB, rows of R, G, B planes."""
    from PIL import Image
    from sklearn.datasets import load_digits

    if (root / "batches.meta").is_file():
        return root
    digits = load_digits()
    images = [np.asarray(Image.fromarray((x * 255 / 16).astype(np.uint8)).resize((32, 32), Image.BILINEAR))
              for x in digits.images]
    rows = np.stack([np.tile(im.reshape(-1), 3) for im in images])  # the same plane for R, G and B
    order = np.random.default_rng(0).permutation(len(rows))
    parts = np.array_split(order, 6)  # 5 training batches, 1 test batch
    root.mkdir(parents=True, exist_ok=True)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for name, idx in zip(names, parts):
        with open(root / name, "wb") as f:
            pickle.dump({b"batch_label": name.encode(), b"labels": digits.target[idx].tolist(), b"data": rows[idx],
                         b"filenames": [f"{i}.png".encode() for i in idx]}, f)
    with open(root / "batches.meta", "wb") as f:
        pickle.dump({b"label_names": [str(d).encode() for d in range(10)], b"num_cases_per_batch": len(parts[0]),
                     b"num_vis": 3072}, f)
    return root


def run(name: str, out: Path, cifar: Path) -> str:
    argv = [a.format(out=out, cifar=cifar) for a in EXAMPLES[name]]
    argv += ["--out", str(out), "--name", name, "--exist-ok", "--progress", "lines"]
    start = time.time()
    # A process of its own, as typed: DDP re-runs the command line it was started with.
    if subprocess.run([sys.executable, "-m", "backbonekit", *argv]).returncode != 0:
        return f"{name:15s} failed"
    seconds = time.time() - start
    task = "noisy-student" if argv[1] == "noisy-student" else "classify"
    metrics = json.loads((out / task / name / "metrics.json").read_text())
    if task == "noisy-student":
        gens = " → ".join(f"{g['val_top1']:.2f}" for g in metrics["generations"])
        return f"{name:15s} val top-1 by generation {gens} %  {seconds:.0f}s"
    with open(out / task / name / "results.csv") as f:
        losses = [float(r["val/loss"]) for r in csv.DictReader(f)]
    return (f"{name:15s} best val top-1 {metrics['best']['val/top1']:6.2f}%  largest val loss {max(losses):.3g}  "
            f"last {losses[-1]:.3g}  {seconds:.0f}s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", nargs="+", default=list(EXAMPLES), choices=list(EXAMPLES))
    parser.add_argument("--out", default="runs/readme-classify")
    args = parser.parse_args()
    out = Path(args.out).resolve()
    cifar = write_cifar_digits(out / "cifar-digits")
    wanted = list(dict.fromkeys(n for e in args.examples for n in (NEEDS.get(e), e) if n))
    lines = []
    for name in wanted:
        lines.append(run(name, out, cifar))
        print(lines[-1], flush=True)
    print("\n" + "\n".join(lines))


if __name__ == "__main__":
    main()
