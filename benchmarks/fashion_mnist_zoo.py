"""Fashion-MNIST zoo: every survey family trained under one recipe, scored on the official 10,000 test images, beside
the published row of the data set's own benchmark table.

Each (model, seed) is one real ``backbonekit train classify`` in a child process (so a time budget can stop it the
way Ctrl+C does: SIGTERM, the current batch finished, ``last.ckpt`` written), then ``eval classify --split test`` of
its best checkpoint (chosen on validation, never on test) in this process. Results are written after every run
(``zoo.json``, ``zoo.md``, ``zoo.png`` in --out), and a run already in ``zoo.json`` is not trained again: a killed
zoo keeps what it measured and continues where it stopped.

    python benchmarks/fashion_mnist_zoo.py --models resnet18,alexnet --epochs 1 --limit-train 2000 --out /tmp/zoo
    python benchmarks/fashion_mnist_zoo.py --epochs 30 --seeds 0,1,2 --time-budget-min 60 --out runs/zoo

The data: ``--data fashion-mnist`` ($BACKBONEKIT_DATA/fashion-mnist, else the Debian package dataset-fashion-mnist).
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

MODELS = ("resnet18", "resnet50", "seresnet18", "efficientnet_b0", "efficientnet_lite0", "alexnet", "vgg16",
          "googlenet", "densenet121")

# The one recipe every family trains under (the flags after --model). Small stem at the native 28 px; the usual
# Fashion-MNIST augmentation (pad 4 and crop, horizontal flip, random erasing p 0.5 as Zhong et al.'s WRN row) and
# the data's own mean/std; the command's own optimiser defaults, spelled out: AdamW 1e-3, weight decay 0.05, a
# 1-epoch warm-up and cosine decay (they converged on every README example, where SGD at 0.1 without warm-up
# diverged: classification/commands.py). Not tuned per family: one recipe is what makes the rows comparable.
RECIPE = ["--stem", "small", "--image-size", "28", "--crop-padding", "4", "--random-erasing", "0.5",
          "--normalize", "data", "--optimizer", "adamw", "--lr", "1e-3", "--weight-decay", "0.05",
          "--scheduler", "cosine", "--warmup-epochs", "1"]
VAL_RATIO = 5000 / 60000  # 5,000 validation images carved from the 60,000 (stratified): 55,000 train

# The authors' README benchmark table (Zalando's Fashion-MNIST README, section "Benchmark"; Debian package
# dataset-fashion-mnist, /usr/share/doc/dataset-fashion-mnist/README.md.gz). Submitted results, not verified by the
# authors. Families without a row of their own are set beside the nearest one, and say so.
PUBLISHED = {
    "resnet18": ("ResNet18 (normalization, flips, translation, rotation)", 94.9, "same"),
    "resnet50": ("ResNet18 (normalization, flips, translation, rotation)", 94.9, "nearest: no ResNet-50 row"),
    "seresnet18": ("ResNet18 (normalization, flips, translation, rotation)", 94.9, "nearest: no SE-ResNet row"),
    "efficientnet_b0": ("MobileNet (horizontal flips)", 95.0, "nearest: MBConv is MobileNet's block"),
    "efficientnet_lite0": ("MobileNet (horizontal flips)", 95.0, "nearest: MBConv is MobileNet's block"),
    "alexnet": ("AlexNet with triplet loss (none)", 89.9, "same family, other loss"),
    "vgg16": ("VGG16, 26M parameters (none)", 93.5, "same depth, other head"),
    "googlenet": ("GoogleNet with cross-entropy loss (none)", 93.7, "same"),
    "densenet121": ("DenseNet-BC, 768K parameters (crops, flips)", 95.4, "same family, other depth/width"),
}
GRACE_S = 120  # after the budget's SIGTERM: time to finish the batch and write last.ckpt before SIGKILL


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default=",".join(MODELS), help="comma-separated registered classifiers")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--seeds", default="0", help="comma-separated; mean ± sd over them")
    p.add_argument("--time-budget-min", type=float, default=None,
                   help="wall time a run's training process may take (start-up and data included); past it the run "
                        "stops as after Ctrl+C and its best checkpoint so far is scored (the row says so)")
    p.add_argument("--limit-train", type=int, default=None, metavar="N",
                   help="train on N images (N/10 a class, seeded) for a quick try; validation and test stay whole")
    p.add_argument("--equal-time-min", type=float, default=None, metavar="M",
                   help="give every model M minutes of one core's CPU time: its training speed is measured first "
                        "(8 steps, CPU-seconds of this process, so a shared machine does not bias it) and each of "
                        "--epochs trains on the batches that fit (Lightning's limit_train_batches; a fresh random "
                        "draw of the 55,000 every epoch); the schedule ends where the budget does")
    p.add_argument("--limit-train-batches", type=int, default=None, metavar="N",
                   help="N batches an epoch for every model (equal images seen: the --equal-time-min rows' peer)")
    p.add_argument("--limit-val-batches", type=int, default=None, metavar="N",
                   help="validate on N batches of the 5,000 (the best epoch is still chosen on validation)")
    p.add_argument("--warmup-epochs", type=float, default=1.0)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--workers", type=int, default=None, help="DataLoader workers (default: 6 with a GPU, else 0)")
    p.add_argument("--threads", type=int, default=None, help="torch threads of each run (default: torch's)")
    p.add_argument("--precision", default=None,
                   help="train's --precision (bf16-mixed: 1.7-1.8x the images/s of fp32 for ResNet-18 at 28 px on "
                        "this avx512_bf16 CPU); part of the recipe in the table; test is scored in fp32")
    p.add_argument("--data", default="fashion-mnist")
    p.add_argument("--out", default="runs/fashion-mnist-zoo")
    args = p.parse_args(argv)

    import torch

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    report_path = out / "zoo.json"
    report = json.loads(report_path.read_text()) if report_path.is_file() else {"runs": []}
    report.update(command=" ".join([Path(sys.executable).name, *sys.argv]), recipe=recipe(args), val_ratio=VAL_RATIO,
                  epochs=args.epochs, batch_size=args.batch_size, limit_train=args.limit_train, device=device_name(),
                  settings_data=args.data,
                  published_source="Fashion-MNIST README benchmark table (dataset-fashion-mnist)")
    workers = args.workers if args.workers is not None else (6 if torch.cuda.is_available() else 0)
    for model in [m.strip() for m in args.models.split(",") if m.strip()]:
        for seed in [int(s) for s in args.seeds.split(",")]:
            if any(r["model"] == model and r["seed"] == seed and r.get("settings") == settings(args)
                   for r in report["runs"] if "test_top1" in r):
                print(f"{model} seed {seed}: in {report_path} already", flush=True)
                continue
            row = run_one(model, seed, args, workers, out)
            report["runs"] = [r for r in report["runs"] if not (r["model"] == model and r["seed"] == seed)] + [row]
            write_report(report, out)
    write_report(report, out)
    print((out / "zoo.md").read_text(), flush=True)
    return 0


def settings(args) -> dict:
    """What makes two runs of a model comparable: a stored run with other settings is trained again."""
    return {"epochs": args.epochs, "limit_train": args.limit_train, "batch_size": args.batch_size,
            "recipe": recipe(args), "time_budget_min": args.time_budget_min, "data": args.data,
            "equal_time_min": args.equal_time_min, "limit_train_batches": args.limit_train_batches,
            "limit_val_batches": args.limit_val_batches}


def recipe(args) -> list[str]:
    """RECIPE with this invocation's warm-up (shorter when --equal-time-min cuts epochs to a few batches)."""
    at = RECIPE.index("--warmup-epochs") + 1
    precision = ["--precision", args.precision] if args.precision else []
    return [*RECIPE[:at], f"{args.warmup_epochs:g}", *RECIPE[at + 1:], *precision]


def batches_in_budget(model: str, args) -> tuple[int, float]:
    """--equal-time-min: the batches an epoch that make --epochs epochs last M minutes of one core's CPU time."""
    from fashion_mnist_speed import training_speed

    _, per_cpu_s = training_speed(model, batch_size=args.batch_size, steps=8, threads=args.threads or 1)
    per_core_s = per_cpu_s / (args.threads or 1)
    total = args.equal_time_min * 60 * per_core_s / args.batch_size
    return max(1, int(total // args.epochs)), per_core_s


def run_one(model: str, seed: int, args, workers: int, out: Path) -> dict:
    """Train one model in a child process (bounded by the budget), score its best checkpoint on the test split."""
    name = f"{model}-s{seed}"
    run = out / "classify" / name
    command = [sys.executable, "-m", "backbonekit", "train", "classify", "--data", args.data, "--model", model,
               *recipe(args), "--epochs", str(args.epochs), "--batch-size", str(args.batch_size), "--val-ratio",
               f"{VAL_RATIO:.10f}", "--seed", str(seed), "--workers", str(workers), "--out", str(out), "--name", name,
               "--exist-ok", "--progress", "lines"]
    if args.limit_train:
        command += ["--labels-per-class", str(max(1, args.limit_train // 10))]
    if args.threads:
        command += ["--threads", str(args.threads)]
    row = {"model": model, "seed": seed, "settings": settings(args)}
    batches = args.limit_train_batches
    if args.equal_time_min:
        batches, row["measured_images_per_core_s"] = batches_in_budget(model, args)
    if batches:
        command += ["--limit-train-batches", str(batches)]
        row["train_batches_per_epoch"] = batches
    if args.limit_val_batches:
        command += ["--limit-val-batches", str(args.limit_val_batches)]
    row["command"] = " ".join(command[2:])
    log = out / "logs" / f"{name}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    print(f"{name}: training (log {log})", flush=True)
    start = time.time()
    with open(log, "w") as f:
        child = subprocess.Popen(command, stdout=f, stderr=subprocess.STDOUT)
        budget = args.time_budget_min * 60 if args.time_budget_min else None
        try:
            child.wait(timeout=budget)
        except subprocess.TimeoutExpired:
            row["stopped_by_budget"] = True
            child.send_signal(signal.SIGTERM)  # as Ctrl+C: the batch finishes, last.ckpt is written
            try:
                child.wait(timeout=GRACE_S)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
    row["wall_s"] = round(time.time() - start, 1)
    row["exit_code"] = child.returncode
    row.update(epoch_record(run, row.get("train_batches_per_epoch"), args.batch_size))
    best = run / "best.ckpt"
    if not best.is_file():
        row["error"] = f"no best.ckpt (exit {child.returncode}; see {log})"
        print(f"{name}: {row['error']}", flush=True)
        return row
    row.update(score_test(best, args.batch_size, workers))
    row["params"] = count_params(model)
    print(f"{name}: test top-1 {row['test_top1']:.2f}% after {row['epochs_done']} epochs, "
          f"{row['train_s'] / 60:.1f} min of epochs", flush=True)
    return row


def epoch_record(run: Path, batches: int | None, batch_size: int) -> dict:
    """Epochs done, the seconds they took, best validation top-1, and training images per second of those epochs
    (validation included: on a --limit-train try it dominates, on the full 55,000 it is a tenth of the images)."""
    path = run / "results.csv"
    rows = list(csv.DictReader(path.open())) if path.is_file() else []
    seconds = sum(float(r["seconds"]) for r in rows)
    record = {"epochs_done": len(rows), "train_s": round(seconds, 1),
              "best_val_top1": max((float(r["val/top1"]) for r in rows), default=None)}
    hparams = run / "hparams.yaml"
    if hparams.is_file() and rows:
        import yaml

        data = yaml.safe_load(hparams.read_text())["data"]
        train_images = data["train"]
        record.update(train_images=train_images, val_images=data["val"])
        per_epoch = min(train_images, batches * batch_size) if batches else train_images
        record["images_seen"] = per_epoch * len(rows)
        record["images_per_s"] = round(per_epoch * len(rows) / seconds, 1) if seconds else None
    return record


def score_test(checkpoint: Path, batch_size: int, workers: int) -> dict:
    from backbonekit.cli import main as backbonekit

    out = checkpoint.parent / "eval-test"
    start = time.time()
    code = backbonekit(["eval", "classify", "--checkpoint", str(checkpoint), "--split", "test", "--batch-size",
                        str(max(batch_size, 256)), "--workers", str(workers), "--out", str(out)])
    if code:
        return {"error": f"eval exit {code}"}
    result = json.loads((out / "metrics.json").read_text())
    return {"test_top1": result["top1"], "test_images": result["images"], "test_split": result["split"],
            "eval_s": round(time.time() - start, 1), "per_class_test": result["per_class"]}


def count_params(model: str) -> int:
    from backbonekit.models.registry import create_model

    return sum(p.numel() for p in create_model(model, num_classes=10, stem="small").parameters())


def device_name() -> str:
    import torch

    if torch.cuda.is_available():
        return f"{torch.cuda.get_device_name(0)} (CUDA {torch.version.cuda})"
    cpu = platform.processor() or "CPU"
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{cpu}, {os.cpu_count()} cores, torch {torch.get_num_threads()} threads"


# ------------------------------------------------------------------------------------------------ the report

def aggregate(runs: list[dict]) -> list[dict]:
    """One row per model: mean ± sd of test top-1 over its seeds, beside its published row."""
    rows = []
    for model in dict.fromkeys(r["model"] for r in runs):
        done = [r for r in runs if r["model"] == model and "test_top1" in r]
        failed = [r for r in runs if r["model"] == model and "test_top1" not in r]
        published = PUBLISHED.get(model)
        if not done:
            rows.append({"model": model, "error": "; ".join(r.get("error", "?") for r in failed)})
            continue
        scores = [r["test_top1"] for r in done]
        rows.append({
            "model": model, "seeds": [r["seed"] for r in done], "test_top1": scores,
            "mean": statistics.mean(scores), "sd": statistics.stdev(scores) if len(scores) > 1 else None,
            "params": done[0]["params"], "epochs": [r["epochs_done"] for r in done],
            "train_min": statistics.mean(r["train_s"] for r in done) / 60,
            "images_seen": statistics.mean(r.get("images_seen") or 0 for r in done),
            "images_per_s": statistics.mean(r["images_per_s"] for r in done if r.get("images_per_s")) if any(
                r.get("images_per_s") for r in done) else None,
            "stopped_by_budget": sum(bool(r.get("stopped_by_budget")) for r in done),
            "published": published[1] if published else None, "published_row": published[0] if published else None,
            "published_relation": published[2] if published else None,
        })
    return rows


def write_report(report: dict, out: Path) -> None:
    report["rows"] = aggregate(report["runs"])
    report["written"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    tmp = out / "zoo.json.tmp"
    tmp.write_text(json.dumps(report, indent=2))
    os.replace(tmp, out / "zoo.json")
    (out / "zoo.md").write_text(markdown(report))
    if any("mean" in r for r in report["rows"]):
        plot(report["rows"], out / "zoo.png", report["device"])


def markdown(report: dict) -> str:
    done = [r for r in report["runs"] if "test_top1" in r]
    counts = {key: sorted({r[key] for r in done if key in r}) for key in ("train_images", "val_images", "test_images")}
    said = {key: "/".join(f"{n:,}" for n in values) or "?" for key, values in counts.items()}
    lines = [f"Fashion-MNIST ({report['settings_data']}): top-1 on the {said['test_images']} test images, "
             f"{report['device']}; trained on {said['train_images']} images, best epoch chosen on "
             f"{said['val_images']} validation images carved from the training files; recipe: "
             f"`{' '.join(report['recipe'])}`, batch {report['batch_size']}. Command: `{report['command']}`", "",
             "| model | test top-1 % | params | epochs | images seen | train min | train images/s | published row "
             "| published % |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in report["rows"]:
        if "mean" not in r:
            lines.append(f"| {r['model']} | failed: {r['error']} | | | | | | | |")
            continue
        score = f"{r['mean']:.2f}" + (f" ± {r['sd']:.2f} ({len(r['seeds'])} seeds)" if r["sd"] is not None else "")
        epochs = "/".join(str(e) for e in sorted(set(r["epochs"])))
        if r["stopped_by_budget"]:
            epochs += f" (budget stopped {r['stopped_by_budget']})"
        speed = f"{r['images_per_s']:.0f}" if r["images_per_s"] else "-"
        published = f"{r['published_row']} [{r['published_relation']}]" if r["published_row"] else "-"
        seen = f"{r['images_seen'] / 1000:.1f}k" if r.get("images_seen") else "-"
        lines.append(f"| {r['model']} | {score} | {r['params'] / 1e6:.2f}M | {epochs} | {seen} | "
                     f"{r['train_min']:.1f} | {speed} | {published} | "
                     f"{r['published'] if r['published'] is not None else '-'} |")
    return "\n".join(lines) + "\n"


def plot(rows: list[dict], path: Path, device: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter, ScalarFormatter

    from backbonekit.io.figures import save_figure

    rows = [r for r in rows if "mean" in r]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8), sharey=True)
    for ax, key, label in ((axes[0], "params", "parameters (millions)"),
                           (axes[1], "train_min", "training time (minutes of epochs)")):
        for r in rows:
            x = r["params"] / 1e6 if key == "params" else r["train_min"]
            point = ax.errorbar(x, r["mean"], yerr=r["sd"] or 0, fmt="o", capsize=3)
            ax.annotate(r["model"], (x, r["mean"]), textcoords="offset points", xytext=(4, 4), fontsize=8)
            if r["published"] is not None:  # its family's published row, at our model's x (its own is not known)
                ax.plot(x, r["published"], "x", color=point[0].get_color())
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel(label)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("test top-1 (%)  (o ours ± sd, x published row)")
    fig.suptitle(f"Fashion-MNIST, official test split ({device})", fontsize=10)
    fig.tight_layout()
    save_figure(fig, path)


if __name__ == "__main__":
    sys.exit(main())
