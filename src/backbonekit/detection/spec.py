"""Object detection (EfficientDet) as the shared routines see it (``training.task_spec``)."""
from __future__ import annotations

from backbonekit.detection.commands import add_commands
from backbonekit.training.task_spec import TaskSpec, register_task


def task_class() -> type:
    from backbonekit.detection.task import DetectionTask

    return DetectionTask


def load(path, fuse: bool = False, read: tuple | None = None):
    from backbonekit.detection.task import load as load_detector

    return load_detector(path, fuse=fuse, read=read)


def export(trained, out, opset: int, args) -> tuple:
    from backbonekit.detection.export import export_detector_onnx

    result = export_detector_onnx(trained, out, opset, score_threshold=args.score_threshold,
                                  max_detections=args.max_detections, input_dtype=args.input_dtype)
    return result, "detector: normalisation, EfficientDet, box decoding and per-class NMS in the graph"


def check_export(trained, path, args, make_images) -> bool:
    from backbonekit.detection.export import check_onnx

    return check_onnx(trained, path, args, make_images)


def onnx_model(runner):
    from backbonekit.detection.export import OnnxDetector

    return OnnxDetector(runner)


def explain(trained, paths, options) -> list:
    from backbonekit.detection.explain import explain_detector

    return explain_detector(trained, paths, options)


def serving(model, device, options):
    from backbonekit.detection.serve import Serving

    return Serving(model, device, options)


def int8():
    from backbonekit.detection import int8 as module

    return module


SPEC = register_task(TaskSpec("detect", __name__, add_commands, task_class, load, export, check_export,
                              export_options=("score_threshold", "max_detections"),
                              onnx_model=onnx_model, int8=int8, explain=explain, serving=serving))
