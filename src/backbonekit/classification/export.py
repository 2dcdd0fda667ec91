"""ONNX export of a trained classifier: ``images`` (B, 3, S, S), uint8 0–255 (or float32 0–1), already resized and
centre-cropped as ``predict classify`` does → normalisation (the task's own) → ``logits`` and ``probabilities``."""
from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
from torch import nn

from backbonekit.classification.transforms import EVAL_CROP_FRACTION, SMALL_IMAGE
from backbonekit.io.onnx_export import (
    DEFAULT_OPSET, SCORE_TOLERANCE, ExportResult, example_images, export_module, file_metadata, run_onnx,
)

CLASSIFIER_OUTPUTS = ("logits", "probabilities")


class ClassifierForExport(nn.Module):
    """A trained ``ClassificationTask`` as logits and probabilities of its input images."""

    def __init__(self, task):
        super().__init__()
        self.task = task

    def forward(self, images: torch.Tensor):
        logits = self.task(images)
        return logits, logits.softmax(-1)


def export_classifier_onnx(trained, path: str | Path, opset: int = DEFAULT_OPSET,
                           input_dtype: str = "uint8") -> ExportResult:
    """Write a trained ``ClassificationTask`` as an ONNX file: images → logits and probabilities."""
    wrapper = ClassifierForExport(trained).eval()
    size = trained.cfg.image_size
    example = example_images(2, (size, size), input_dtype)
    return export_module(wrapper, example, path, opset, CLASSIFIER_OUTPUTS,
                         metadata=classifier_metadata(trained, input_dtype))


def classifier_metadata(trained, input_dtype: str) -> dict:
    """The file's metadata_props: classes in the order of the outputs, and ``predict classify``'s resize and crop."""
    size = trained.cfg.image_size
    shorter_side = size if size <= SMALL_IMAGE else round(size / EVAL_CROP_FRACTION)
    return file_metadata("classify", trained.model.model_name, trained.cfg.class_names, (size, size),
                         trained.normalize, input_dtype,
                         f"resize the shorter side to {shorter_side}, centre-crop {size}x{size}")


def verify_classifier_onnx(trained, path: str | Path, images: torch.Tensor) -> dict:
    with torch.no_grad():
        logits, probabilities = ClassifierForExport(trained).eval()(images)
    got_logits, got_probabilities = run_onnx(path, images)
    return {"max_logit_diff": float(np.abs(got_logits - logits.numpy()).max()),
            "max_logit": float(logits.abs().max()),
            "max_probability_diff": float(np.abs(got_probabilities - probabilities.numpy()).max()),
            "same_top1": bool((got_logits.argmax(1) == logits.numpy().argmax(1)).all())}


def check_onnx(trained, path: Path, args, make_images) -> bool:
    """onnxruntime against PyTorch on ``make_images((S, S))``, printed; True when they agree."""
    size = trained.cfg.image_size
    images = make_images((size, size))
    diff = verify_classifier_onnx(trained, path, images)
    print(f"onnxruntime vs PyTorch on {len(images)} synthetic images: max |Δlogit| "
          f"{diff['max_logit_diff']:.2e} (logits up to {diff['max_logit']:.2e}), max |Δprobability| "
          f"{diff['max_probability_diff']:.2e}, same top-1: {diff['same_top1']}")
    return diff["max_probability_diff"] <= SCORE_TOLERANCE


class OnnxClassifier:
    """A classifier's ONNX file in onnxruntime, called as ``predict``/``eval`` call the trained task: images (the
    file's input contract) → logits, with ``cfg`` from the file's metadata."""

    def __init__(self, runner):
        self.runner, self.device = runner, torch.device("cpu")
        meta = runner.metadata
        self.cfg = SimpleNamespace(class_names=list(meta["class_names"]), image_size=int(meta["input_size"][0]))

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(self.runner(images)[0])
