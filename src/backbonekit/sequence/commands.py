"""``data synth seqdeepfake``, ``eval sequence`` (and, with the trainer, ``train``/``predict sequence``)."""
from __future__ import annotations

import argparse

from backbonekit.sequence.subsets import SUBSETS
from backbonekit.explain.command import add_explain_arguments, cmd_explain
from backbonekit.training.run_args import add_device_argument, add_run_arguments, add_runtime_argument
from backbonekit.training.train_args import (add_deprecated_arguments, add_input_arguments, add_optimization_arguments,
                                             add_skip_bad_argument, positive_int)

DEFAULT_SUBSET = "facial_components"


def synth_parsers(verbs: dict):
    """The ``data synth`` sub-parsers (the CLI makes them, shared by every task that writes a synthetic data set)."""
    return verbs["data_synth"]


def add_commands(verbs: dict) -> None:
    p = verbs["train"].add_parser("sequence", help="train SeqFakeFormer on SeqDeepFake-format data")
    p.add_argument("--data", help="data root (holding <subset>/annotations and images); required unless --resume")
    p.add_argument("--subset", default=DEFAULT_SUBSET, choices=tuple(SUBSETS))
    p.add_argument("--backbone", default="resnet50", help="any backbonekit model, e.g. efficientnet_b4")
    p.add_argument("--pretrained-backbone", help="weights file for the backbone (any supported layout)")
    add_input_arguments(p, "default 256")
    p.add_argument("--epochs", type=int, default=170)
    add_optimization_arguments(p, optimizer="adamw", lr=1e-3, weight_decay=1e-4, scheduler="step", warmup_epochs=None,
                               backbone_lr_mult=0.1, clip_grad=0.1,
                               lr_steps_help=" (default: the official 70 and 120 of 170, scaled to --epochs)")
    add_deprecated_arguments(p, "skip-missing", "backbone-lr")
    add_run_arguments(p)
    p.set_defaults(func=cmd_train)

    p = verbs["predict"].add_parser("sequence", help="the manipulation sequence of each image")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("paths", nargs="*", metavar="PATH", help="images or folders (or use --data)")
    p.add_argument("--data", help="data root: predict an annotated split instead of PATHs")
    p.add_argument("--split", default="test", choices=("train", "val", "test"))
    p.add_argument("--batch-size", type=positive_int, default=32)
    p.add_argument("--csv", help="write predictions in the annotation format (file_path,label)")
    p.add_argument("--grid", help="draw images with predicted (and true) sequences to this PNG")
    add_skip_bad_argument(p)
    add_device_argument(p)
    add_runtime_argument(p)
    p.set_defaults(func=cmd_predict)

    p = verbs["explain"].add_parser("sequence", help="the decoder's attention over the image for each predicted edit")
    add_explain_arguments(p, cams=False)
    p.set_defaults(func=lambda args: cmd_explain(args, "sequence"))

    p = synth_parsers(verbs).add_parser("seqdeepfake", help="for train sequence: scikit-image's bundled "
                                                         "photos with ordered, learnable edits, in the SeqDeepFake "
                                                         "layout")
    p.add_argument("--out", required=True, help="data root to write (<out>/<subset>/annotations, images)")
    p.add_argument("--subset", default="facial_components", choices=tuple(SUBSETS))
    p.add_argument("--num-images", type=positive_int, default=600)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--image-size", type=int, default=128)
    p.set_defaults(func=cmd_synth)

    p = verbs["eval"].add_parser("sequence", help="Fixed/Adaptive-Acc of a predictions CSV (or a checkpoint)")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--predictions", help="CSV in the annotation format (file_path,label)")
    source.add_argument("--checkpoint", help="a sequence run's checkpoint")
    p.add_argument("--data", help="data root (holding <subset>/annotations); with --checkpoint, default: the run's "
                                  "own data from its run.yaml")
    p.add_argument("--subset", default=None, choices=tuple(SUBSETS),
                   help="default: the run's (with --checkpoint), else facial_components")
    p.add_argument("--split", default=None, choices=("train", "val", "test"),
                   help="default: val (the run's validation data) with --checkpoint, test with --predictions")
    p.add_argument("--batch-size", type=positive_int, default=32)
    add_skip_bad_argument(p)
    add_deprecated_arguments(p, "skip-missing")
    p.add_argument("--out", help="write metrics JSON here")
    add_device_argument(p)
    add_runtime_argument(p)
    p.set_defaults(func=cmd_eval)


def cmd_train(args: argparse.Namespace) -> int:
    from backbonekit.training.preflight import check_before_imports, check_data_exists
    from backbonekit.training.run_record import start_training

    check_before_imports(args)
    check_data_exists(args)
    from backbonekit.models.registry import require_kind  # torchvision: after the cheap checks

    require_kind(args.backbone, "classify", "--backbone", "train sequence")

    def train(a: TrainSettings) -> int:
        from backbonekit.sequence.train import train_sequence  # Lightning: after every cheap check

        return train_sequence(a).exit_code

    return start_training(TrainSettings.from_args(args), "train sequence", "sequence", train)


    from backbonekit.training.settings import TrainSettings  # the command line's edge: typed from here on
def cmd_predict(args: argparse.Namespace) -> int:
    from backbonekit.errors import ConfigError
    from backbonekit.sequence.predict import draw_grid, predict_sequences, write_csv

    if bool(args.paths) == bool(args.data):
        raise ConfigError("give image PATHs or --data, not both or neither")
    def report(r: dict) -> None:
        true = f"  (true: {r['true_name']})" if "true_name" in r else ""
        print(f"{r['file_path']}: {r['name']} {r['label']}{true}", flush=True)

    rows = predict_sequences(args.checkpoint, args.paths, data=args.data, split=args.split,
                             batch_size=args.batch_size, device=args.device, skip_bad_images=args.skip_bad_images,
                             on_row=report, runtime=args.runtime, precision=args.precision)
    if args.csv:
        print(f"predictions written to {write_csv(rows, args.csv)}")
    if args.grid:
        print(f"grid written to {draw_grid(rows, args.grid, root=args.data)}")
    return 0


def cmd_synth(args: argparse.Namespace) -> int:
    from backbonekit.sequence.synth import synthesize_seqdeepfake

    counts = synthesize_seqdeepfake(args.out, args.subset, args.num_images, args.seed, args.image_size)
    print(f"wrote {sum(counts.values())} images to {args.out}/{args.subset} "
          f"({', '.join(f'{k} {v}' for k, v in counts.items())})")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from backbonekit.sequence.evaluate import evaluate_task, format_report, score_predictions, write_metrics

    if args.predictions:
        if args.data is None:
            from backbonekit.errors import ConfigError

            raise ConfigError("--predictions needs --data (the annotations to score them against)")
        result = score_predictions(args.predictions, args.data, args.subset or DEFAULT_SUBSET, args.split or "test")
    else:
        from backbonekit.training.inference import load_for_inference
        from backbonekit.training.run_record import eval_source
        from backbonekit.training.task_spec import get_task

        # loaded first: an unreadable file or another task's checkpoint is said before a missing run record
        task, device = load_for_inference(args.checkpoint, get_task("sequence"), args.device, args.runtime,
                                          args.precision, args.batch_size)
        source = eval_source(args.checkpoint, args.data, subset=args.subset)
        subset, split = source["subset"] or DEFAULT_SUBSET, args.split or "val"
        what = f"the run's {split} split" if source["what"].startswith("the run's") else \
            f"the {split} split of other data (--data)"
        print(f"scoring {what}: {source['data']}, subset {subset}")
        result = evaluate_task(task, source["data"], subset, split, batch_size=args.batch_size,
                               skip_missing=args.skip_bad_images, device=device)
        result["checkpoint"] = str(args.checkpoint)
    print(format_report(result))
    if args.out:
        print(f"metrics written to {write_metrics(result, args.out)}")
    return 0
