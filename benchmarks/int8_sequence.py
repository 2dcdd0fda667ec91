"""SeqFakeFormer int8: the backbone alone (the transformer float, ``quantize``'s default) against everything int8
(``--scope all``): Fixed-Acc on the run's validation split and images/s, per runtime (issue 32, item 5).

The model: SeqFakeFormer with a ResNet-18 backbone trained here on synthetic SeqDeepFake (``data synth seqdeepfake``;
no real SeqDeepFake on this machine), so its Fixed-Acc says what int8 does to this model's decisions, not what it
does on real faces. Each int8 file is scored by the gate itself (``training/int8.py``) with no limit, so every figure
is recorded; a drop over 1.0 point would have been refused by the default gate.

Run:  taskset -c 1 env OMP_NUM_THREADS=1 .venv/bin/python benchmarks/int8_sequence.py [--images 400] [--epochs 4]
          [--out benchmarks/results/int8_sequence_1t]
"""
import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from backbonekit.cli import main as cli
from backbonekit.io.onnx_export import OnnxRunner
from backbonekit.io.openvino_runtime import OpenVinoRunner
from backbonekit.sequence.synth import synthesize_seqdeepfake
from backbonekit.training.inference import load_for_inference
from backbonekit.training.int8 import Int8Options, int8_file, quantize_checkpoint
from backbonekit.tasks import all_tasks


def train(root: Path, images: int, epochs: int, size: int) -> Path:
    synthesize_seqdeepfake(root / "data", "facial_components", num_images=images, seed=0, image_size=size)
    assert cli(["train", "sequence", "--data", str(root / "data"), "--backbone", "resnet18", "--image-size", str(size),
                "--epochs", str(epochs), "--batch-size", "16", "--progress", "lines", "--out", str(root / "runs"),
                "--name", "t"]) == 0
    return root / "runs" / "sequence" / "t" / "best.ckpt"


def timed(files: dict, size: int, rounds: int = 5, iters: int = 5) -> dict:
    """images/s at batch 1 of each (name → runner), alternating in rounds."""
    x = torch.randint(0, 256, (1, 3, size, size), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    for run in files.values():
        run(x)
    rates = {name: [] for name in files}
    for _ in range(rounds):
        for name, run in files.items():
            time.sleep(0.2)
            start = time.perf_counter()
            for _ in range(iters):
                run(x)
            rates[name].append(iters / (time.perf_counter() - start))
    return {name: {"median": statistics.median(r), "slowest": min(r), "fastest": max(r)} for name, r in rates.items()}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=400)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--out", default="benchmarks/results/int8_sequence_1t")
    args = parser.parse_args()
    spec = all_tasks()["sequence"]
    result = {"threads": torch.get_num_threads(), "images": args.images, "epochs": args.epochs,
              "image_size": args.image_size, "runtimes": {}}
    with tempfile.TemporaryDirectory() as folder:
        checkpoint = train(Path(folder), args.images, args.epochs, args.image_size)
        load_for_inference(checkpoint, spec, runtime="onnxruntime")  # its fp32 file beside it, timed below too
        for runtime in ("onnxruntime", "openvino"):
            entries, files = {}, {}
            for scope in ("backbone", "all"):
                options = Int8Options(runtime=runtime, max_drop=100.0, keep_float="none", scope=scope)
                entries[scope] = quantize_checkpoint(checkpoint, spec, options)
                files[scope] = shutil.copy(int8_file(checkpoint, runtime), Path(folder) / f"{scope}-{runtime}.onnx")
            runner = OnnxRunner if runtime == "onnxruntime" else OpenVinoRunner
            runners = {"fp32": runner(checkpoint.with_suffix(".onnx")),
                       **{f"int8 {scope}": runner(path) for scope, path in files.items()}}
            result["runtimes"][runtime] = {"gate": entries, "images_per_s": timed(runners, args.image_size)}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(json.dumps(result, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
