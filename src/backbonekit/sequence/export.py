"""ONNX export of a trained SeqFakeFormer: ``images`` (B, 3, S, S), uint8 0–255 (or float32 0–1), resized as
``predict sequence`` does → normalisation (0.5/0.5) → backbone and encoder once → 5 greedy decoding steps →
``labels`` (B, 5) int64, the edit ids in order and 0 after the sequence ends (the annotation format's label)."""
from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
from torch import nn

from backbonekit.io.onnx_export import (
    DEFAULT_OPSET, ExportResult, example_images, export_module, file_metadata, run_onnx,
)
from backbonekit.sequence.vocab import edit_names

SEQUENCE_OUTPUTS = ("labels",)


class SequenceForExport(nn.Module):
    """A trained ``SequenceTask`` as one function of the images; every sequence runs all 5 steps (no early exit, so
    the graph has no data-dependent control flow; the labels are the same)."""

    def __init__(self, task):
        super().__init__()
        self.normalize, self.net = task.normalize, task.model

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net.generate(self.normalize(images), early_stop=False)


def export_sequence_onnx(task, path: str | Path, opset: int = DEFAULT_OPSET, input_dtype: str = "uint8") -> ExportResult:
    size = task.cfg.image_size
    # class_names: the edit of each label id (0: no edit, after the sequence ends).
    metadata = file_metadata("sequence", task.model.model_name, edit_names(task.cfg.subset), (size, size),
                             task.normalize, input_dtype, f"resize to {size}x{size} (no crop)",
                             subset=task.cfg.subset, backbone=task.cfg.backbone)
    return export_module(SequenceForExport(task).eval(), example_images(2, (size, size), input_dtype), path, opset,
                         SEQUENCE_OUTPUTS, metadata=metadata)


def verify_sequence_onnx(task, path: str | Path, images: torch.Tensor) -> dict:
    """onnxruntime's labels against ``task(images)`` (PyTorch's batched greedy decoding with early exit)."""
    with torch.no_grad():
        expected = task(images).numpy()
    (got,) = run_onnx(path, images)
    return {"same_labels": bool(np.array_equal(got, expected)), "rows": len(expected),
            "rows_equal": int((got == expected).all(1).sum())}


def check_onnx(task, path: Path, args, make_images) -> bool:
    """onnxruntime against PyTorch on ``make_images((S, S))``, printed; True when they agree."""
    size = task.cfg.image_size
    diff = verify_sequence_onnx(task, path, make_images((size, size)))
    print(f"onnxruntime vs PyTorch on {diff['rows']} synthetic images: identical edit sequences for "
          f"{diff['rows_equal']}/{diff['rows']}")
    return diff["same_labels"]


class OnnxSequence:
    """A sequence model's ONNX file in onnxruntime, called like the trained task: images → (B, 5) edit labels."""

    def __init__(self, runner):
        self.runner, self.device = runner, torch.device("cpu")
        meta = runner.metadata
        self.cfg = SimpleNamespace(subset=meta["subset"], image_size=int(meta["input_size"][0]),
                                   backbone=meta.get("backbone"))

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(self.runner(images)[0]).long()
