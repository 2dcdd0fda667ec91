"""int8 with an accuracy gate, for every task: a checkpoint's exported graph quantised for one runtime
(``io/quantize.py``), calibrated on images of the run's own training data (or ``--calibration-data``), then the run's
validation split scored in fp32 and in int8 on that runtime. The int8 file is written beside the checkpoint only when
the drop is at most ``max_drop`` points; otherwise nothing is written and the refusal names the figures.

Beside the checkpoint on success: ``<stem>.int8-<runtime>.onnx`` and ``precisions.json``, which records per file the
scores, the drop, the limit, the calibration and what stayed float (and OpenVINO bf16's gate, ``bf16_gate``, which
``--runtime auto`` reads). ``eval``/``predict --runtime-precision int8``
read the file, or quantise through this gate on first use.

What a task gives (``TaskSpec.int8`` → its ``int8`` module): ``METRIC`` (the score's name), ``SCOPES`` (module paths
quantised, by scope name: ``backbone`` keeps a detector's heads and post-processing or a sequence model's transformer
float; ``all``), ``calibration_set(checkpoint, cfg)`` (its training images, uint8, as the graph takes them),
``folder_transform(cfg)`` (an image file → the graph's input) and ``score(checkpoint, model, batch_size)``.

Layer types (``--keep-float``; ``io/quantize.py``: conv, depthwise, se, linear, other): ``auto`` scores each type
present int8 alone (the rest float), then quantises all of them and, while the drop is over ``max_drop``, puts back
to float the type that lost most alone, one at a time (a type that lost nothing alone stays int8); ``none`` or a
list (``se,depthwise``) decide without measuring.
"""
from __future__ import annotations

import contextlib
import json
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from backbonekit.errors import BackbonekitError, ConfigError, DataError, GateRefused
from backbonekit.training.run_record import recorded_settings
from backbonekit.training.task_spec import TaskSpec

RECORD = "precisions.json"
MIN_CALIBRATION = 16       # fewer images make the activation ranges of a few batches: refused
DEFAULT_CALIBRATION = 300  # NNCF's own default subset size
DEFAULT_MAX_DROP = 1.0


@dataclass
class Int8Options:
    runtime: str = "onnxruntime"
    calibration_images: int = DEFAULT_CALIBRATION
    calibration_data: str | None = None
    max_drop: float = DEFAULT_MAX_DROP
    keep_float: str = "auto"     # auto, none, or types separated by commas
    scope: str = "backbone"
    batch_size: int = 32


def int8_file(checkpoint: str | Path, runtime: str) -> Path:
    checkpoint = Path(checkpoint)
    return checkpoint.with_name(f"{checkpoint.stem}.int8-{runtime}.onnx")


def read_record(checkpoint: str | Path) -> dict:
    path = Path(checkpoint).parent / RECORD
    return json.loads(path.read_text()) if path.is_file() else {}


def gated_file(checkpoint: str | Path, spec: TaskSpec, runtime: str) -> Path:
    """The checkpoint's int8 file for ``runtime``: the one beside it when the record says it passed the gate for
    this checkpoint as it is now, else quantised through the gate now (with the defaults)."""
    out = int8_file(checkpoint, runtime)
    entry = read_record(checkpoint).get(out.name)
    if out.is_file() and entry and entry.get("checkpoint_mtime_ns") == Path(checkpoint).stat().st_mtime_ns:
        print(f"int8 ({runtime}): {out} (passed the gate: {entry['metric']} fp32 {entry['fp32']:.2f}, int8 "
              f"{entry['int8']:.2f}, drop {entry['drop']:.2f} ≤ {entry['max_drop']:.2f})", file=sys.stderr)
        return out
    print(f"int8 ({runtime}): quantising {checkpoint} now (once: later runs reuse {out.name})", file=sys.stderr)
    with contextlib.redirect_stdout(sys.stderr):  # eval and predict may print their results on stdout
        quantize_checkpoint(checkpoint, spec, Int8Options(runtime=runtime))
    return out


def gates_passed(checkpoint: str | Path, spec: TaskSpec, precisions=("bf16", "int8")) -> list[tuple[str, str]]:
    """The (runtime, precision) pairs besides fp32 whose accuracy gate passes for this checkpoint (gated now where
    never before); each one left out is said in one line."""
    passed = []
    for runtime, precision in (("openvino", "bf16"), ("onnxruntime", "int8"), ("openvino", "int8")):
        if precision not in precisions:
            continue
        try:
            if precision == "bf16":
                bf16_gate(checkpoint, spec)
            else:
                gated_file(checkpoint, spec, runtime)
            passed.append((runtime, precision))
        except BackbonekitError as e:
            print(f"runtime auto: {runtime} {precision} left out: {e}", file=sys.stderr)
    return passed


def bf16_gate(checkpoint: str | Path, spec: TaskSpec, max_drop: float = DEFAULT_MAX_DROP,
              batch_size: int = 32) -> dict:
    """OpenVINO bf16 against fp32 on the run's validation split: the record's entry, or ``GateRefused``."""
    from backbonekit.io.openvino_runtime import OpenVinoRunner

    checkpoint = Path(checkpoint)
    entry = read_record(checkpoint).get("bf16-openvino")
    if entry and entry.get("checkpoint_mtime_ns") == checkpoint.stat().st_mtime_ns and entry["max_drop"] <= max_drop:
        return entry
    if spec.int8 is None:
        raise ConfigError(f"the {spec.name} task has no accuracy gate")
    support = spec.int8()
    with tempfile.TemporaryDirectory(prefix="backbonekit-bf16-") as tmp:
        fp32 = _fp32_file(checkpoint, spec, spec.load(checkpoint, fuse=True), Path(tmp))
        scores = {p: float(support.score(checkpoint, spec.onnx_model(OpenVinoRunner(fp32, p)), batch_size))
                  for p in ("fp32", "bf16")}
    drop = scores["fp32"] - scores["bf16"]
    print(f"OpenVINO bf16 on the run's validation split, {support.METRIC}: fp32 {scores['fp32']:.2f}, bf16 "
          f"{scores['bf16']:.2f}, drop {drop:.2f} points (limit {max_drop:g})", file=sys.stderr)
    if drop > max_drop:
        raise GateRefused(f"bf16 refused: {support.METRIC} fp32 {scores['fp32']:.2f}, bf16 {scores['bf16']:.2f}, "
                          f"drop {drop:.2f} points > {max_drop:g}")
    entry = {"metric": support.METRIC, "fp32": round(scores["fp32"], 4), "bf16": round(scores["bf16"], 4),
             "drop": round(drop, 4), "max_drop": max_drop, "runtime": "openvino", "checkpoint": checkpoint.name,
             "checkpoint_mtime_ns": checkpoint.stat().st_mtime_ns}
    _write_entry(checkpoint, "bf16-openvino", entry)
    return entry


def _write_entry(checkpoint: Path, key: str, entry: dict) -> None:
    record = read_record(checkpoint)
    record[key] = entry
    (checkpoint.parent / RECORD).write_text(json.dumps(record, indent=2) + "\n")


def quantize_checkpoint(checkpoint: str | Path, spec: TaskSpec, options: Int8Options) -> dict:
    """Quantise, score both, gate, and write the file and its record (or raise ``GateRefused``, writing nothing)."""
    from backbonekit.io.quantize import require

    checkpoint = Path(checkpoint)
    require(options.runtime)
    if spec.int8 is None:
        raise ConfigError(f"the {spec.name} task has no int8 path")
    support = spec.int8()
    if options.scope not in support.SCOPES:
        raise ConfigError(f"--scope must be one of {', '.join(support.SCOPES)} for {spec.name}, got {options.scope!r}")
    trained = spec.load(checkpoint, fuse=True)
    images, source = calibration_images(checkpoint, support, trained.cfg, options)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="backbonekit-int8-") as tmp:  # nothing beside the checkpoint until passed
        fp32 = _fp32_file(checkpoint, spec, trained, Path(tmp))
        figures = quantise_and_score(checkpoint, spec, support, fp32, images, options, Path(tmp))
        figures.update(calibration={"images": len(images), "source": source},
                       seconds=round(time.perf_counter() - started, 1))
        _print_figures(figures, options)
        if figures["drop"] > options.max_drop:
            raise GateRefused(f"int8 refused for {options.runtime}: {figures['metric']} fp32 {figures['fp32']:.2f}, "
                              f"int8 {figures['int8']:.2f}, drop {figures['drop']:.2f} points > --max-drop "
                              f"{options.max_drop:g}; nothing written")
        out = int8_file(checkpoint, options.runtime)
        shutil.move(figures.pop("candidate"), out)
    entry = {**figures, "file": out.name, "runtime": options.runtime, "max_drop": options.max_drop,
             "checkpoint": checkpoint.name, "checkpoint_mtime_ns": checkpoint.stat().st_mtime_ns,
             "size_mb": round(out.stat().st_size / 1e6, 2)}
    _write_entry(checkpoint, out.name, entry)
    print(f"wrote {out} ({entry['size_mb']:.1f} MB) and its scores in {checkpoint.parent / RECORD}")
    return entry


def calibration_images(checkpoint: Path, support, cfg, options: Int8Options) -> tuple[torch.Tensor, str]:
    """``options.calibration_images`` images as the graph takes them (uint8 N×3×H×W), drawn evenly from the run's
    training images or read from ``--calibration-data``; and where they came from."""
    from backbonekit.io.images import images_under, load_image

    wanted = options.calibration_images
    if wanted < MIN_CALIBRATION:
        raise ConfigError(f"--calibration-images must be at least {MIN_CALIBRATION}, got {wanted}")
    if options.calibration_data:
        folder = Path(options.calibration_data)
        if not folder.is_dir():
            what = "a file, not a folder" if folder.is_file() else "no such folder"
            raise DataError(f"--calibration-data {folder}: {what}")
        files = images_under(folder)
        pool, source = _Files(files, support.folder_transform(cfg), load_image), str(folder)
    else:
        data = (recorded_settings(checkpoint) or {}).get("data")
        try:
            if data is None:
                raise DataError("no run record")
            pool, source = support.calibration_set(checkpoint, cfg), f"the run's training images ({data})"
        except (BackbonekitError, OSError):
            if data is not None and Path(data).exists():
                raise  # the data is there but wrong: its own message says how
            what = f"the run's data {data} is gone" if data else f"no run record beside {checkpoint}"
            raise DataError(f"{checkpoint}: {what}, and int8 calibrates on the run's training images: give a folder "
                            "of images like them with --calibration-data DIR") from None
    if len(pool) < MIN_CALIBRATION:
        raise DataError(f"{source}: {len(pool)} images, too few to calibrate int8 (at least {MIN_CALIBRATION})")
    count = min(wanted, len(pool))
    picks = torch.linspace(0, len(pool) - 1, count).round().long().unique().tolist()
    return torch.stack([pool[i] for i in picks]), source


class _Files:
    """Image files as the graph's input, read when indexed."""

    def __init__(self, files, transform, load):
        self.files, self.transform, self.load = files, transform, load

    def __len__(self):
        return len(self.files)

    def __getitem__(self, i):
        return self.transform(self.load(self.files[i]))


def _fp32_file(checkpoint: Path, spec: TaskSpec, trained, tmp: Path) -> Path:
    """The checkpoint's fp32 export: the one ``--runtime onnxruntime`` keeps beside it when current, else exported
    into ``tmp`` (a refused quantisation leaves the run folder as it was)."""
    import argparse

    from backbonekit.io.onnx_export import DEFAULT_OPSET

    beside = checkpoint.with_suffix(".onnx")
    if beside.is_file() and beside.stat().st_mtime >= checkpoint.stat().st_mtime:
        return beside
    options = argparse.Namespace(input_dtype="uint8", score_threshold=None, max_detections=None)
    with contextlib.redirect_stdout(sys.stderr):
        spec.export(trained, tmp / "fp32.onnx", DEFAULT_OPSET, options)
    return tmp / "fp32.onnx"


def quantise_and_score(checkpoint: Path, spec: TaskSpec, support, fp32: Path, images: torch.Tensor,
                       options: Int8Options, tmp: Path, score_model: Callable | None = None) -> dict:
    """The candidate int8 file in ``tmp`` and the figures the gate reads: both scores on ``options.runtime``;
    ``score_model`` (a graph's model → its score) in place of the task's own score on the run's validation split."""
    import onnx

    from backbonekit.io.onnx_export import read_metadata
    from backbonekit.io.quantize import float_nodes, quantize_onnx

    model, scopes = onnx.load(str(fp32)), support.SCOPES[options.scope]

    def score(path: Path) -> float:
        model = spec.onnx_model(_runner(path, options.runtime))
        return float(score_model(model) if score_model else support.score(checkpoint, model, options.batch_size))

    def quantise(path: Path, kept_types, metadata: dict) -> dict:
        names, counts = float_nodes(model, scopes, kept_types)
        quantize_onnx(fp32, path, options.runtime, images.numpy(), names, metadata)
        return counts

    reference = score(fp32)
    kept, worst_first, measured = _keep_float_types(model, scopes, options, reference, quantise, score, tmp)
    candidate = tmp / "int8.onnx"
    while True:  # with auto: the type that lost most alone goes back to float until the drop is within the limit
        counts = quantise(candidate, kept, {**read_metadata(fp32), "precision": "int8", "runtime": options.runtime,
                                            "scope": options.scope, "kept_float_types": kept})
        int8 = score(candidate)
        if not worst_first or reference - int8 <= options.max_drop:
            break
        kept = [*kept, worst_first.pop(0)]
    return {"metric": support.METRIC, "fp32": round(reference, 4), "int8": round(int8, 4),
            "drop": round(reference - int8, 4), "scope": options.scope, "kept_float_types": kept,
            "layer_types": counts, "drop_by_type_alone": measured, "candidate": str(candidate)}


def _keep_float_types(model, scopes, options: Int8Options, reference: float, quantise, score, tmp: Path):
    """(types kept float from the start, types to keep float next while the drop is over the limit, worst first;
    with ``auto`` each type's drop when it alone is int8)."""
    from backbonekit.io.quantize import float_nodes

    if options.keep_float != "auto":
        return ([] if options.keep_float == "none" else
                [t.strip() for t in options.keep_float.split(",") if t.strip()]), [], {}
    present = sorted({key.split()[0] for key in float_nodes(model, scopes, [])[1] if key.endswith("int8")})
    if len(present) < 2:
        return [], [], {}
    measured = {}
    for kind in present:
        path = tmp / f"only-{kind}.onnx"
        quantise(path, [t for t in present if t != kind], {})
        measured[kind] = round(reference - score(path), 4)
        path.unlink()
    worst_first = sorted((k for k in measured if measured[k] > 0), key=measured.get, reverse=True)
    return [], worst_first, measured


def _runner(path: Path, runtime: str):
    if runtime == "onnxruntime":
        from backbonekit.io.onnx_export import OnnxRunner

        return OnnxRunner(path)
    from backbonekit.io.openvino_runtime import OpenVinoRunner

    return OpenVinoRunner(path, "fp32")  # f32 where no int8 kernel applies: the int8 file's own error only


def _print_figures(figures: dict, options: Int8Options) -> None:
    types = ", ".join(f"{k} {n}" for k, n in figures["layer_types"].items())
    alone = ", ".join(f"{k} {d:+.2f}" for k, d in figures["drop_by_type_alone"].items())
    print(f"int8 for {options.runtime}, calibrated on {figures['calibration']['images']} images of "
          f"{figures['calibration']['source']}; layers ({options.scope}): {types}")
    if alone:
        print(f"  drop with one layer type alone int8: {alone} (kept float: "
              f"{', '.join(figures['kept_float_types']) or 'none'})")
    print(f"  the run's validation split, {figures['metric']}: fp32 {figures['fp32']:.2f}, int8 {figures['int8']:.2f},"
          f" drop {figures['drop']:.2f} points (--max-drop {options.max_drop:g})")
