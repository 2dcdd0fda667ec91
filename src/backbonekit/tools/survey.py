"""The architecture survey: for each model at its default input size, its depth, parameters, FLOPs, measured CPU
speed and feature levels, one row per model (``survey_rows``), for ``backbonekit models --table``.

How layers are counted. Papers give a network's depth as its number of weight layers (convolutions and fully
connected layers) on the longest path from input to output: AlexNet 8, VGG-16 16, GoogLeNet 22, ResNet-50 50,
DenseNet-121 121. ``layers`` measures exactly that: one forward pass with autograd on, every ``nn.Conv2d``/``nn.Linear``
output marked in the graph, then the longest input → output path counted in marked nodes. Parallel branches
(Inception's, a ResNet shortcut's projection) do not add depth; auxiliary heads do not run in eval mode. Weight
layers that only modulate another layer do not count: squeeze-excitation gates (SE-ResNet-50 stays 50) and the
offset/mask predictors of deformable convs. ``conv_fc`` is the plain count of Conv2d + Linear modules that ran
(GoogLeNet: 58, ResNet-50: 54 with its 4 projection shortcuts, SE-ResNet-50: 86), for comparison.

FLOPs are ``tools.summary.summarize``'s (``torch.utils.flop_counter``, 2 per multiply-add; a deformable conv counts
as the convolution it computes). Speed is inference images/s at batch 1 in eval mode on this machine's CPU: the
median of a few timed iterations after warm-up.
"""
from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Callable, Iterable, Sequence

import torch
import torch.nn as nn

from backbonekit.io.figures import save_figure
from backbonekit.models.registry import CLASSIFIER, create_model, list_models
from backbonekit.tools.summary import output_tensors, summarize

# Name prefix → family, first match wins.
FAMILIES = (
    ("seresnext", "SE-ResNeXt"), ("seresnet", "SE-ResNet"), ("resnext", "ResNeXt"), ("wide_resnet", "Wide ResNet"),
    ("resnet", "ResNet"), ("alexnet", "AlexNet"), ("vgg", "VGG"), ("googlenet", "GoogLeNet"),
    ("densenet", "DenseNet"), ("tf_efficientnet", "EfficientNet (TF)"), ("efficientnet", "EfficientNet"),
)

ModelSpec = str | tuple[str, dict]


def family_of(name: str, kwargs: dict | None = None) -> str:
    family = next((f for prefix, f in FAMILIES if name.startswith(prefix)), name)
    if kwargs and kwargs.get("deform_stages"):
        family += f" + DCNv{kwargs.get('deform_version', 2)}"
    return family


def _gate_layers(model: nn.Module) -> set[int]:
    """ids of the Conv2d/Linear modules that modulate another layer instead of adding depth."""
    from backbonekit.models.deform_conv import DeformConv2d
    from backbonekit.models.resnet import SEModule
    from backbonekit.nn.layers import SqueezeExcite

    exempt: set[int] = set()
    for m in model.modules():
        if isinstance(m, (SEModule, SqueezeExcite)):
            exempt.update(id(c) for c in m.modules())
        elif isinstance(m, DeformConv2d):
            exempt.add(id(m.conv_offset))
    return exempt


def count_layers(model: nn.Module, input_size: Sequence[int] = (3, 224, 224)) -> tuple[int, int]:
    """(depth in weight layers on the longest path, number of Conv2d + Linear modules that ran); see the module
    docstring. The model is run once in eval mode with autograd on (its mode is restored)."""
    exempt, ran, hooks = _gate_layers(model), [0], []

    def mark(module, _inputs, output):
        ran[0] += 1
        if id(module) not in exempt and isinstance(output, torch.Tensor) and output.grad_fn is not None:
            output.grad_fn.metadata["backbonekit_weight_layer"] = True

    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            hooks.append(m.register_forward_hook(mark))
    was_training = model.training
    model.eval()
    try:
        device = next(model.parameters()).device
        with torch.enable_grad():
            out = model(torch.zeros(1, *input_size, device=device))
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    roots = [t.grad_fn for t in output_tensors(out) if t.grad_fn is not None]
    return _longest_marked_path(roots), ran[0]


def _longest_marked_path(roots) -> int:
    # Iterative post-order over the autograd graph (deep nets overflow Python's recursion limit).
    depth: dict[object, int] = {}
    stack = [(r, False) for r in roots]
    while stack:
        node, expanded = stack.pop()
        if node in depth:
            continue
        children = [n for n, _ in node.next_functions if n is not None]
        if not expanded:
            stack.append((node, True))
            stack.extend((c, False) for c in children if c not in depth)
            continue
        own = 1 if node.metadata.get("backbonekit_weight_layer") else 0
        depth[node] = own + max((depth[c] for c in children), default=0)
    return max((depth[r] for r in roots), default=0)


def measure_speed(model: nn.Module, input_size: Sequence[int], warmup: int = 2, iters: int = 5,
                  min_seconds: float = 0.5) -> float:
    """Inference images/s at batch 1 (eval mode, inference_mode): median over ≥ ``iters`` timed runs."""
    was_training = model.training
    model.eval()
    x = torch.randn(1, *input_size, device=next(model.parameters()).device)
    times = []
    try:
        with torch.inference_mode():
            for _ in range(warmup):
                model(x)
            start = time.perf_counter()
            while len(times) < iters or (time.perf_counter() - start < min_seconds and len(times) < 100):
                t = time.perf_counter()
                model(x)
                times.append(time.perf_counter() - t)
    finally:
        model.train(was_training)
    return 1.0 / statistics.median(times)


def _spec(item: ModelSpec) -> tuple[str, dict]:
    return (item, {}) if isinstance(item, str) else (item[0], dict(item[1]))


def survey_rows(names: Iterable[ModelSpec] | None = None, image_size: int | Sequence[int] | None = None,
                threads: int | None = None, measure_speed: bool = True,
                on_model: Callable[[int, int, str], None] | None = None) -> list[dict]:
    """One dict per model: name, family, input_size (H, W), layers, conv_fc, params, gflops, images_per_s (None
    when not measured), levels ("channels@stride" of every feature level).

    names: registered names (default: every classification model), or ``(name, kwargs)`` pairs such as
    ``("resnet50", {"deform_stages": (3, 4)})``; image_size: one size for all instead of each model's default
    (an int or (H, W)); threads: torch threads while measuring (restored after); on_model(i, n, name): called as
    the i-th of n models starts (a survey of every model takes minutes: the caller shows progress).
    """
    specs = [_spec(n) for n in (names if names is not None else list_models(task=CLASSIFIER))]
    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    rows = []
    try:
        for i, (name, kwargs) in enumerate(specs, 1):
            if on_model is not None:
                on_model(i, len(specs), name + "".join(f" {k}={v}" for k, v in kwargs.items()))
            model = create_model(name, **kwargs).eval()
            if image_size is None:
                h, w = model.pretrained_cfg["input_size"][1:]
            else:
                h, w = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
            size = (3, h, w)
            summary = summarize(model, size)
            layers, conv_fc = count_layers(model, size)
            label = name + "".join(f" {k}={v}" for k, v in kwargs.items())
            rows.append({
                "name": label, "family": family_of(name, kwargs), "input_size": (h, w), "layers": layers,
                "conv_fc": conv_fc, "params": summary.total_params, "gflops": summary.flops / 1e9,
                "images_per_s": _speed(model, size) if measure_speed else None,
                "levels": " ".join(f"{i['num_chs']}@{i['reduction']}" for i in model.feature_info),
            })
            del model
    finally:
        torch.set_num_threads(before)
    return rows


def _speed(model: nn.Module, size) -> float:
    return measure_speed(model, size)


COLUMNS = (("model", "name", "{}"), ("family", "family", "{}"), ("input", "input_size", "{0[0]}×{0[1]}"),
           ("layers", "layers", "{}"), ("conv+fc", "conv_fc", "{}"), ("params", "params", "{:,}"),
           ("GFLOPs", "gflops", "{:.2f}"), ("img/s", "images_per_s", "{:.1f}"), ("levels (ch@stride)", "levels", "{}"))


def format_rows(rows: list[dict]) -> str:
    """The rows as a plain-text table (the CLI renders them with rich)."""
    cells = [[title for title, _, _ in COLUMNS]]
    for row in rows:
        cells.append(["-" if row.get(key) is None else fmt.format(row[key]) for _, key, fmt in COLUMNS])
    widths = [max(len(r[i]) for r in cells) for i in range(len(COLUMNS))]
    right = {"layers", "conv+fc", "params", "GFLOPs", "img/s"}
    lines = []
    for r in cells:
        lines.append("  ".join(c.rjust(w) if COLUMNS[i][0] in right else c.ljust(w)
                               for i, (c, w) in enumerate(zip(r, widths))).rstrip())
    return "\n".join(lines)


if __name__ == "__main__":  # python -m backbonekit.tools.survey [names…]
    import sys

    print(format_rows(survey_rows(sys.argv[1:] or None, threads=1)))


def plot_survey(rows: list[dict], path: str | Path, title: str = "") -> Path:
    """Measured images/s against parameters and against GFLOPs, one point per model labelled with its name and
    coloured by family (log axes: the survey spans two orders of magnitude)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    plain = matplotlib.ticker.FuncFormatter(lambda value, _: f"{value:g}")
    rows = [r for r in rows if r.get("images_per_s")]
    families = sorted({r["family"] for r in rows})
    colours = {family: plt.get_cmap("tab10")(i % 10) for i, family in enumerate(families)}
    fig, axes = plt.subplots(1, 2, figsize=(12, 5), sharey=True, layout="constrained")
    for ax, key, label in ((axes[0], "params", "parameters (millions)"), (axes[1], "gflops", "GFLOPs per image")):
        for r in rows:
            x = r[key] / 1e6 if key == "params" else r[key]
            ax.scatter(x, r["images_per_s"], color=colours[r["family"]], label=r["family"], s=30)
            ax.annotate(r["name"], (x, r["images_per_s"]), fontsize=7, xytext=(3, 3), textcoords="offset points")
        ax.set_xscale("log")
        ax.set_yscale("log")
        for axis in (ax.xaxis, ax.yaxis):  # 20, 30, 50 rather than 2×10¹
            axis.set_major_formatter(plain)
            axis.set_minor_formatter(plain)
        ax.set_xlabel(label)
        ax.grid(True, which="both", alpha=0.3)
    axes[0].set_ylabel("images/s, batch 1 (measured here)")
    handles = {label: h for h, label in zip(*axes[0].get_legend_handles_labels())}
    fig.legend(handles.values(), handles.keys(), loc="outside right upper", fontsize=8)
    fig.suptitle(title or f"{len(rows)} models, {torch.get_num_threads()} threads", fontsize=10)
    return save_figure(fig, path)
