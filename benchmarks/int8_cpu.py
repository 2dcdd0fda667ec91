"""int8 on the CPU: speed of every precision against the peers, one process, alternating rounds (issue 32).

Speed (``bench --runtimes``'s own functions): ResNet-50 against torchvision and EfficientNet-B0 against timm at batch
1, 224², random weights (the peer's, loaded into ours), each on torch eager, onnxruntime/OpenVINO fp32, OpenVINO bf16
and onnxruntime/OpenVINO int8 (calibrated on random images: a speed figure), the peer exported and quantised the
same way beside ours; EfficientDet-D0 from image to detections against effdet eager (heads and NMS float in int8).
EfficientNet-B0 is also timed with the layer types the accuracy measurement kept float (``--keep-float``), which is
its gated path.

Accuracy is the gate's (``backbonekit quantize`` on trained runs, its printed figures): see docs/int8.md.

Run:  taskset -c 1 env OMP_NUM_THREADS=1 .venv/bin/python benchmarks/int8_cpu.py [--rounds 5] [--iters 3]
          [--keep-float se] [--out benchmarks/results/int8_cpu_1t]
"""
import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from backbonekit.tools.runtime_bench import (
    alternate, prepare, ratios, run_detector_runtime_bench, run_runtime_bench,
)

CLASSIFIER_RUNTIMES = ["torch", "onnxruntime", "openvino", "openvino-bf16", "onnxruntime-int8", "openvino-int8"]
DETECTOR_RUNTIMES = ["torch", "onnxruntime", "openvino", "openvino-bf16", "onnxruntime-int8", "openvino-int8"]


def cpu_flags() -> list[str]:
    text = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    flags = next((line.split(":")[1].split() for line in text.splitlines() if line.startswith("flags")), [])
    return sorted(f for f in flags if f.startswith(("avx512_vnni", "avx512_bf16", "amx", "avx_vnni", "avx2")))


def keep_float_rows(name: str, kept: list[str], rounds: int, iters: int) -> list[dict]:
    """Our ``name`` at 224² in int8 with the layer types ``kept`` float, on both int8 runtimes, timed against eager
    timm in alternating rounds."""
    import onnx

    from backbonekit.io.quantize import float_nodes, quantize_onnx
    from backbonekit.models.registry import create_model
    from backbonekit.tools.bench import build_peer

    peer = build_peer(name, "timm").eval()
    ours = create_model(name, pretrained=peer.state_dict()).eval()
    x = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    calibration = torch.randn(32, 3, 224, 224, generator=torch.Generator().manual_seed(1)).numpy()
    with tempfile.TemporaryDirectory() as folder, torch.inference_mode():
        fp32 = Path(folder) / "ours.onnx"
        prepare(ours, "onnxruntime", x, fp32)
        steps = {("torch", "timm"): peer}
        for runtime in ("onnxruntime", "openvino"):
            out = Path(folder) / f"kept-{runtime}.onnx"
            names, _ = float_nodes(onnx.load(str(fp32)), ("",), kept)
            quantize_onnx(fp32, out, runtime, calibration, names, {})
            steps[(f"{runtime}-int8 ({'+'.join(kept)} float)", "ours")] = prepare(ours, runtime, x, out)
        rates = alternate(steps, x, rounds, iters, 2)
    eager = statistics.median(rates[("torch", "timm")])
    return [{"runtime": k[0], "who": k[1], "median": statistics.median(r), "fastest": max(r), "slowest": min(r),
             "vs_peer_eager": statistics.median(r) / eager} for k, r in rates.items()]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--iters", type=int, default=3)
    parser.add_argument("--detector-rounds", type=int, default=3)
    parser.add_argument("--keep-float", default="", help="EfficientNet-B0's gated keep-float types (comma-separated)")
    parser.add_argument("--out", default="benchmarks/results/int8_cpu_1t")
    args = parser.parse_args()
    result = {"device": platform.processor() or platform.machine(), "threads": torch.get_num_threads(),
              "cpu_flags": cpu_flags(), "batch": 1, "rounds": args.rounds, "iters": args.iters, "models": {}}
    for name, peer in (("resnet50", "torchvision"), ("efficientnet_b0", "timm")):
        started = time.perf_counter()
        rows = run_runtime_bench(name, CLASSIFIER_RUNTIMES, peer, 1, 224, args.rounds, args.iters,
                                 progress=lambda text: print(f"{name}: {text}", file=sys.stderr, flush=True))
        result["models"][name] = {"peer": peer, "image_size": 224, "rows": [r.as_dict() for r in rows],
                                  "ratios": ratios(rows, peer), "seconds": round(time.perf_counter() - started)}
    kept = [t for t in args.keep_float.split(",") if t]
    if kept:
        result["models"]["efficientnet_b0"]["kept_float"] = {
            "types": kept, "rows": keep_float_rows("efficientnet_b0", kept, args.rounds, args.iters)}
    started = time.perf_counter()
    rows = run_detector_runtime_bench("efficientdet_d0", DETECTOR_RUNTIMES, 1, 512, args.detector_rounds, 1, 1,
                                      progress=lambda text: print(f"d0: {text}", file=sys.stderr, flush=True))
    result["models"]["efficientdet_d0"] = {"peer": "effdet", "image_size": 512, "rows": [r.as_dict() for r in rows],
                                           "ratios": ratios(rows, "effdet"),
                                           "seconds": round(time.perf_counter() - started)}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    out.with_suffix(".md").write_text(markdown(result))
    print(markdown(result))
    return 0


def markdown(result: dict) -> str:
    lines = [f"# int8 on the CPU ({result['device']}, {result['threads']} thread(s), batch {result['batch']}; flags: "
             f"{', '.join(result['cpu_flags'])})", "",
             "images/s, median [slowest–fastest] of alternating rounds; × = over the peer eager in the same run.",
             ""]
    for name, model in result["models"].items():
        lines += [f"## {name} ({model['image_size']}², peer {model['peer']})", "",
                  "| runtime | ours | peer | ours × peer eager | ours × peer same runtime | MB (ours) |",
                  "|---|---|---|---|---|---|"]
        rows = {(r["runtime"], r["who"]): r for r in model["rows"]}
        for runtime, ratio in model["ratios"].items():
            ours, theirs = rows[(runtime, "ours")], rows.get((runtime, model["peer"]))
            same = ratio["vs_peer_same_runtime"]
            lines.append(f"| {runtime} | {_rate(ours)} | {_rate(theirs) if theirs else ''} | "
                         f"{ratio['vs_peer_eager']:.2f}× | {f'{same:.2f}×' if same else ''} | "
                         f"{ours['size_mb']:.1f} |" if ours.get("size_mb") is not None else
                         f"| {runtime} | {_rate(ours)} | {_rate(theirs) if theirs else ''} | "
                         f"{ratio['vs_peer_eager']:.2f}× | {f'{same:.2f}×' if same else ''} | |")
        if "kept_float" in model:
            lines += ["", f"With {', '.join(model['kept_float']['types'])} float (the gated path):", ""]
            lines += [f"- {r['runtime']} ({r['who']}): {_rate(r)} images/s, {r['vs_peer_eager']:.2f}× eager"
                      for r in model["kept_float"]["rows"]]
        lines.append("")
    return "\n".join(lines) + "\n"


def _rate(row: dict) -> str:
    return f"{row['median']:.1f} [{row['slowest']:.1f}–{row['fastest']:.1f}]"


if __name__ == "__main__":
    sys.exit(main())
