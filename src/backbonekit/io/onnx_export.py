"""ONNX export of any module that takes images: torch's dynamo exporter with a dynamic batch, quiet, one
self-contained file; the file's description; running it in onnxruntime. Each task wraps its own model
(``detection/export.py``, ``classification/export.py``); the input contract is every task's: uint8 0–255 or
float32 0–1 images (``nn/normalize.py``).

Exporting needs ``onnx`` and ``onnxscript`` (``pip install 'backbonekit[export]'``: torch's dynamo-based exporter);
checking the file needs ``onnxruntime``.

Each file carries what a user needs beside the graph as ONNX ``metadata_props``, every value a JSON string
(``json.loads(value)``): the task, class names, input size, the input contract and the normalisation inside the
graph (``file_metadata``).
"""
from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from backbonekit.errors import ConfigError

# torch's dynamo exporter writes opset 18 at the lowest (asked for less, it writes 18 anyway): the default, since
# older runtimes load it too.
DEFAULT_OPSET = MIN_OPSET = 18
INPUT_DTYPES = {"uint8": torch.uint8, "float32": torch.float32}
# Agreement expected between onnxruntime and PyTorch, whose float32 kernels differ in summation order: boxes to 0.1%
# of the image's longer side (a box decoded from a large anchor and clipped keeps the rounding of its large
# coordinates), scores and probabilities to 1e-3.
BOX_TOLERANCE, SCORE_TOLERANCE = 1e-3, 1e-3


@dataclass
class ExportResult:
    path: Path
    opset: int
    inputs: list[tuple[str, list, str]]   # (name, shape with "batch" for the dynamic axis, element type)
    outputs: list[tuple[str, list, str]]


def example_images(batch: int, image_size: tuple[int, int], input_dtype: str = "uint8") -> torch.Tensor:
    """Random images in the input contract's range for ``input_dtype``: uint8 0–255, float32 0–1."""
    if input_dtype not in INPUT_DTYPES:
        raise ConfigError(f"--input-dtype must be one of {', '.join(INPUT_DTYPES)}, got {input_dtype!r}")
    images = torch.randint(0, 256, (batch, 3, *image_size), generator=torch.Generator().manual_seed(0))
    return images.to(torch.uint8) if input_dtype == "uint8" else images.to(INPUT_DTYPES[input_dtype]) / 255


def export_module(wrapper: nn.Module, example: torch.Tensor, path, opset: int, output_names, translations=None,
                  metadata: dict | None = None):
    """``metadata`` (``file_metadata``) is written into the file's ``metadata_props``."""
    require("onnx", "onnxscript")
    if opset < MIN_OPSET:
        raise ConfigError(f"--opset must be at least {MIN_OPSET} (torch's ONNX exporter), got {opset}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    batch = torch.export.Dim("batch", min=1, max=4096)
    # The exporter narrates each stage on stdout and warns about its own internals; the CLI prints its summary.
    with _quiet(), torch.no_grad():
        program = torch.onnx.export(wrapper, (example,), dynamo=True, opset_version=opset, input_names=["images"],
                                    output_names=list(output_names), dynamic_shapes={"images": {0: batch}},
                                    custom_translation_table=translations() if translations else None)
        program.save(str(path), external_data=False)  # one self-contained file (weights < 2 GB)
    if metadata:
        write_metadata(path, metadata)
    return describe(path)


def file_metadata(task: str, architecture: str, class_names, image_size: tuple[int, int], normalize: nn.Module,
                  input_dtype: str, preprocessing: str, **extra) -> dict:
    """What an ONNX file's user needs and the graph does not say: classes (indexed as the outputs), the input the
    graph expects, and the normalisation it applies itself (so the caller must not normalise again)."""
    scale = "0–255" if input_dtype == "uint8" else "0–1"
    return {
        "backbonekit_task": task, "architecture": architecture, "class_names": list(class_names),
        "input_size": [int(v) for v in image_size],
        "input": {"name": "images", "layout": "NCHW", "channels": "RGB", "dtype": input_dtype, "range": scale,
                  "preprocessing": preprocessing},
        "normalization": {"mean": _rounded(normalize.mean), "std": _rounded(normalize.std),
                          "in_graph": f"(images / {'255' if input_dtype == 'uint8' else '1'} - mean) / std"},
        **extra,
    }


def _rounded(values: torch.Tensor) -> list[float]:
    return [round(v, 6) for v in values.flatten().tolist()]


def write_metadata(path: str | Path, metadata: dict) -> None:
    """Sets ``metadata`` as the file's ``metadata_props``, each value JSON-encoded."""
    import onnx

    model = onnx.load(str(path))
    props = {p.key: p.value for p in model.metadata_props}  # any the exporter wrote stay
    onnx.helper.set_model_props(model, {**props, **{k: json.dumps(v) for k, v in metadata.items()}})
    onnx.save(model, str(path))


def read_metadata(path: str | Path) -> dict:
    """The file's ``metadata_props``, JSON values decoded."""
    import onnx

    props = onnx.load(str(path), load_external_data=False).metadata_props
    return {p.key: _json_or_text(p.value) for p in props}


def _json_or_text(value: str):
    try:
        return json.loads(value)
    except ValueError:
        return value  # written by another tool


@contextlib.contextmanager
def _quiet():
    loggers = [logging.getLogger(name) for name in ("onnx_ir", "onnxscript", "torch.onnx")]
    levels = [logger.level for logger in loggers]
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        try:
            for logger in loggers:
                logger.setLevel(logging.ERROR)
            yield
        finally:
            for logger, level in zip(loggers, levels):
                logger.setLevel(level)


def describe(path: str | Path) -> ExportResult:
    """Inputs and outputs of an ONNX file as (name, shape, element type)."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)

    def values(infos):
        return [(v.name, [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim],
                 onnx.helper.tensor_dtype_to_np_dtype(v.type.tensor_type.elem_type).name) for v in infos]

    opset = next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    return ExportResult(Path(path), opset, values(model.graph.input), values(model.graph.output))


def require(*modules: str) -> None:
    """Fail with one line, naming what installs them, when optional packages are missing: the ``export`` extra for
    the exporter's, onnxruntime on its own (only the check runs it)."""
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        install = "onnxruntime" if missing == ["onnxruntime"] else "'backbonekit[export]'"
        raise ConfigError(f"ONNX {'checking' if install == 'onnxruntime' else 'export'} needs "
                          f"{' and '.join(missing)}: pip install {install}")


def run_onnx(path: str | Path, images: torch.Tensor) -> list[np.ndarray]:
    """The ONNX file's outputs for ``images`` on onnxruntime's CPU provider."""
    return OnnxRunner(path)(images)


class OnnxRunner:
    """An ONNX file of ours on onnxruntime's CPU provider, with its metadata: called with images in the file's input
    contract (uint8 0–255 are converted for a float32 file) → the graph's outputs as numpy arrays."""

    def __init__(self, path: str | Path, spin: bool = True):
        require("onnxruntime")
        import onnxruntime

        self.path = Path(path)
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()  # as many threads as PyTorch is allowed, no more
        if not spin:  # idle threads then sleep at once, rather than take the CPU from whatever runs next
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self.metadata = read_metadata(self.path)
            self.session = onnxruntime.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
        except Exception as e:  # noqa: BLE001 - protobuf and onnxruntime raise their own kinds for a bad file
            first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
            raise ConfigError(f"{self.path}: not a readable ONNX file ({first})") from None
        self.input_dtype = self.metadata.get("input", {}).get("dtype", "uint8")

    def __call__(self, images: torch.Tensor) -> list[np.ndarray]:
        if self.input_dtype == "float32" and images.dtype == torch.uint8:
            images = images.float() / 255
        return self.session.run(None, {"images": images.detach().cpu().contiguous().numpy()})
