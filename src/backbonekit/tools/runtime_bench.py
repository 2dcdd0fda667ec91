"""Throughput of one classifier on every CPU runtime, ours against the peer library's model on the same runtime.

``backbonekit bench MODEL --runtimes torch,fused,channels-last,compile,onnxruntime,openvino``: our model (the peer's
random weights loaded into it) in each way of running it, and the peer (torchvision or timm) eager and, for the
export runtimes, exported the same way, so the ratio says both what the runtime gains over eager PyTorch and whether
our graph is at least as good as the peer's own in that runtime. Every variant's outputs are checked against the
peer's eager outputs before timing; every step is timed in alternating rounds in one process (a new random order
each round, after a pause that lets the spinning threads of the step before go to sleep), and the median, the
fastest and the slowest round are reported: the spread says how far a ratio can be trusted on a noisy machine.
"""
from __future__ import annotations

import random
import statistics
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import torch
import torch.nn as nn

from backbonekit.errors import ConfigError
from backbonekit.io.figures import save_figure
from backbonekit.models.registry import create_model
from backbonekit.nn.fuse import fuse_batchnorm
from backbonekit.tools.bench import build_peer

RUNTIMES = ("torch", "fused", "channels-last", "compile", "onnxruntime", "openvino", "openvino-bf16",
            "onnxruntime-int8", "openvino-int8")
EXPORTED = ("onnxruntime", "openvino", "openvino-bf16", "onnxruntime-int8", "openvino-int8")
# int8 rows: the exported file quantised for its runtime (io/quantize.py) on random calibration images, ours and the
# peer's alike: a speed figure (random weights have no accuracy to keep; `backbonekit quantize` gates a trained one).
CALIBRATION_IMAGES = 32


@dataclass
class RuntimeRow:
    runtime: str
    who: str                      # "ours" or the peer library
    median: float                 # images/s over the rounds
    fastest: float
    slowest: float
    max_abs_diff: float           # outputs against the peer's eager outputs, as timed
    max_rel_diff: float           # the same over the largest |output| (random weights can give tiny outputs)
    size_mb: float | None = None  # on disk: the file the runtime runs, or the torch module's parameters and buffers
    accuracy: float | None = None  # top-1 (%) on a trained run's validation split (bench --checkpoint), else None

    def as_dict(self) -> dict:
        return asdict(self)


def parse_runtimes(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in RUNTIMES]
    if unknown or not names:
        raise ConfigError(f"--runtimes takes a comma-separated list of {', '.join(RUNTIMES)}; got {text!r}")
    return names


def run_runtime_bench(name: str, runtimes: list[str], vs: str = "torchvision", batch_size: int = 1,
                      image_size: int = 224, rounds: int = 5, iters: int = 3, warmup: int = 2,
                      progress: Callable[[str], None] | None = None) -> list[RuntimeRow]:
    """Rows for ours on each runtime, and the peer eager and on each export runtime asked for."""
    say = progress or (lambda text: None)
    peer = build_peer(name, vs).eval()
    ours = create_model(name, pretrained=peer.state_dict()).eval()
    x = torch.randn(batch_size, 3, image_size, image_size, generator=torch.Generator().manual_seed(0))
    with tempfile.TemporaryDirectory() as folder, torch.inference_mode():
        reference = peer(x)
        steps, sizes = {("torch", vs): peer}, {("torch", vs): module_mb(peer)}
        for runtime in runtimes:
            say(f"preparing {runtime}")
            for who, model in (("ours", ours), (vs, peer)):
                if who == "ours" or runtime in EXPORTED:
                    path = Path(folder) / f"{'ours' if who == 'ours' else 'peer'}.onnx"
                    steps[(runtime, who)] = prepare(model, runtime, x, path)
                    sizes[(runtime, who)] = size_mb(model, runtime, path)
        diffs = {key: float((as_tensor(step(x)) - reference).abs().max()) for key, step in steps.items()}
        scale = max(float(reference.abs().max()), 1e-30)
        say(f"timing {len(steps)} variants, {rounds} alternating rounds")
        rates = alternate(steps, x, rounds, iters, warmup)
    return [RuntimeRow(runtime, who, statistics.median(r), max(r), min(r), diffs[(runtime, who)],
                       diffs[(runtime, who)] / scale, sizes[(runtime, who)]) for (runtime, who), r in rates.items()]


def run_detector_runtime_bench(name: str, runtimes: list[str], batch_size: int = 1, image_size: int | None = None,
                               rounds: int = 5, iters: int = 3, warmup: int = 2,
                               progress: Callable[[str], None] | None = None) -> list[RuntimeRow]:
    """EfficientDet from image to detections (network, decoding, NMS) on each runtime against effdet's predict bench
    eager, on the same calibrated random weights. The torch rows are checked against effdet's detections; the
    exported rows (our whole ``predict detect`` graph, NMS inside) against the same graph run eagerly, since the
    graph clips boxes to the image and effdet's bench does not. effdet's own model is not exported (its NMS is
    torchvision's Python-level batched_nms): no same-runtime peer row for detectors."""
    from backbonekit.detection.export import compare_detections, export_detector_onnx, unpad
    from backbonekit.detection.task import DetectionTask
    from backbonekit.models.efficientdet import CONFIGS
    from backbonekit.tools.bench import _effdet_detections, _OursPredict, detection_difference, detector_pair

    say = progress or (lambda text: None)
    size = image_size or CONFIGS[name.removeprefix("efficientdet_")].image_size[0]
    task = DetectionTask(model=name, num_classes=90, image_size=[size, size]).eval()
    images = torch.randint(0, 256, (batch_size, 3, size, size), dtype=torch.uint8,
                           generator=torch.Generator().manual_seed(1))
    x = task.normalize(images)
    model, peer = detector_pair(name, "effdet", x)
    task.model.load_state_dict(model.state_dict())
    limits = (peer.model.config.max_detection_points, peer.model.config.max_det_per_image)
    steps, diffs = {("torch", "effdet"): lambda _: peer(x)}, {("torch", "effdet"): 0.0}
    with tempfile.TemporaryDirectory() as folder, torch.inference_mode():
        reference = _effdet_detections(peer(x))
        for runtime in runtimes:
            say(f"preparing {runtime}")
            if runtime in EXPORTED:
                path = Path(folder) / "ours.onnx"
                if not path.exists():
                    export_detector_onnx(task, path, score_threshold=0.0, max_detections=limits[1])
                    graph = [{k: torch.as_tensor(v) for k, v in d.items()} for d in unpad(
                        [t.numpy() for t in _eager_graph(task, limits[1])(images)])]
                run = prepare(task.model, runtime, images, path, DETECTOR_INT8_SCOPES)  # loaded, not exported again
                got = compare_detections(graph, unpad(run(images)))
                diffs[(runtime, "ours")] = max(got["max_box_diff"], got["max_score_diff"]) if got["matched"] \
                    else float("inf")
                steps[(runtime, "ours")] = lambda _, run=run: run(images)
            else:
                module, layout = torch_variant(model, runtime)
                predict, laid_out = _OursPredict(module, size, *limits), layout(x)
                diffs[(runtime, "ours")] = detection_difference(predict(laid_out), reference)
                steps[(runtime, "ours")] = lambda _, predict=predict, laid_out=laid_out: predict(laid_out)
        say(f"timing {len(steps)} variants, {rounds} rounds in random order")
        rates = alternate(steps, images, rounds, iters, warmup)
    return [RuntimeRow(runtime, who, statistics.median(r), max(r), min(r), diffs[(runtime, who)],
                       diffs[(runtime, who)]) for (runtime, who), r in rates.items()]


def _eager_graph(task, max_detections: int) -> nn.Module:
    from backbonekit.detection.export import DetectorForExport

    return DetectorForExport(task, score_threshold=0.0, max_detections=max_detections).eval()


DETECTOR_INT8_SCOPES = ("net.backbone", "net.fpn")  # heads and post-processing float, as `backbonekit quantize`


def prepare(model: nn.Module, runtime: str, x: torch.Tensor, onnx_path: Path, int8_scopes=("",)) -> Callable:
    """``model`` as a function of ``x`` run by ``runtime`` (a model exported once for every export runtime, quantised
    once per int8 runtime with the modules under ``int8_scopes`` int8); the model itself is left as it is (fused
    copies are made)."""
    if runtime not in EXPORTED:
        module, layout = torch_variant(model, runtime)
        return lambda images: module(layout(images))
    if not onnx_path.exists():
        from backbonekit.io.onnx_export import export_module

        example = torch.cat([x, x]) if len(x) == 1 else x  # a batch of 1 would be specialised, not dynamic
        fused = fuse_batchnorm(model)
        export_module(ImagesInput(fused).eval(), example, onnx_path, 18, ["logits"])
    base, _, precision = runtime.partition("-")
    path = int8_file(onnx_path, base, x, int8_scopes) if precision == "int8" else onnx_path
    if base == "onnxruntime":
        from backbonekit.io.onnx_export import OnnxRunner

        return OnnxRunner(path)  # spinning, as predict runs it: `alternate` lets its threads settle first
    from backbonekit.io.openvino_runtime import OpenVinoRunner

    return OpenVinoRunner(path, "bf16" if precision == "bf16" else "fp32")


def int8_file(onnx_path: Path, runtime: str, x: torch.Tensor, scopes) -> Path:
    """``onnx_path`` quantised for ``runtime`` beside it (once), calibrated on random images of ``x``'s kind."""
    import onnx

    from backbonekit.io.quantize import float_nodes, quantize_onnx

    out = onnx_path.with_name(f"{onnx_path.stem}.int8-{runtime}.onnx")
    if not out.exists():
        generator = torch.Generator().manual_seed(1)
        shape = (CALIBRATION_IMAGES, *x.shape[1:])
        images = torch.randint(0, 256, shape, dtype=torch.uint8, generator=generator) if x.dtype == torch.uint8 \
            else torch.randn(shape, generator=generator)
        kept, _ = float_nodes(onnx.load(str(onnx_path)), scopes, [])
        quantize_onnx(onnx_path, out, runtime, images.numpy(), kept, {})
    return out


def size_mb(model: nn.Module, runtime: str, onnx_path: Path) -> float:
    """What ``runtime`` runs, on disk: its file for the export runtimes, else the module's tensors."""
    if runtime not in EXPORTED:
        return module_mb(model)
    base, _, precision = runtime.partition("-")
    path = onnx_path.with_name(f"{onnx_path.stem}.int8-{base}.onnx") if precision == "int8" else onnx_path
    return path.stat().st_size / 1e6


def module_mb(model: nn.Module) -> float:
    return sum(t.numel() * t.element_size() for t in [*model.parameters(), *model.buffers()]) / 1e6


def torch_variant(model: nn.Module, runtime: str) -> tuple[Callable, Callable]:
    """(``model`` as ``runtime`` runs it in PyTorch, the layout its input needs); BatchNorm is folded in a copy."""
    if runtime == "torch":
        return model, _same
    fused = fuse_batchnorm(model)
    if runtime == "fused":
        return fused, _same
    if runtime == "channels-last":
        return fused.to(memory_format=torch.channels_last), lambda t: t.contiguous(memory_format=torch.channels_last)
    return torch.compile(fused), _same


def _same(t: torch.Tensor) -> torch.Tensor:
    return t


class ImagesInput(nn.Module):
    """``model`` with its input named ``images``, as every exported graph of ours names it."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model(images)


def as_tensor(output) -> torch.Tensor:
    return torch.from_numpy(output[0]) if isinstance(output, list) else output


# A pause before each timed step: without one, a step timed right after onnxruntime ran up to 5× slower (its idle
# threads spin for a while, on the same cores).
SETTLE_S = 0.2


def alternate(steps: dict, x: torch.Tensor, rounds: int, iters: int, warmup: int,
              settle: float = SETTLE_S) -> dict[tuple, list[float]]:
    """images/s of each step in each round, the steps in a new seeded random order each round (so no step always
    follows the same one), after a pause of ``settle`` seconds (idle threads of the step before, spinning, would
    take the CPU from it)."""
    keys = list(steps)
    for key in keys:
        for _ in range(warmup):
            steps[key](x)
    rates = {key: [] for key in keys}
    order = random.Random(0)
    for _ in range(rounds):
        for key in order.sample(keys, len(keys)):
            time.sleep(settle)
            start = time.perf_counter()
            for _ in range(iters):
                steps[key](x)
            rates[key].append(len(x) * iters / (time.perf_counter() - start))
    return rates


def ratios(rows: list[RuntimeRow], peer: str) -> dict[str, dict[str, float]]:
    """Per runtime, our median images/s over the peer's eager median and over the peer's median on that runtime
    (None where the peer has no such row)."""
    median = {(r.runtime, r.who): r.median for r in rows}
    eager = median.get(("torch", peer))
    out = {}
    for (runtime, who), value in median.items():
        if who == "ours":
            same = median.get((runtime, peer))
            out[runtime] = {"vs_peer_eager": value / eager if eager else None,
                            "vs_peer_same_runtime": value / same if same else None}
    return out


def render_runtimes(rows: list[RuntimeRow], name: str, peer: str, batch_size: int, image_size: int) -> None:
    from rich.markup import escape
    from rich.table import Table

    from backbonekit.io.console import make_console

    table = Table(title=escape(f"{name}, batch {batch_size}, {image_size}², {torch.get_num_threads()} threads: "
                               "images/s, median [slowest–fastest] of alternating rounds"))
    check = "max|diff| (box px, score)" if peer == "effdet" else "max|diff| / max|output|"
    scored = any(r.accuracy is not None for r in rows)
    columns = ("runtime", "ours", peer, f"ours / {peer} eager", f"ours / {peer} same runtime", check, "MB",
               *(("top-1 % (ours)", f"top-1 % ({peer})", f"MB ({peer})") if scored else ()))
    for column in columns:
        table.add_column(column, justify="left" if column == "runtime" else "right")
    by_key = {(r.runtime, r.who): r for r in rows}
    for runtime, ratio in ratios(rows, peer).items():
        ours, theirs = by_key[(runtime, "ours")], by_key.get((runtime, peer))
        cells = [runtime, escape(_rate(ours)), escape(_rate(theirs)) if theirs else "",
                 *(f"{v:.2f}×" if v else "" for v in (ratio["vs_peer_eager"], ratio["vs_peer_same_runtime"])),
                 f"{ours.max_rel_diff:.1e}", _number(ours.size_mb, 1)]
        if scored:
            cells += [_number(ours.accuracy, 2), _number(theirs and theirs.accuracy, 2),
                      _number(theirs and theirs.size_mb, 1)]
        table.add_row(*cells)
    make_console().print(table)


def _number(value: float | None, digits: int) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def _rate(row: RuntimeRow) -> str:
    return f"{row.median:.1f} [{row.slowest:.1f}–{row.fastest:.1f}]"


def plot_runtimes(rows: list[RuntimeRow], peer: str, title: str, path: str | Path) -> Path:
    """Bars of median images/s per runtime, ours beside the peer, with the slowest–fastest range as error bars; rows
    with a top-1 (``bench --checkpoint``) get a second panel below: each variant's top-1, written beside its dot."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runtimes = list(dict.fromkeys(r.runtime for r in rows))
    scored = any(r.accuracy is not None for r in rows)
    fig, axes = plt.subplots(2 if scored else 1, 1, figsize=(1.6 * len(runtimes) + 2, 7 if scored else 4),
                             squeeze=False, sharex=scored, height_ratios=[3, 2] if scored else [1])
    ax, width = axes[0][0], 0.4
    for offset, who, colour in ((-width / 2, "ours", "tab:blue"), (width / 2, peer, "tab:grey")):
        for i, runtime in enumerate(runtimes):
            row = next((r for r in rows if r.runtime == runtime and r.who == who), None)
            if row is None:
                continue
            ax.bar(i + offset, row.median, width, color=colour, label=who,
                   yerr=[[row.median - row.slowest], [row.fastest - row.median]], capsize=3)
    handles, labels = ax.get_legend_handles_labels()
    unique = dict(zip(labels, handles))
    ax.legend(unique.values(), unique.keys(), loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax.set_xticks(range(len(runtimes)), runtimes)
    ax.set_ylabel("images/s (median; bars: slowest–fastest round)")
    ax.set_title(title, fontsize=9)
    if scored:
        _accuracy_panel(axes[1][0], rows, runtimes, peer, width)
    fig.tight_layout()
    return save_figure(fig, path, dpi=120)


def _accuracy_panel(ax, rows: list[RuntimeRow], runtimes: list[str], peer: str, width: float) -> None:
    """Each scored variant's top-1 as a dot at its bar's place above, its value written beside it."""
    for offset, who, colour in ((-width / 2, "ours", "tab:blue"), (width / 2, peer, "tab:grey")):
        for i, runtime in enumerate(runtimes):
            row = next((r for r in rows if r.runtime == runtime and r.who == who), None)
            if row is None or row.accuracy is None:
                continue
            ax.plot(i + offset, row.accuracy, "o", color=colour)
            ax.annotate(f"{row.accuracy:.2f}", (i + offset, row.accuracy), textcoords="offset points",
                        xytext=(0, 7), ha="center", fontsize=8)
    ax.set_xticks(range(len(runtimes)), runtimes)
    ax.set_xlim(-0.6, len(runtimes) - 0.4)
    ax.margins(y=0.35)
    ax.set_ylabel("top-1 % (the run's validation split)")
    ax.grid(axis="y", alpha=0.3)
