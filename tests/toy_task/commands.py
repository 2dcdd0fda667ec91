"""The toy task's sub-commands, built from the shared pieces: run arguments, the run record, the training routine,
inference loading and the evaluation record."""
from __future__ import annotations

import json

from pathlib import Path

from backbonekit.io.output import Formats, add_output_arguments, eval_output, write_metrics
from backbonekit.training.run_args import add_run_arguments

EVAL_FORMATS = Formats("eval")  # the shared json/csv, as every task's eval


def add_commands(verbs: dict) -> None:
    p = verbs["train"].add_parser("toy", help="the toy task")
    p.add_argument("--data", help="number of synthetic images, e.g. 48")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--clip-grad", type=float, default=0.0)
    add_run_arguments(p, batch_size=8)
    p.set_defaults(func=cmd_train)

    p = verbs["eval"].add_parser("toy", help="accuracy of a toy checkpoint")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--data", help="default: the run's")
    add_output_arguments(p, EVAL_FORMATS, "folder for metrics.<format>; default: eval/val/ in the run folder")
    p.set_defaults(func=cmd_eval)

    p = verbs["predict"].add_parser("toy", help="the brightest channel of random images")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--count", type=int, default=4)
    p.set_defaults(func=cmd_predict)


def _plan(args):
    from backbonekit.training.train_routine import TrainPlan
    from toy_task.task import brightest_channel_data

    n = int(args.data)
    return TrainPlan({"task": "toy", "image_size": 8, "lr": args.lr}, brightest_channel_data(n, 8, args.seed),
                     brightest_channel_data(n // 4, 8, args.seed + 1), monitor="val/acc",
                     data={"images": n})


def cmd_train(args) -> int:
    from backbonekit.training.run_record import start_training
    from backbonekit.training.settings import TrainSettings
    from backbonekit.training.task_spec import get_task
    from backbonekit.training.train_routine import train_task

    return start_training(TrainSettings.from_args(args), "train toy", "toy",
                          lambda a: train_task(a, get_task("toy"), _plan).exit_code)


def cmd_eval(args) -> int:
    import torch

    from backbonekit.training.inference import load_for_inference
    from backbonekit.training.run_record import eval_source
    from backbonekit.training.task_spec import get_task
    from toy_task.task import brightest_channel_data

    output = eval_output(args, EVAL_FORMATS, Path(args.checkpoint).parent / "eval" / "val")
    task, device = load_for_inference(args.checkpoint, get_task("toy"))
    source = eval_source(args.checkpoint, args.data, seed=None)
    images, labels = brightest_channel_data(int(source["data"]) // 4, 8, source["seed"] + 1).tensors
    with torch.no_grad():
        accuracy = float((task(images.to(device)).argmax(1).cpu() == labels).float().mean())
    paths = write_metrics({"accuracy_percent": 100 * accuracy, "images": len(labels)}, output)
    print(f"accuracy {100 * accuracy:.1f}% on {len(labels)} images ({source['what']}); wrote "
          + ", ".join(map(str, paths)))
    return 0


def cmd_predict(args) -> int:
    import torch

    from backbonekit.training.inference import load_for_inference
    from backbonekit.training.task_spec import get_task
    from toy_task.task import brightest_channel_data

    task, device = load_for_inference(args.checkpoint, get_task("toy"))
    images, _ = brightest_channel_data(args.count, 8, 99).tensors
    with torch.no_grad():
        for label in task(images.to(device)).argmax(1).tolist():
            print(json.dumps({"channel": "RGB"[label]}))
    return 0
