"""A task registered from outside the package: which colour channel is brightest in an image. It exists to show
that a task needs nothing but its own folder (spec, commands, LightningModule) to get train, eval, predict and
export through the real CLI."""
from __future__ import annotations

from backbonekit.training.task_spec import TaskSpec, register_task


def add_commands(verbs: dict) -> None:
    from toy_task.commands import add_commands as add

    add(verbs)


def task_class() -> type:
    from toy_task.task import ToyTask

    return ToyTask


def load(path, fuse: bool = False, read=None):
    from backbonekit.training.task_io import load_task
    from toy_task.task import ToyTask

    return load_task(path, ToyTask, "toy", fuse, read)


def export(trained, out, opset: int, args) -> tuple:
    from backbonekit.io.onnx_export import example_images, export_module

    size = trained.hparams["image_size"]
    return export_module(trained.eval(), example_images(2, (size, size), args.input_dtype), out, opset,
                         ("logits",)), "toy: brightest channel"


def check_export(trained, path, args, make_images) -> bool:
    import torch

    from backbonekit.io.onnx_export import run_onnx

    size = trained.hparams["image_size"]
    images = make_images((size, size))
    with torch.no_grad():
        expected = trained(images).numpy()
    return bool(abs(run_onnx(path, images)[0] - expected).max() < 1e-4)


SPEC = register_task(TaskSpec("toy", __name__, add_commands, task_class, load, export, check_export))
