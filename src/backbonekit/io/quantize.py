"""Post-training static int8 of an exported ONNX file, calibrated on given images, for the runtime that will run it:
onnxruntime's static quantisation (QDQ, per-channel int8 weights, uint8 activations) or NNCF's (the quantiser
OpenVINO's own tools use, here on the ONNX graph, so the int8 file is ONNX with QDQ pairs that OpenVINO runs as int8).

What stays float is chosen per node from what the exporter records: each node's module path
(``pkg.torch.onnx.name_scopes``), so a task can quantise only its backbone (a detector's heads and post-processing,
a sequence model's transformer stay float), and its layer type (``layer_type``), so a type whose measured error is
too large can be left float as a whole. The file keeps the fp32 file's metadata, plus ``precision`` and what was
kept float.

Needs the ``quantize`` extra (``pip install 'backbonekit[quantize]'``): onnx, onnxruntime, and nncf for OpenVINO.
"""
from __future__ import annotations

import ast
import contextlib
import importlib.util
import io
import logging
import warnings
from collections import Counter
from pathlib import Path
from typing import Iterable

import numpy as np

from backbonekit.errors import ConfigError

RUNTIMES = ("onnxruntime", "openvino")
# The layer types a node falls in (``layer_type``): the unit of the keep-float decision. ``other``: the ops without
# weights (residual adds, activations such as SiLU's product, pooling, concatenation) whose outputs a quantiser may
# also round to int8.
LAYER_TYPES = ("conv", "depthwise", "se", "linear", "other")
QUANTISABLE_OPS = {"Conv": "conv", "Gemm": "linear", "MatMul": "linear"}
CALIBRATION_BATCH = 8
# The ops onnxruntime quantises: those with weights and those int8 kernels chain through. Not Pad, the normalisations,
# Where or Gather, whose constant inputs onnxruntime's QDQ quantiser cannot give shared parameters (it raises).
ORT_OPS = ("Conv", "Gemm", "MatMul", "Add", "Mul", "Relu", "Clip", "Sigmoid", "MaxPool", "AveragePool",
           "GlobalAveragePool", "Concat", "Resize")


def require(runtime: str) -> None:
    """One line naming the extra when a package int8 needs for ``runtime`` is missing."""
    if runtime not in RUNTIMES:
        raise ConfigError(f"int8 runs on {' or '.join(RUNTIMES)}, not {runtime}")
    needed = ["onnx", "onnxruntime"] + (["nncf", "openvino"] if runtime == "openvino" else [])
    missing = [m for m in needed if importlib.util.find_spec(m) is None]
    if missing:
        raise ConfigError(f"int8 for {runtime} needs {' and '.join(missing)}: pip install 'backbonekit[quantize]'")


def module_path(node) -> str:
    """The module a node was exported from, relative to the exported wrapper (``task.model.stages.1.0.se``), or ''
    for the wrapper's own code (a detector's decoding and NMS)."""
    for prop in node.metadata_props:
        if prop.key == "pkg.torch.onnx.name_scopes":
            scopes = ast.literal_eval(prop.value)
            return scopes[-2] if len(scopes) > 1 else ""
    return ""


def layer_type(node) -> str:
    """``se`` (any node inside a squeeze-excitation module: its pooling, convolutions, gate and product),
    ``depthwise`` (a grouped convolution), ``conv``, ``linear``, or ``other`` (an op without weights)."""
    if any(part in ("se", "squeeze_excite") for part in module_path(node).split(".")):
        return "se"
    kind = QUANTISABLE_OPS.get(node.op_type)
    if kind is None:
        return "other"
    group = next((a.i for a in node.attribute if a.name == "group"), 1)
    return "depthwise" if kind == "conv" and group > 1 else kind


def float_nodes(model, quantised_scopes: Iterable[str], float_types: Iterable[str]) -> tuple[list[str], dict]:
    """Names of the nodes kept float: outside every module path in ``quantised_scopes`` (a prefix; '' is the whole
    graph), or of a type in ``float_types``; and counts of the layers with weights (and of ``other`` ops) by
    "type int8|float"."""
    scopes, kept_types = tuple(quantised_scopes), set(float_types)
    unknown = kept_types - set(LAYER_TYPES)
    if unknown:
        raise ConfigError(f"--keep-float takes {', '.join(LAYER_TYPES)}; got {', '.join(sorted(unknown))}")
    names, counts = [], Counter()
    for node in model.graph.node:
        path, kind = module_path(node), layer_type(node)
        inside = any(s == "" or path == s or path.startswith(s + ".") for s in scopes)
        if not inside or kind in kept_types:
            names.append(node.name)
        if node.op_type in QUANTISABLE_OPS or kind == "other":
            counts[f"{kind} {'int8' if inside and kind not in kept_types else 'float'}"] += 1
    return names, dict(sorted(counts.items()))


def quantize_onnx(source: str | Path, out: str | Path, runtime: str, images: np.ndarray, keep_float: list[str],
                  metadata: dict) -> None:
    """Write ``source`` quantised to int8 for ``runtime`` as ``out``, calibrated on ``images`` (the file's input
    contract, N×3×H×W), with the nodes named in ``keep_float`` left float; ``metadata`` joins the file's own."""
    import onnx

    from backbonekit.io.onnx_export import write_metadata

    require(runtime)
    batches = [images[i:i + CALIBRATION_BATCH] for i in range(0, len(images), CALIBRATION_BATCH)]
    with _quiet():
        if runtime == "onnxruntime":
            _quantize_ort(source, out, batches, keep_float)
        else:
            import nncf

            dataset = nncf.Dataset([{"images": b} for b in batches])
            quantised = nncf.quantize(onnx.load(str(source)), dataset, subset_size=len(images),
                                      ignored_scope=nncf.IgnoredScope(names=keep_float, validate=False))
            onnx.save(quantised, str(out))
    write_metadata(out, metadata)  # NNCF keeps only some of the source's: written again, with the int8 facts


def _quantize_ort(source, out, batches: list[np.ndarray], keep_float: list[str]) -> None:
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.batches = iter(batches)

        def get_next(self):
            batch = next(self.batches, None)
            return None if batch is None else {"images": batch}

    quantize_static(str(source), str(out), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, nodes_to_exclude=keep_float,
                    op_types_to_quantize=list(ORT_OPS))


@contextlib.contextmanager
def _quiet():
    """The quantisers log progress bars and advice on every call; the command prints its own summary."""
    root, nncf_log = logging.getLogger(), logging.getLogger("nncf")
    levels = root.level, nncf_log.level
    quiet_out, quiet_err = contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO())
    with warnings.catch_warnings(), quiet_out, quiet_err:
        warnings.simplefilter("ignore")
        root.setLevel(logging.ERROR)
        nncf_log.setLevel(logging.ERROR)
        try:
            yield
        finally:
            root.setLevel(levels[0])
            nncf_log.setLevel(levels[1])
