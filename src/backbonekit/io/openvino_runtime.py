"""An exported ONNX file run by OpenVINO on the CPU, called like ``onnx_export.OnnxRunner`` (images in the file's
input contract → the graph's outputs as numpy arrays, with the file's metadata).

Precision is explicit: OpenVINO's CPU plugin computes in bf16 by default where the processor has bf16 units, which
moved detector scores by ~1e-1 in our measurements; ``fp32`` (the default here) asks for f32 inference, ``bf16``
opts in (``bf16_error`` measures what it costs on given images).
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import torch

from backbonekit.errors import ConfigError
from backbonekit.io.onnx_export import read_metadata

PRECISIONS = {"fp32": "f32", "bf16": "bf16"}


class OpenVinoRunner:
    def __init__(self, path: str | Path, precision: str = "fp32"):
        if importlib.util.find_spec("openvino") is None:
            raise ConfigError("--runtime openvino needs OpenVINO: pip install openvino")
        if precision not in PRECISIONS:
            raise ConfigError(f"--precision must be one of {', '.join(PRECISIONS)} with OpenVINO, got {precision!r}")
        import openvino

        self.path, self.precision = Path(path), precision
        config = {"INFERENCE_PRECISION_HINT": PRECISIONS[precision],
                  "INFERENCE_NUM_THREADS": torch.get_num_threads()}  # as many threads as PyTorch may use
        try:
            self.metadata = read_metadata(self.path)
            core = openvino.Core()
            self.compiled = core.compile_model(core.read_model(str(self.path)), "CPU", config)
        except Exception as e:  # noqa: BLE001 - protobuf and OpenVINO raise their own kinds for a bad file
            first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
            raise ConfigError(f"{self.path}: not an ONNX file OpenVINO can run ({first})") from None
        self.input_dtype = self.metadata.get("input", {}).get("dtype", "uint8")
        self.request = self.compiled.create_infer_request()

    def __call__(self, images: torch.Tensor) -> list[np.ndarray]:
        if self.input_dtype == "float32" and images.dtype == torch.uint8:
            images = images.float() / 255
        results = self.request.infer({"images": images.detach().cpu().contiguous().numpy()})
        return [np.array(results[output]) for output in self.compiled.outputs]


def bf16_error(path: str | Path, images: torch.Tensor) -> float:
    """The largest absolute difference between the file's float outputs in bf16 and in fp32 on ``images``."""
    exact, fast = OpenVinoRunner(path, "fp32")(images), OpenVinoRunner(path, "bf16")(images)
    return max((float(np.abs(a.astype(np.float64) - b).max()) for a, b in zip(exact, fast)
                if a.dtype.kind == "f" and a.size), default=0.0)
