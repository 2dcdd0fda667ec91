"""SeqFakeFormer inference: our batched greedy decoding against the official procedure, on the same model.

The official code decodes one image at a time and runs the whole model (backbone, encoder, decoder) once per output
token. Ours runs backbone and encoder once per batch and only the small decoder per step.

Run:  .venv/bin/python benchmarks/bench_seq_decoding.py [--backbone resnet50] [--images 16] [--batch-size 16]
Prints images/s of both, their ratio, and checks that both give the same sequences.
"""
import argparse
import time

import torch

from backbonekit import create_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="resnet50")
    parser.add_argument("--image-size", type=int, default=256)
    parser.add_argument("--images", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = create_model("seqfakeformer", backbone=args.backbone).eval()
    images = torch.randn(args.images, 3, args.image_size, args.image_size)

    with torch.inference_mode():
        model.generate(images[:2])  # warm-up
        start = time.perf_counter()
        batched = torch.cat([model.generate(images[i:i + args.batch_size])
                             for i in range(0, len(images), args.batch_size)])
        t_batched = time.perf_counter() - start
        start = time.perf_counter()
        naive = torch.cat([model.generate_naive(images[i:i + 1]) for i in range(len(images))])
        t_naive = time.perf_counter() - start

    same = torch.equal(batched, naive)
    lengths = (naive > 0).sum(1).float().mean().item()
    print(f"seqfakeformer/{args.backbone} at {args.image_size}², {args.images} images, {args.threads} threads")
    print(f"  official (batch 1, whole model per step): {args.images / t_naive:8.2f} images/s")
    print(f"  ours (batch {args.batch_size}, encoder once):          {args.images / t_batched:8.2f} images/s")
    print(f"  ratio: {t_naive / t_batched:.2f}×   identical sequences: {same}   mean predicted length: {lengths:.2f}")
    if not same:
        raise SystemExit("batched and per-step decoding disagree")


if __name__ == "__main__":
    main()
