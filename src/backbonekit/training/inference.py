"""The steps ``eval`` and ``predict`` share for every task: the trained file read once and loaded for inference
(BatchNorm folded, eval mode) on the best device there is, or run by another runtime, and where an evaluation's
figures are written.

Runtimes: ``torch`` (eager PyTorch), ``onnxruntime`` or ``openvino``: for these two the checkpoint is exported once
to ONNX beside it (the file ``backbonekit export`` writes, reused while it is newer than the checkpoint), or an
exported ``.onnx`` file is given as the checkpoint; class names and input size then come from the file's metadata.
OpenVINO computes in fp32 unless ``precision="bf16"`` is asked for (its error against fp32 is measured and printed).
"""
from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

from backbonekit.errors import ConfigError
from backbonekit.training.task_spec import TaskSpec


def pick_device(requested: str | None = None) -> torch.device:
    """``auto``/None: the GPU when there is one, else the CPU; or ``cpu``, ``cuda``, ``cuda:1``."""
    if requested in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device("cuda" if requested == "gpu" else requested)  # gpu: train's --accelerator word
    except RuntimeError:
        raise ConfigError(f"--accelerator {requested}: not a device (auto, cpu, gpu, cuda or cuda:N)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"--accelerator {requested}: no CUDA device on this machine (use --accelerator cpu or auto)")
    return device


RUNTIMES = ("torch", "onnxruntime", "openvino", "auto")
PRECISIONS = ("fp32", "bf16", "int8", "auto")
CHOICES_FILE = "runtime.json"  # beside the checkpoint: what --runtime auto measured, by machine and batch size


def load_for_inference(checkpoint: str | Path, spec: TaskSpec, device: str | None = None, runtime: str = "torch",
                       precision: str | None = "fp32", batch_size: int = 1):
    """(the trained task in eval mode with BatchNorm folded, on ``device``; that device), or with
    ``runtime="onnxruntime"``/``"openvino"`` (an ``.onnx`` checkpoint: onnxruntime unless openvino is asked for) the
    task's ONNX file run by that runtime on the CPU; ``"auto"``: the fastest of them for ``batch_size`` here.
    ``precision``: fp32, bf16 (OpenVINO), int8 (the gated int8 file, ``training/int8.py``), or with ``runtime="auto"``
    auto (None: auto with ``runtime="auto"``, else fp32): the fastest precision whose accuracy passed its gate."""
    if not Path(checkpoint).is_file():
        raise ConfigError(f"--checkpoint {checkpoint}: no such file")
    if runtime not in RUNTIMES:
        raise ConfigError(f"--runtime must be one of {', '.join(RUNTIMES)}, got {runtime!r}")
    precision = precision or ("auto" if runtime == "auto" else "fp32")
    if precision not in PRECISIONS or (precision == "auto" and runtime != "auto"):
        raise ConfigError(f"--runtime-precision must be one of fp32, bf16, int8 (auto with --runtime auto), got "
                          f"{precision!r}")
    if runtime == "auto":
        runtime, precision = choose_runtime_precision(Path(checkpoint), spec, device, batch_size, precision)
    if precision == "int8":
        return load_int8(Path(checkpoint), spec, device, runtime), torch.device("cpu")
    if precision != "fp32" and runtime != "openvino":
        raise ConfigError(f"--runtime-precision {precision} applies to --runtime openvino (torch and onnxruntime run "
                          "fp32)")
    if runtime != "torch" or Path(checkpoint).suffix == ".onnx":
        runtime = "onnxruntime" if runtime == "torch" else runtime
        _cpu_only(device, runtime)
        return load_onnx(checkpoint, spec, runtime, precision), torch.device("cpu")
    where = pick_device(device)
    return spec.load(checkpoint, fuse=True).to(where), where


def _cpu_only(device: str | None, runtime: str) -> None:
    if device not in (None, "auto", "cpu"):
        raise ConfigError(f"--accelerator {device}: {runtime} runs on the CPU here (use --runtime torch for a GPU)")


def load_int8(checkpoint: Path, spec: TaskSpec, device: str | None, runtime: str):
    """The checkpoint's gated int8 file for ``runtime`` (quantised through the gate now if there is none)."""
    from backbonekit.training.int8 import gated_file

    if runtime not in ("onnxruntime", "openvino"):
        raise ConfigError(f"--runtime-precision int8 runs on --runtime onnxruntime or openvino, not {runtime}")
    if checkpoint.suffix == ".onnx":
        raise ConfigError(f"--checkpoint {checkpoint}: int8 is quantised from a trained checkpoint and gated on its "
                          "run's validation split; give the checkpoint (an int8 .onnx file runs as it is without "
                          "--runtime-precision)")
    _cpu_only(device, runtime)
    return load_onnx(gated_file(checkpoint, spec, runtime), spec, runtime, "fp32")


def choose_runtime(checkpoint: Path, spec: TaskSpec, device: str | None, batch_size: int) -> str:
    """The fastest runtime in fp32 (``choose_runtime_precision``)."""
    return choose_runtime_precision(checkpoint, spec, device, batch_size, "fp32")[0]


def choose_runtime_precision(checkpoint: Path, spec: TaskSpec, device: str | None, batch_size: int,
                             precision: str = "fp32") -> tuple[str, str]:
    """The fastest (runtime, precision) for this checkpoint on this machine at ``batch_size``: measured the first
    time, then read from ``runtime.json`` beside the checkpoint (the key names the file's version, the batch, the
    threads, the CPU and the precisions tried). ``precision="auto"`` tries bf16 and int8 too, each only once its
    accuracy passed the gate (``training/int8.py``); another precision is the only one tried."""
    if pick_device(device).type != "cpu":
        return "torch", "fp32"  # the export runtimes run on the CPU here
    record = checkpoint.parent / CHOICES_FILE
    key = (f"{checkpoint.name} {checkpoint.stat().st_mtime_ns} batch {batch_size} threads {torch.get_num_threads()} "
           f"{platform.processor() or platform.machine()}" + ("" if precision == "fp32" else f" {precision}"))
    known = json.loads(record.read_text()) if record.is_file() else {}
    if key in known:
        choice = known[key]
        print(f"runtime auto: {_name(choice)} (measured before, {record})", file=sys.stderr)
        return choice["runtime"], choice.get("precision", "fp32")
    rates = measure_runtimes(checkpoint, spec, batch_size, candidates=_candidates(checkpoint, spec, precision))
    best = max(rates, key=rates.get)
    runtime, _, chosen = best.partition(" ")
    known[key] = {"runtime": runtime, "precision": chosen or "fp32", "images_per_s": rates}
    with contextlib.suppress(OSError):  # a read-only folder: measured again next time
        record.write_text(json.dumps(known, indent=2) + "\n")
    measured = ", ".join(f"{name} {rate:.1f}" for name, rate in rates.items())
    print(f"runtime auto: {best} (images/s at batch {batch_size} here: {measured}; remembered in {record})",
          file=sys.stderr)
    return runtime, chosen or "fp32"


def _name(choice: dict) -> str:
    return choice["runtime"] + ("" if choice.get("precision", "fp32") == "fp32" else f" {choice['precision']}")


def _candidates(checkpoint: Path, spec: TaskSpec, precision: str) -> list[tuple[str, str]]:
    """(runtime, precision) pairs ``auto`` times: fp32 on each installed runtime, bf16 on OpenVINO, int8 on
    onnxruntime and OpenVINO; with ``"auto"`` all of them, bf16 and int8 only where their accuracy gate passes
    (measured now if never)."""
    names = [name for name in RUNTIMES[:-1] if importlib.util.find_spec(name)]
    if checkpoint.suffix == ".onnx":
        names.remove("torch")  # no PyTorch weights in an exported file
    if precision == "fp32":
        return [(name, "fp32") for name in names]
    if precision == "bf16":
        return [("openvino", "bf16")]
    from backbonekit.training.int8 import gates_passed

    if precision == "int8":
        passed = gates_passed(checkpoint, spec, ("int8",))
        if not passed:
            raise ConfigError(f"{checkpoint}: int8 passed its accuracy gate on no runtime (lines above)")
        return passed
    return [(name, "fp32") for name in names] + gates_passed(checkpoint, spec)


def measure_runtimes(checkpoint: Path, spec: TaskSpec, batch_size: int, rounds: int = 3,
                     candidates: list[tuple[str, str]] | None = None) -> dict[str, float]:
    """images/s of the checkpoint in each (runtime, precision) of ``candidates`` (default: each installed runtime in
    fp32) on random images, by name ("openvino", "openvino int8"): per candidate, a warm-up call then the median of
    ``rounds`` calls, one after the other (onnxruntime's idle threads spin for a while after a call: interleaved,
    they would slow whatever is timed next; the warm-up call absorbs that)."""
    candidates = candidates or _candidates(checkpoint, spec, "fp32")
    models = {(name if precision == "fp32" else f"{name} {precision}"):
              load_for_inference(checkpoint, spec, "cpu", name, precision)[0] for name, precision in candidates}
    size = next(iter(models.values())).cfg.image_size
    height, width = (size, size) if isinstance(size, int) else size
    images = torch.randint(0, 256, (batch_size, 3, height, width), dtype=torch.uint8)
    rates = {}
    with torch.inference_mode():
        for name, model in models.items():
            call = getattr(model, "detect", model)
            call(images)  # warm-up: first-call allocations, lazy initialisation, the previous runtime's threads
            times = []
            for _ in range(rounds):
                start = time.perf_counter()
                call(images)
                times.append(time.perf_counter() - start)
            rates[name] = batch_size / statistics.median(times)
    return rates


def load_onnx(checkpoint: str | Path, spec: TaskSpec, runtime: str = "onnxruntime", precision: str = "fp32"):
    """The task's ONNX file (given, or exported beside the checkpoint) in ``runtime``, as the task's ``onnx_model``."""
    if spec.onnx_model is None:
        raise ConfigError(f"the {spec.name} task has no ONNX runtime")
    path = Path(checkpoint) if Path(checkpoint).suffix == ".onnx" else exported_beside(Path(checkpoint), spec)
    runner = make_runner(path, runtime, precision)
    task = runner.metadata.get("backbonekit_task")
    if task != spec.name:
        what = f"a {task} model" if task else "not an ONNX file written by `backbonekit export`"
        raise ConfigError(f"{path}: {what}, not {spec.name}")
    return spec.onnx_model(runner)


def make_runner(path: Path, runtime: str, precision: str):
    if runtime == "onnxruntime":
        from backbonekit.io.onnx_export import OnnxRunner

        return OnnxRunner(path)
    from backbonekit.io.openvino_runtime import OpenVinoRunner, bf16_error

    runner = OpenVinoRunner(path, precision)
    if precision == "bf16":
        from backbonekit.io.onnx_export import example_images

        size = tuple(runner.metadata.get("input_size", (224, 224)))
        error = bf16_error(path, example_images(2, size, runner.input_dtype))
        print(f"OpenVINO bf16: outputs differ from fp32 by up to {error:.2e} on 2 random images", file=sys.stderr)
    return runner


def exported_beside(checkpoint: Path, spec: TaskSpec) -> Path:
    """``<checkpoint stem>.onnx`` beside it, exported now unless the one there is newer than the checkpoint."""
    from backbonekit.io.onnx_export import DEFAULT_OPSET

    out = checkpoint.with_suffix(".onnx")
    if out.is_file() and out.stat().st_mtime >= checkpoint.stat().st_mtime:
        return out
    print(f"exporting {checkpoint} to {out} for onnxruntime (once: later runs reuse it)", file=sys.stderr, flush=True)
    options = argparse.Namespace(input_dtype="uint8", score_threshold=None, max_detections=None)
    spec.export(spec.load(checkpoint, fuse=True), out, DEFAULT_OPSET, options)
    return out
