"""Image classification as the shared routines see it (``training.task_spec``)."""
from __future__ import annotations

from backbonekit.classification.commands import add_commands
from backbonekit.training.task_spec import TaskSpec, register_task


def task_class() -> type:
    from backbonekit.classification.task import ClassificationTask

    return ClassificationTask


def load(path, fuse: bool = False, read: tuple | None = None):
    from backbonekit.classification.task import load as load_classifier

    return load_classifier(path, fuse=fuse, read=read)


def export(trained, out, opset: int, args) -> tuple:
    from backbonekit.classification.export import export_classifier_onnx

    result = export_classifier_onnx(trained, out, opset, input_dtype=args.input_dtype)
    return result, "classifier: normalisation, network, softmax in the graph"


def check_export(trained, path, args, make_images) -> bool:
    from backbonekit.classification.export import check_onnx

    return check_onnx(trained, path, args, make_images)


def onnx_model(runner):
    from backbonekit.classification.export import OnnxClassifier

    return OnnxClassifier(runner)


def explain(trained, paths, options) -> list:
    from backbonekit.classification.explain import explain_classifier

    return explain_classifier(trained, paths, options)


def serving(model, device, options):
    from backbonekit.classification.serve import Serving

    return Serving(model, device, options)


def int8():
    from backbonekit.classification import int8 as module

    return module


SPEC = register_task(TaskSpec("classify", __name__, add_commands, task_class, load, export, check_export,
                              onnx_model=onnx_model, int8=int8, explain=explain, backbone_source=True,
                              serving=serving))
