"""Our ResNet-50 and EfficientNet-B0 against torchvision's and timm's: inference and train step, fp32, 2 threads.

Run:  .venv/bin/python benchmarks/bench_backbones.py [--rounds 7]
Prints images/s (median over alternating rounds, same process) and the ratio ours/peer; ``fused`` is our
inference with BatchNorm folded into the convolutions (``backbonekit.nn.fuse.fuse_batchnorm``).
"""
import argparse

from backbonekit.tools.bench import render, run_bench

CASES = [
    dict(name="resnet50", vs="torchvision"),
    dict(name="efficientnet_b0", vs="timm"),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    results = []
    for case in CASES:
        common = dict(batch_size=args.batch_size, threads=args.threads, rounds=args.rounds)
        results.append(run_bench(**case, **common))
        results.append(run_bench(**case, fuse=True, **common))
        results.append(run_bench(**case, train=True, **common))
        render(results[-3:])
    print("\nall:")
    render(results)


if __name__ == "__main__":
    main()
