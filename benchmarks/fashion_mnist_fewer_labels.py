"""Learning from fewer labels on real data: Fashion-MNIST with 1,000 labelled training images (100 a class, seeded)
and the rest of the training split unlabelled (54,000: the 5,000 validation images are carved first), every row
scored on the official 10,000 test images, mean ± sd over seeds with the paired gain over labelled-only.

Rows (all the same student, optimiser, epochs and batch; each a real ``backbonekit`` command in this process):
  labelled only                      train classify --labels-per-class 100
  + teacher pseudo-labels            --unlabeled rest --semi pseudo-label --teacher <the labelled-only run>
  + FixMatch                         --unlabeled rest --semi fixmatch (τ 0.95, μ as --mu)
  Noisy Student, generations 0–2     train noisy-student (gen 0: labels only, with its noise)
  distilled from an all-label teacher --teacher <--kd-teacher>: the student alone is the labelled-only row

    python benchmarks/fashion_mnist_fewer_labels.py --kd-teacher runs/zoo/classify/resnet18-s0/best.ckpt
    python benchmarks/fashion_mnist_fewer_labels.py --seeds 0 --epochs 1 --out /tmp/few   # a smoke run

Results go to ``--out``/fewer_labels.json and .md after every run; a row already there is not run again.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

VAL_RATIO = 5000 / 60000
ROWS = {"labelled": "labelled only", "pseudo": "+ teacher pseudo-labels", "fixmatch": "+ FixMatch",
        "kd": "distilled (all-label teacher)", "ns": "Noisy Student"}


def common(args) -> list[str]:
    """What every row shares. The ImageNet stem at 28 px by default: 6× the small stem's images per CPU-second on
    this 2-core machine (370 vs 60 a core-second for ResNet-18), which is what makes 3 seeds of every row
    affordable; gains, not the absolute level, are the question here."""
    return ["--data", args.data, "--stem", args.stem, "--image-size", "28",
            "--normalize", "data", "--optimizer", "adamw", "--lr", "1e-3", "--weight-decay", "0.05",
            "--scheduler", "cosine", "--warmup-epochs", "1", "--epochs", str(args.epochs),
            "--batch-size", str(args.batch_size), "--val-ratio", f"{VAL_RATIO:.10f}",
            "--limit-val-batches", str(args.limit_val_batches), "--labels-per-class", str(args.labels_per_class),
            "--threads", str(args.threads), "--progress", "lines", "--out", str(args.out), "--exist-ok"]


def rows(args, seed: int) -> list[tuple[str, list[str], str]]:
    """(row, command, checkpoint or noisy-student folder) for one seed, in the order they must run."""
    out, s = Path(args.out), str(seed)
    base = out / "classify" / f"labelled-s{seed}" / "best.ckpt"
    one = ["train", "classify", "--model", args.model, *common(args)]
    semi = ["--unlabeled", "rest", "--mu", str(args.mu), "--lambda-u", "1"]
    plan = [("labelled only", [*one, "--seed", s, "--name", f"labelled-s{seed}"], base),
            ("+ teacher pseudo-labels", [*one, *semi, "--semi", "pseudo-label",
                                         "--threshold", "0.95", "--teacher", str(base), "--distill-alpha", "0",
                                         "--seed", s, "--name", f"pseudo-s{seed}"],
             out / "classify" / f"pseudo-s{seed}" / "best.ckpt"),
            ("+ FixMatch", [*one, *semi, "--semi", "fixmatch", "--threshold", "0.95",
                            "--seed", s, "--name", f"fixmatch-s{seed}"],
             out / "classify" / f"fixmatch-s{seed}" / "best.ckpt")]
    if args.kd_teacher:
        plan.append(("distilled (all-label teacher)", [*one, "--teacher",
                                                       args.kd_teacher, "--distill-temperature", "4",
                                                       "--distill-alpha", "0.9", "--seed", s,
                                                       "--name", f"kd-s{seed}"],
                     out / "classify" / f"kd-s{seed}" / "best.ckpt"))
    plan.append(("Noisy Student", ["train", "noisy-student", *common(args), "--unlabeled", "rest",
                                   "--teacher-model", args.model, "--students", f"{args.model},{args.model}",
                                   "--iterations", "2", "--threshold", "0.3", "--limit-train-batches",
                                   str(args.ns_batches), "--seed", s, "--name", f"ns-s{seed}"],
                 out / "noisy-student" / f"ns-s{seed}"))
    return plan


def test_top1(checkpoint: Path, data: str) -> float:
    from backbonekit.cli import main as backbonekit

    out = checkpoint.parent / "eval-test"
    # --data: a Noisy Student generation's folder has no run record of its own to find the data from
    if backbonekit(["eval", "classify", "--checkpoint", str(checkpoint), "--data", data, "--split", "test",
                    "--batch-size", "512", "--out", str(out)]):
        sys.exit(f"eval of {checkpoint} failed")
    return json.loads((out / "metrics.json").read_text())["top1"]


def run_row(name: str, command: list[str], result: Path, data: str) -> dict:
    from backbonekit.cli import main as backbonekit

    start = time.time()
    if backbonekit(command):  # recorded, not fatal: the other rows still run (the error line is in the log)
        return {"error": f"exit status of `backbonekit {' '.join(command)}`"}
    seconds = time.time() - start
    if result.suffix == ".ckpt":
        return {"test_top1": test_top1(result, data), "train_s": round(seconds, 1)}
    generations = sorted(p for p in result.glob("gen*") if (p / "best.ckpt").is_file())
    return {"generations": [test_top1(g / "best.ckpt", data) for g in generations], "train_s": round(seconds, 1)}


def table(report: dict) -> str:
    """Mean ± sd of test top-1 per row, and the mean ± sd of the per-seed gain over labelled-only (paired)."""
    scores: dict[str, dict[int, float]] = {}
    for r in report["runs"]:
        if "error" in r:
            continue
        if "generations" in r:
            for g, top1 in enumerate(r["generations"]):
                scores.setdefault(f"Noisy Student gen {g}", {})[r["seed"]] = top1
        else:
            scores.setdefault(r["row"], {})[r["seed"]] = r["test_top1"]
    base = scores.get("labelled only", {})
    lines = [f"Fashion-MNIST, {report['labels']} labels; test top-1 % on the official 10,000 images; "
             f"{report['device']}.",
             f"Command: `{report['command']}`", "",
             "| row | test top-1 % (mean ± sd) | gain vs labelled only (paired) | per seed |", "|---|---|---|---|"]
    for row, by_seed in scores.items():
        values = list(by_seed.values())
        sd = f" ± {statistics.stdev(values):.2f}" if len(values) > 1 else ""
        diffs = [v - base[s] for s, v in by_seed.items() if s in base]
        gain = "-" if row == "labelled only" or not diffs else f"{statistics.mean(diffs):+.2f}" + (
            f" ± {statistics.stdev(diffs):.2f}" if len(diffs) > 1 else "")
        per_seed = ", ".join(f"s{s} {v:.2f}" for s, v in sorted(by_seed.items()))
        lines.append(f"| {row} | {statistics.mean(values):.2f}{sd} | {gain} | {per_seed} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--model", default="resnet18")
    p.add_argument("--stem", default="imagenet", choices=("imagenet", "small"))
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--labels-per-class", type=int, default=100)
    p.add_argument("--mu", type=int, default=2, help="unlabelled images per labelled one in a FixMatch batch")
    p.add_argument("--ns-batches", type=int, default=80,
                   help="Noisy Student students' batches an epoch (of labelled + pseudo-labelled images): the "
                        "default matches a FixMatch epoch's image passes at μ 2 (16 steps × 64 × (1 + 2μ))")
    p.add_argument("--limit-val-batches", type=int, default=8)
    p.add_argument("--kd-teacher", help="a classifier trained on all the labels (checkpoint) to distil from")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--rows", default=",".join(ROWS),
                   help=f"comma-separated, of {', '.join(ROWS)} (labelled always runs: the others' baseline)")
    p.add_argument("--data", default="fashion-mnist")
    p.add_argument("--out", default="runs/fashion-mnist-fewer-labels")
    args = p.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "fewer_labels.json"
    report = json.loads(path.read_text()) if path.is_file() else {"runs": []}
    report.update(command=" ".join(["python", *sys.argv]), labels=args.labels_per_class * 10,
                  device=f"{cpu_name()}, torch {args.threads} thread(s)")
    unknown = set(args.rows.split(",")) - set(ROWS)
    if unknown:
        p.error(f"--rows: unknown {', '.join(sorted(unknown))}; the rows are {', '.join(ROWS)}")
    wanted = {ROWS[key] for key in ["labelled", *args.rows.split(",")] if key in ROWS}
    for seed in [int(s) for s in args.seeds.split(",")]:
        for name, command, result in [row for row in rows(args, seed) if row[0] in wanted]:
            if any(r["row"] == name and r["seed"] == seed and "error" not in r for r in report["runs"]):
                continue
            report["runs"] = [r for r in report["runs"] if not (r["row"] == name and r["seed"] == seed)]
            print(f"--- {name}, seed {seed}", flush=True)
            report["runs"].append({"row": name, "seed": seed, "command": " ".join(command),
                                   **run_row(name, command, result, args.data)})
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(report, indent=2))
            os.replace(tmp, path)
            (out / "fewer_labels.md").write_text(table(report))
    print(table(report), flush=True)
    return 0


def cpu_name() -> str:
    try:
        return next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        return "CPU"


if __name__ == "__main__":
    sys.exit(main())
