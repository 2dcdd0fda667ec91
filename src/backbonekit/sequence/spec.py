"""Sequential manipulation detection (SeqFakeFormer) as the shared routines see it (``training.task_spec``)."""
from __future__ import annotations

from backbonekit.sequence.commands import add_commands
from backbonekit.training.task_spec import TaskSpec, register_task


def task_class() -> type:
    from backbonekit.sequence.task import SequenceTask

    return SequenceTask


def load(path, fuse: bool = False, read: tuple | None = None):
    from backbonekit.sequence.task import load as load_sequence

    return load_sequence(path, fuse=fuse, read=read)


def export(trained, out, opset: int, args) -> tuple:
    from backbonekit.sequence.export import export_sequence_onnx

    result = export_sequence_onnx(trained, out, opset, input_dtype=args.input_dtype)
    return result, "sequence model: normalisation, backbone, transformer, 5 greedy decoding steps in the graph"


def check_export(trained, path, args, make_images) -> bool:
    from backbonekit.sequence.export import check_onnx

    return check_onnx(trained, path, args, make_images)


def onnx_model(runner):
    from backbonekit.sequence.export import OnnxSequence

    return OnnxSequence(runner)


def explain(trained, paths, options) -> list:
    from backbonekit.sequence.explain import explain_sequence

    return explain_sequence(trained, paths, options)


def serving(model, device, options):
    from backbonekit.sequence.serve import Serving

    return Serving(model, device, options)


def int8():
    from backbonekit.sequence import int8 as module

    return module


SPEC = register_task(TaskSpec("sequence", __name__, add_commands, task_class, load, export, check_export,
                              onnx_model=onnx_model, int8=int8, explain=explain, serving=serving))
