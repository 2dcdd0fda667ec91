"""Ours against timm on a CUDA GPU: inference (eager fp32; channels-last + bf16 autocast; the same compiled) and
train steps with timm's own train settings (SGD-Nesterov momentum 0.9, AMP fp16 with a grad scaler,
channels-last), ResNet-50 and EfficientNet-B0 at 224².

Both models compute the same function: timm's random weights are loaded into ours and the outputs compared first
(max |Δ| over max |output|). Rounds alternate ours and timm (which goes first alternates too), each round timed
between two CUDA synchronisations; medians and [slowest–fastest] of the images/s are printed, and every figure is
appended to a JSON file as it is measured, so a run stopped by its time limit keeps what it had.

    python benchmarks/bench_cuda.py --out bench_cuda.json              # on a GPU machine
    python benchmarks/bench_cuda.py --device cpu --batch-size 2 --image-size 64 --iters 1   # a dry run
"""
from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from backbonekit.models.registry import create_model  # noqa: E402
from backbonekit.tools.bench import _matching_regularisation, build_peer  # noqa: E402

MODELS = ("resnet50", "efficientnet_b0")


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def inference_step(model, x, amp: bool):
    model.eval()

    def step():
        with torch.inference_mode(), torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=amp):
            model(x)
    return step


def train_step(model, x, amp: bool):
    """timm train.py's defaults: SGD with Nesterov momentum 0.9, weight decay 2e-5, AMP float16 + GradScaler."""
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=2e-5)
    scaler = torch.amp.GradScaler(x.device.type, enabled=amp and x.device.type == "cuda")
    target = torch.randint(0, 1000, (x.shape[0],), device=x.device)

    def step():
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(x.device.type, dtype=torch.float16 if x.device.type == "cuda" else torch.bfloat16,
                            enabled=amp):
            loss = F.cross_entropy(model(x), target)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
    return step


def alternate(steps: dict, batch: int, rounds: int, iters: int, warmup: int, device) -> dict[str, list[float]]:
    for step in steps.values():
        for _ in range(warmup):
            step()
    sync(device)
    rates = {who: [] for who in steps}
    for r in range(rounds):
        for who in (list(steps) if r % 2 == 0 else list(steps)[::-1]):
            sync(device)
            start = time.perf_counter()
            for _ in range(iters):
                steps[who]()
            sync(device)
            rates[who].append(batch * iters / (time.perf_counter() - start))
    return rates


def relative_difference(ours, peer, x) -> float:
    with torch.inference_mode():
        a, b = ours.eval()(x[:4]).float(), peer.eval()(x[:4]).float()
    return ((a - b).abs().max() / b.abs().max().clamp_min(1e-30)).item()


def pair(name: str, device, channels_last: bool):
    peer = build_peer(name, "timm")
    ours = create_model(name, pretrained=peer.state_dict(), **_matching_regularisation(peer))
    ours, peer = ours.to(device), peer.to(device)
    if channels_last:
        ours, peer = ours.to(memory_format=torch.channels_last), peer.to(memory_format=torch.channels_last)
    return ours, peer


def run(args) -> list[dict]:
    device = torch.device(args.device)
    torch.backends.cudnn.benchmark = True
    results = []
    modes = [("inference", "eager fp32", False, False, False), ("inference", "channels-last + bf16", True, True, False),
             ("train", "channels-last + AMP fp16 (timm train)", True, True, False)]
    if args.compile:
        modes += [("inference", "channels-last + bf16 + compile", True, True, True),
                  ("train", "channels-last + AMP fp16 + compile", True, True, True)]
    for kind, label, channels_last, amp, compiled in modes:
        for name in MODELS:
            if time.perf_counter() - START > args.budget_s:
                print(f"stopped: over the {args.budget_s} s budget", flush=True)
                return results
            ours, peer = pair(name, device, channels_last)
            x = torch.randn(args.batch_size, 3, args.image_size, args.image_size, device=device)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            diff = relative_difference(ours, peer, x)
            if compiled:
                ours, peer = torch.compile(ours), torch.compile(peer)
            make = inference_step if kind == "inference" else train_step
            t0 = time.perf_counter()
            rates = alternate({"ours": make(ours, x, amp), "timm": make(peer, x, amp)}, args.batch_size,
                              args.rounds, args.iters, args.warmup, device)
            row = {"model": name, "kind": kind, "mode": label, "batch": args.batch_size, "size": args.image_size,
                   "output_rel_diff_fp32": diff, "seconds": round(time.perf_counter() - t0, 1),
                   **{f"{who}_median": statistics.median(v) for who, v in rates.items()},
                   **{f"{who}_range": [min(v), max(v)] for who, v in rates.items()},
                   "ratio_median": statistics.median(rates["ours"]) / statistics.median(rates["timm"]),
                   "ratio_per_round": [o / t for o, t in zip(rates["ours"], rates["timm"])]}
            results.append(row)
            r = row["ratio_per_round"]
            print(f"{name:16s} {kind:9s} {label:40s} ours {row['ours_median']:8.0f} img/s "
                  f"[{min(rates['ours']):.0f}–{max(rates['ours']):.0f}]  timm {row['timm_median']:8.0f} "
                  f"[{min(rates['timm']):.0f}–{max(rates['timm']):.0f}]  ours/timm {row['ratio_median']:.3f} "
                  f"({min(r):.3f}–{max(r):.3f})  Δ {diff:.1e}  {row['seconds']} s", flush=True)
            if args.out:
                Path(args.out).write_text(json.dumps({"device": device_name(device), "torch": torch.__version__,
                                                      "results": results}, indent=1))
            del ours, peer, x
            if device.type == "cuda":
                torch.cuda.empty_cache()
    return results


def device_name(device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"


START = time.perf_counter()

if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--image-size", type=int, default=224)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--iters", type=int, default=10)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--compile", action="store_true", help="also the compiled rows (minutes of compiling)")
    p.add_argument("--budget-s", type=float, default=1e9, help="start no new row after this many seconds")
    p.add_argument("--out", help="JSON file, rewritten after every row")
    args = p.parse_args()
    print(f"{device_name(torch.device(args.device))}, torch {torch.__version__}", flush=True)
    run(args)
