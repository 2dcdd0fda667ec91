"""``backbonekit explain TASK``: the options every task shares and the one path from a checkpoint to its task's
``explain`` (the file read once; another task's checkpoint is named as such)."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Iterator

from backbonekit.errors import ConfigError


def add_explain_arguments(p: argparse.ArgumentParser, cams: bool = True) -> None:
    """The shared options; ``cams=False`` for a task whose maps are not CAMs (sequence: attention), without
    ``--method`` and ``--layer``."""
    from backbonekit.explain import METHODS
    from backbonekit.training.run_args import add_device_argument
    from backbonekit.training.train_args import add_skip_bad_argument, positive_int

    p.add_argument("--checkpoint", required=True, help="best.ckpt, last.ckpt or best.safetensors of a run")
    p.add_argument("paths", nargs="+", metavar="IMAGE", help="image files or folders")
    if cams:
        p.add_argument("--method", choices=METHODS, default=None,
                       help="the CAM method (grad-cam's); default: gradcam (classify), layercam (detect)")
        p.add_argument("--layer", help="the module whose activations are explained (e.g. layer3, "
                                       "backbone.body.stages.2); default: a level of the backbone, see docs/explain.md")
    p.add_argument("--out", help="folder for the PNGs (default: explain/ in the checkpoint's run folder)")
    p.add_argument("--feature-maps", type=positive_int, default=None, metavar="N",
                   help="also draw the first N channels of every backbone level, one PNG per image")
    add_skip_bad_argument(p)
    add_device_argument(p)


def options_from_args(args: argparse.Namespace, **task_options):
    from backbonekit.explain import ExplainOptions

    return ExplainOptions(method=getattr(args, "method", None), layer=getattr(args, "layer", None), out=args.out,
                          feature_maps=args.feature_maps or 0,
                          device=args.device, skip_bad_images=args.skip_bad_images, **task_options)


def cmd_explain(args: argparse.Namespace, task: str, **task_options) -> int:
    for path in explain_files(args.checkpoint, args.paths, task, options_from_args(args, **task_options)):
        print(path, flush=True)
    return 0


def explain_files(checkpoint, paths: list[str], task: str | None, options) -> Iterator[Path]:
    """The files the task writes, each as soon as it is written (a bad image later still leaves the earlier ones
    named). The checkpoint's task must be registered (``backbonekit.tasks.explain`` registers the built-in ones)."""
    from backbonekit.io.output import output_folder
    from backbonekit.training.inference import pick_device
    from backbonekit.training.task_io import read_trained
    from backbonekit.training.task_spec import get_task

    # Made by the first figure written (``save_figure``): a refused call or unreadable images leave no empty folder.
    options.out = output_folder(options.out or Path(checkpoint).parent / "explain", create=False)
    config, state = read_trained(checkpoint)
    found = config.get("task")
    if task is not None and found != task:
        raise ConfigError(f"--checkpoint {checkpoint}: a {found} checkpoint, not {task} (use `backbonekit explain "
                          f"{found}`)")
    spec = get_task(found, checkpoint)
    if spec.explain is None:
        raise ConfigError(f"--checkpoint {checkpoint}: the {found} task has no explain")
    device = pick_device(options.device)
    # Not fused: the maps need the layers as trained (grad-cam hooks a named module, BatchNorm included).
    trained = spec.load(checkpoint, fuse=False, read=(config, state)).to(device)
    return spec.explain(trained, paths, options)
