"""Data-efficient learning on the built-in real digits (1,797 scanned 8×8 digits, upscaled; 80/20 split by seed):
knowledge distillation, pseudo-labelling and FixMatch with 10% of the labels, Noisy Student generations.

Every row runs the real command (``backbonekit.cli.main``) in this process with fixed seeds; within a comparison each
row has the same epochs, batch size and optimiser, and a gain is the mean ± standard deviation of the per-seed
(paired: same split, same labelled subset) differences of best validation top-1.

    OMP_NUM_THREADS=2 python benchmarks/data_efficient.py            # every part, seeds 0,1,2: about an hour
    python benchmarks/data_efficient.py --parts b --seeds 0,1,2,3,4  # the README's 10%-label table: 68 min, 2 cores
    python benchmarks/data_efficient.py --seeds 0 --quick            # a smoke run of every row
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from backbonekit.cli import main

# Every setting the rows share, explicit: the README's figures were measured with these (no warm-up unless a row
# adds one), whatever the command's defaults become.
IMAGE = ["--data", "digits", "--optimizer", "adamw", "--lr", "1e-3", "--weight-decay", "0.05", "--warmup-epochs", "0",
         "--progress", "lines"]


def run(out: Path, name: str, *extra: str, command=("train", "classify"), size: int = 16) -> float:
    code = main([*command, *IMAGE, "--image-size", str(size), "--out", str(out), "--name", name, "--exist-ok", *extra])
    if code:
        sys.exit(f"{name}: exit {code}")
    if command[1] == "noisy-student":
        return json.loads((out / "noisy-student" / name / "metrics.json").read_text())["generations"]
    return json.loads((out / "classify" / name / "metrics.json").read_text())["best"]["val/top1"]


def summary(label: str, scores: list[float], base: list[float] | None, seconds: float) -> str:
    mean = statistics.mean(scores)
    spread = statistics.stdev(scores) if len(scores) > 1 else 0.0
    gain = ""
    if base is not None:
        diffs = [s - b for s, b in zip(scores, base)]
        d_spread = statistics.stdev(diffs) if len(diffs) > 1 else 0.0
        gain = f"{statistics.mean(diffs):+6.2f} ± {d_spread:4.2f}"  # scores are percent
    per_seed = " ".join(f"{s:.1f}" for s in scores)
    return f"{label:<44} {mean:6.2f} ± {spread:4.2f}   {gain:<15} {per_seed:<18} {seconds:6.0f}s"


def main_(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--quick", action="store_true", help="1 epoch a row: checks that every row runs")
    p.add_argument("--out", help="run folders (default: a temporary folder)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--parts", default="abc", help="which comparisons to run: a (distillation), b (10%% labels), "
                                                  "c (noisy student)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    seeds = [int(s) for s in args.seeds.split(",")]
    q = args.quick
    out = Path(args.out or tempfile.mkdtemp(prefix="data-efficient-"))
    lines = [f"{'row (best val top-1 %, digits)':<44} {'mean ± std':<15} {'gain vs base':<15} "
             f"{'per seed':<18} {'time':>7}"]
    t0 = time.time()

    if "a" in args.parts:
        distillation(out, seeds, q, lines)
    if "b" in args.parts:
        few_labels(out, seeds, q, lines)
    if "c" in args.parts:
        noisy_student(out, seeds, q, lines)
    print("\n" + "\n".join(lines) + f"\n\ntotal {time.time() - t0:.0f}s; runs in {out}", flush=True)


def distillation(out: Path, seeds: list[int], q: bool, lines: list[str]) -> None:
    # (a) Distillation: the teacher, ResNet-34 trained 6 epochs on all labels; ResNet-18 students get 2 epochs.
    start = time.time()
    teachers = {}
    for seed in seeds:
        run(out, f"kd-teacher-s{seed}", "--model", "resnet34", "--epochs", "1" if q else "6", "--batch-size", "32",
            "--warmup-epochs", "0.5", "--seed", str(seed))
        teachers[seed] = out / "classify" / f"kd-teacher-s{seed}" / "best.safetensors"
    teacher_scores = [json.loads((out / "classify" / f"kd-teacher-s{s}" / "metrics.json").read_text())["best"]
                      ["val/top1"] for s in seeds]
    lines.append(summary("(a) teacher resnet34, 6 epochs", teacher_scores, None, time.time() - start))
    student = ["--model", "resnet18", "--epochs", "1" if q else "2", "--batch-size", "32", "--warmup-epochs", "0.5"]
    start = time.time()
    alone = [run(out, f"kd-alone-s{s}", *student, "--seed", str(s)) for s in seeds]
    lines.append(summary("(a) student resnet18 alone, 2 epochs", alone, None, time.time() - start))
    start = time.time()
    distilled = [run(out, f"kd-student-s{s}", *student, "--seed", str(s), "--teacher", str(teachers[s]),
                     "--distill-temperature", "4", "--distill-alpha", "0.9") for s in seeds]
    lines.append(summary("(a) student resnet18 distilled (T 4, α 0.9)", distilled, alone, time.time() - start))
    print("\n".join(lines), flush=True)


def few_labels(out: Path, seeds: list[int], q: bool, lines: list[str]) -> None:
    # (b) 14 labels a class (140 images, ~10%): the rest of the training split is the unlabelled set. At 32² (at 16²
    # the labelled-only model is as good as the semi-supervised ones within the spread: 93.9 vs 94.2 ± 1.2).
    epochs = "1" if q else "30"
    few = ["--model", "resnet18", "--epochs", epochs, "--batch-size", "16", "--labels-per-class", "14"]
    semi = ["--unlabeled", "digits-rest", "--threshold", "0.95", "--mu", "3", "--lambda-u", "1"]
    start = time.time()
    base = [run(out, f"few-base-s{s}", *few, "--seed", str(s), size=32) for s in seeds]
    lines.append(summary(f"(b) 10% labels, labelled only, {epochs} ep, 32²", base, None, time.time() - start))
    print(lines[-1], flush=True)
    rows = [("pseudo-label", "online, ramp 0.4", []),
            ("pseudo-label", "teacher: the labelled-only run", ["--teacher"]),
            ("fixmatch", "", [])]
    for method, how, extra in rows:
        start = time.time()
        scores = []
        for s in seeds:
            # α 0: the labelled loss stays plain cross-entropy; the teacher only labels the unlabelled images.
            teacher = ["--teacher", str(out / "classify" / f"few-base-s{s}" / "best.safetensors"),
                       "--distill-alpha", "0"] if extra else []
            tag = f"{method}-teacher" if extra else method
            scores.append(run(out, f"few-{tag}-s{s}", *few, *semi, "--semi", method, *teacher, "--seed", str(s),
                              size=32))
        label = f"(b) 10% labels + {method}" + (f" ({how})" if how else " (μ 3, τ 0.95)")
        lines.append(summary(label, scores, base, time.time() - start))
        print(lines[-1], flush=True)


def noisy_student(out: Path, seeds: list[int], q: bool, lines: list[str]) -> None:
    # (c) Noisy Student on the same 10%: gen 0 trains on the labels, gens 1–2 add the teacher's pseudo-labels.
    start = time.time()
    runs = [run(out, f"ns-s{s}", "--teacher-model", "resnet18", "--students", "resnet18,resnet18", "--iterations",
                "2", "--labels-per-class", "14", "--unlabeled", "digits-rest", "--epochs", "1" if q else "6",
                "--batch-size", "32", "--threshold", "0.0" if q else "0.3", "--seed", str(s),
                command=("train", "noisy-student")) for s in seeds]
    seconds = time.time() - start
    by_gen = [[r[g]["val_top1"] for r in runs] for g in range(len(runs[0]))]
    for g, scores in enumerate(by_gen):
        role = "teacher, labels only" if g == 0 else "student"
        label = f"(c) noisy student gen {g} ({role})"
        lines.append(summary(label, scores, by_gen[g - 1] if g else None, seconds if g == len(by_gen) - 1 else 0))
        accs = [r[g]["pseudo_acc"] for r in runs if isinstance(r[g]["pseudo_acc"], float)]
        if accs:
            used = statistics.mean(r[g]["pseudo_labelled"] for r in runs)
            lines[-1] += f"  pseudo-labels {used:.0f} @ {statistics.mean(accs):.1f}%"
    print("\n".join(lines[-len(by_gen):]), flush=True)


if __name__ == "__main__":
    main_()
