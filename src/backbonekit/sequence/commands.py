"""``data synth seqdeepfake``, ``eval sequence`` (and, with the trainer, ``train``/``predict sequence``)."""
from __future__ import annotations

import argparse

from backbonekit.sequence.subsets import SUBSETS
from backbonekit.explain.command import add_explain_arguments, cmd_explain
from backbonekit.io.output import Formats, add_old_output_flag, add_output_arguments
from backbonekit.training.run_args import add_device_argument, add_run_arguments, add_runtime_argument
from backbonekit.training.train_args import (add_deprecated_arguments, add_input_arguments, add_optimization_arguments,
                                             add_skip_bad_argument, positive_int)

DEFAULT_SUBSET = "facial_components"

# What eval and predict sequence write (io/output.py: the grammar every task shares). predict's csv is the
# annotation format, so that `eval sequence --predictions` scores it.
EVAL_FORMATS = Formats("eval")
PREDICT_FORMATS = Formats("predict", {
    "csv": "predictions.csv in the annotation format (file_path,label), for eval sequence --predictions",
    "png": "predictions.png, up to 16 images with their predicted (and true) sequences"}, default=("csv",))
CSV_COLUMNS = ["file_path", "label"]


def synth_parsers(verbs: dict):
    """The ``data synth`` sub-parsers (the CLI makes them, shared by every task that writes a synthetic data set)."""
    return verbs["data_synth"]


def add_commands(verbs: dict) -> None:
    _add_train(verbs)
    _add_predict_and_explain(verbs)
    _add_synth(verbs)
    _add_eval(verbs)


def _add_train(verbs: dict) -> None:
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


def _add_predict_and_explain(verbs: dict) -> None:
    p = verbs["predict"].add_parser("sequence", help="the manipulation sequence of each image")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("paths", nargs="*", metavar="PATH", help="images or folders (or use --data)")
    p.add_argument("--data", help="data root: predict an annotated split instead of PATHs")
    p.add_argument("--split", default="test", choices=("train", "val", "test"))
    p.add_argument("--batch-size", type=positive_int, default=32)
    add_output_arguments(p, PREDICT_FORMATS, "folder to write predictions.<format> into; - prints the one text "
                                             "format asked for, a line an image", out_default="predictions")
    add_old_output_flag(p, "--csv", "--format csv --out DIR (DIR/predictions.csv)", fmt="csv", file=True,
                        metavar="FILE")
    add_old_output_flag(p, "--grid", "--format png --out DIR (DIR/predictions.png)", fmt="png", file=True,
                        metavar="FILE")
    add_skip_bad_argument(p)
    add_device_argument(p)
    add_runtime_argument(p)
    p.set_defaults(func=cmd_predict)

    p = verbs["explain"].add_parser("sequence", help="the decoder's attention over the image for each predicted edit")
    add_explain_arguments(p, cams=False)
    p.set_defaults(func=lambda args: cmd_explain(args, "sequence"))


def _add_synth(verbs: dict) -> None:
    p = synth_parsers(verbs).add_parser("seqdeepfake", help="for train sequence: scikit-image's bundled "
                                                         "photos with ordered, learnable edits, in the SeqDeepFake "
                                                         "layout")
    p.add_argument("--out", required=True, help="data root to write (<out>/<subset>/annotations, images)")
    p.add_argument("--subset", default="facial_components", choices=tuple(SUBSETS))
    p.add_argument("--num-images", type=positive_int, default=600)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--image-size", type=int, default=128)
    p.set_defaults(func=cmd_synth)


def _add_eval(verbs: dict) -> None:
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
    add_output_arguments(p, EVAL_FORMATS, "folder to write metrics.<format> into; default --checkpoint: "
                                          "eval/<split>/ in the run folder; --predictions: beside the CSV as "
                                          "<name>_metrics.json")
    add_device_argument(p)
    add_runtime_argument(p)
    p.set_defaults(func=cmd_eval)


def cmd_train(args: argparse.Namespace) -> int:
    from backbonekit.training.preflight import check_before_imports, check_data_exists
    from backbonekit.training.run_record import start_training
    from backbonekit.training.settings import TrainSettings  # the command line's edge: typed from here on

    check_before_imports(args)
    check_data_exists(args)
    from backbonekit.models.registry import require_kind  # torchvision: after the cheap checks

    require_kind(args.backbone, "classify", "--backbone", "train sequence")

    def train(a: TrainSettings) -> int:
        from backbonekit.sequence.train import train_sequence  # Lightning: after every cheap check

        return train_sequence(a).exit_code

    return start_training(TrainSettings.from_args(args), "train sequence", "sequence", train)


def cmd_predict(args: argparse.Namespace) -> int:
    from backbonekit.errors import ConfigError
    from backbonekit.io.output import RowWriter, predict_output
    from backbonekit.sequence.predict import draw_grid, predict_sequences

    if bool(args.paths) == bool(args.data):
        raise ConfigError("give image PATHs or --data, not both or neither")
    output = predict_output(args, PREDICT_FORMATS)
    writer = RowWriter(output, CSV_COLUMNS, csv_rows)

    def report(r: dict) -> None:
        writer.add(r)
        if not output.to_stdout:  # there the rows themselves are the output
            true = f"  (true: {r['true_name']})" if "true_name" in r else ""
            print(f"{r['file_path']}: {r['name']} {r['label']}{true}", flush=True)

    rows = predict_sequences(args.checkpoint, args.paths, data=args.data, split=args.split,
                             batch_size=args.batch_size, device=args.device, skip_bad_images=args.skip_bad_images,
                             on_row=report, runtime=args.runtime, precision=args.runtime_precision)
    written = writer.close()
    if "png" in output.formats and rows:
        written.append(draw_grid(rows, output.path("png"), root=args.data))
    if written:
        print(f"wrote {', '.join(map(str, written))}")
    return 0


def csv_rows(row: dict) -> list[dict]:
    from backbonekit.sequence.data import format_label

    return [{"file_path": row["file_path"], "label": format_label(row["label"])}]


def cmd_synth(args: argparse.Namespace) -> int:
    from backbonekit.sequence.synth import synthesize_seqdeepfake

    counts = synthesize_seqdeepfake(args.out, args.subset, args.num_images, args.seed, args.image_size)
    print(f"wrote {sum(counts.values())} images to {args.out}/{args.subset} "
          f"({', '.join(f'{k} {v}' for k, v in counts.items())})")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from pathlib import Path

    from backbonekit.io.output import eval_output, write_metrics
    from backbonekit.sequence.evaluate import evaluate_task, format_report, score_predictions

    if args.predictions:
        if args.data is None:
            from backbonekit.errors import ConfigError

            raise ConfigError("--predictions needs --data (the annotations to score them against)")
        predictions = Path(args.predictions)
        output = eval_output(args, EVAL_FORMATS, predictions.parent, stem=f"{predictions.stem}_metrics")
        result = score_predictions(args.predictions, args.data, args.subset or DEFAULT_SUBSET, args.split or "test")
    else:
        from backbonekit.training.inference import load_for_inference
        from backbonekit.training.run_record import eval_source
        from backbonekit.training.task_spec import get_task

        # loaded first: an unreadable file or another task's checkpoint is said before a missing run record
        split = args.split or "val"
        output = eval_output(args, EVAL_FORMATS, Path(args.checkpoint).parent / "eval" / split)
        task, device = load_for_inference(args.checkpoint, get_task("sequence"), args.device, args.runtime,
                                          args.runtime_precision, args.batch_size)
        source = eval_source(args.checkpoint, args.data, subset=args.subset)
        subset = source["subset"] or DEFAULT_SUBSET
        what = f"the run's {split} split" if source["what"].startswith("the run's") else \
            f"the {split} split of other data (--data)"
        print(f"scoring {what}: {source['data']}, subset {subset}")
        result = evaluate_task(task, source["data"], subset, split, batch_size=args.batch_size,
                               skip_missing=args.skip_bad_images, device=device)
        result["checkpoint"] = str(args.checkpoint)
    print(format_report(result))
    print(f"metrics written to {', '.join(map(str, write_metrics(result, output)))}")
    return 0
