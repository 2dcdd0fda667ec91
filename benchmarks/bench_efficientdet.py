"""Our EfficientDet-D0 against effdet's tf_efficientdet_d0: predict (network, decoding, NMS), batch 1, 512², fp32.

Run:  .venv/bin/python benchmarks/bench_efficientdet.py [--rounds 7] [--channels-last]
Prints images/s (best and median over alternating rounds, same process) and the ratio ours/peer, for our model as
loaded from effdet's weights and ``fused`` (BatchNorm folded into the convolutions, ``backbonekit.nn.fuse``).
Both run image → 100 detections (effdet's ``DetBenchPredict``); max|diff| compares the detections, matched per class,
box corners in pixels and scores. ``--channels-last`` puts both models and the input in channels-last.
"""
import argparse

from backbonekit.tools.bench import render, run_bench


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--iters", type=int, default=3)
    parser.add_argument("--image-size", type=int, default=512)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--channels-last", action="store_true")
    args = parser.parse_args()
    common = dict(vs="effdet", batch_size=1, image_size=args.image_size, threads=args.threads, rounds=args.rounds,
                  iters=args.iters, channels_last=args.channels_last)
    results = [run_bench("efficientdet_d0", **common), run_bench("efficientdet_d0", fuse=True, **common)]
    render(results)


if __name__ == "__main__":
    main()
