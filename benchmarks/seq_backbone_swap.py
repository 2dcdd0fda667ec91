"""The SeqDeepFake backbone swap is one flag: train SeqFakeFormer briefly with several backbones on the same
synthetic data (official layout, real scikit-image photos with ordered region edits) and print Fixed/Adaptive for each.

Run:  .venv/bin/python benchmarks/seq_backbone_swap.py [--backbones resnet18 resnet50 efficientnet_b0 efficientnet_b4]
          [--num-images 400] [--image-size 64] [--epochs 6] [--out runs/seq-swap]
Brief CPU runs from random initialisation: the figures compare backbones under one small budget; they are not the
paper's numbers (those need the real data, pretrained backbones and 170 epochs).
"""
import argparse
import time
from pathlib import Path

from backbonekit.cli import main as cli
from backbonekit.sequence.task import BestAdaptive


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbones", nargs="+",
                        default=["resnet18", "resnet50", "efficientnet_b0", "efficientnet_b4"])
    parser.add_argument("--num-images", type=int, default=400)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--out", default="runs/seq-swap")
    args = parser.parse_args()
    data = Path(args.out) / "data"
    if not (data / "facial_components").exists():
        cli(["data", "synth", "seqdeepfake", "--out", str(data), "--subset", "facial_components",
             "--num-images", str(args.num_images), "--seed", "0", "--image-size", str(args.image_size)])
    from backbonekit.cli import build_parser
    from backbonekit.sequence.train import train_sequence

    rows = []
    for backbone in args.backbones:
        start = time.time()
        train_args = build_parser().parse_args([
            "train", "sequence", "--data", str(data), "--subset", "facial_components", "--backbone", backbone,
            "--image-size", str(args.image_size), "--epochs", str(args.epochs), "--batch-size", str(args.batch_size),
            "--out", args.out, "--name", backbone, "--progress", "lines", "--seed", "0"])
        result = train_sequence(train_args)
        adaptive = next((float(cb.best_model_score) for cb in result.trainer.callbacks
                         if isinstance(cb, BestAdaptive) and cb.best_model_score is not None), float("nan"))
        params = sum(p.numel() for p in result.trainer.lightning_module.parameters())
        rows.append((backbone, params, result.best_score, adaptive, time.time() - start))

    print(f"\nSeqFakeFormer on synthetic facial_components, {args.num_images} images at {args.image_size}², "
          f"{args.epochs} epochs from random init, this CPU")
    print(f"{'backbone':<18}{'params':>12}{'best Fixed':>12}{'best Adaptive':>15}{'time':>9}")
    for backbone, params, fixed, adaptive, seconds in rows:
        print(f"{backbone:<18}{params:>12,}{fixed:>11.2f}%{adaptive:>14.2f}%{seconds:>8.0f}s")


if __name__ == "__main__":
    main()
