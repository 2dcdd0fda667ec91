"""``train classify``, ``eval classify``, ``predict classify`` and the README's demo."""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from backbonekit.explain.command import add_explain_arguments, cmd_explain
from backbonekit.io.output import Formats, add_old_output_flag, add_output_arguments
from backbonekit.training.run_args import add_device_argument, add_run_arguments, add_runtime_argument
from backbonekit.training.train_args import (add_input_arguments, add_optimization_arguments, add_skip_bad_argument,
                                             non_negative_int, open_fraction, positive_int, probability)

# Measured on the 2-core CPU (seed 0): 98.89% best val top-1 at epoch 4, 44 s in all (README); 6 epochs of
# batch 64 cost half as much again for the same accuracy.
# What eval and predict classify write (io/output.py: the grammar every task shares).
EVAL_FORMATS = Formats("eval")
PREDICT_FORMATS = Formats("predict", {"csv": "predictions.csv, a row a class kept: path,rank,class,probability"})
CSV_COLUMNS = ["path", "rank", "class", "probability"]

DEMO_ARGS = ["--data", "digits", "--model", "resnet18", "--image-size", "32", "--epochs", "4", "--batch-size", "32",
             "--optimizer", "adamw", "--lr", "1e-3", "--weight-decay", "0.05", "--warmup-epochs", "0.5",
             "--name", "digits-demo", "--exist-ok", "--seed", "0"]


def add_commands(verbs: dict) -> None:
    demo = verbs["_top"].add_parser("demo", help="the main job on built-in data: ResNet-18 on the real digits")
    demo.set_defaults(func=lambda args: run_demo())

    p = verbs["train"].add_parser("classify", help="train an image classifier")
    add_train_arguments(p)
    add_data_efficient_arguments(p)
    p.set_defaults(func=cmd_train)

    p = verbs["train"].add_parser("noisy-student", help="self-training: teacher → pseudo-labels → noised student, "
                                                         "K generations")
    add_noisy_student_arguments(p)
    p.set_defaults(func=cmd_noisy_student)

    p = verbs["eval"].add_parser("classify", help="top-1/top-5 and per-class accuracy of a checkpoint")
    p.add_argument("--checkpoint", required=True, help="best.ckpt, last.ckpt or best.safetensors of a run")
    p.add_argument("--data", help="ImageFolder tree, CIFAR-10 folder or 'digits' to score (its val split); default: "
                                  "the run's own validation data, from its run.yaml")
    p.add_argument("--split", default="val", choices=("val", "test"),
                   help="test: the data's own test split (the MNIST family's t10k files), apart from validation")
    p.add_argument("--val-ratio", type=open_fraction, default=None, help="default: the run's (else 0.2)")
    p.add_argument("--seed", type=int, default=None, help="seed of the split; default: the run's (else 0)")
    p.add_argument("--batch-size", type=positive_int, default=64)
    p.add_argument("--workers", type=non_negative_int, default=0)
    add_skip_bad_argument(p)
    add_output_arguments(p, EVAL_FORMATS, "folder for metrics.json (and .csv); default: eval/<split>/ in the "
                                          "checkpoint's run folder")
    p.add_argument("--compile", action="store_true", help="torch.compile the fused model (pays on large sets)")
    add_device_argument(p)
    add_runtime_argument(p)
    p.set_defaults(func=cmd_eval)

    p = verbs["predict"].add_parser("classify", help="top-k classes for images or folders")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("paths", nargs="+", metavar="PATH")
    p.add_argument("--top-k", type=positive_int, default=5)
    add_output_arguments(p, PREDICT_FORMATS, "folder to write predictions.<format> into; - prints the one format "
                                             "asked for, a line an image", out_default="predictions")
    add_old_output_flag(p, "--json", "--format json --out - (JSON lines on stdout)", fmt="json", stdout=True)
    p.add_argument("--compile", action="store_true", help="torch.compile the fused model (pays on many images)")
    p.add_argument("--batch-size", type=positive_int, default=32)
    add_skip_bad_argument(p)
    add_device_argument(p)
    add_runtime_argument(p)
    p.set_defaults(func=cmd_predict)

    p = verbs["explain"].add_parser("classify", help="class activation maps of the top-k classes, per image")
    add_explain_arguments(p)
    p.add_argument("--top-k", type=positive_int, default=3, help="maps for the k most likely classes")
    p.set_defaults(func=lambda args: cmd_explain(args, "classify", top_k=args.top_k))


def add_train_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", help="ImageFolder tree, CIFAR-10 folder, folder of IDX files, 'digits' (built in) or "
                                  "'fashion-mnist'/'mnist'/'kmnist' ($BACKBONEKIT_DATA/<name>, else the Debian "
                                  "package's folder); required unless --resume")
    p.add_argument("--model", default="resnet18")
    p.add_argument("--stem", default="imagenet", choices=("imagenet", "small"),
                   help="small: the model's first downsampling left out (3×3 stride-1 stem, no early pool), for "
                        "28-32 px images")
    p.add_argument("--pretrained", help="weights file (torchvision, timm, lukemelas or ours) to start from")
    p.add_argument("--epochs", type=int, default=10)
    add_input_arguments(p, "default: the model's resolution")
    # AdamW 1e-3 with a 1-epoch warm-up converged on every README example (benchmarks/readme_classify.py); SGD at
    # lr 0.1 without warm-up, the old default, diverged on short runs (validation loss 1e3-1e5).
    add_optimization_arguments(p, optimizer="adamw", lr=None, weight_decay=0.05, scheduler="cosine",
                               warmup_epochs=1.0)
    p.add_argument("--augment", default="basic", choices=("none", "basic", "randaugment"))
    p.add_argument("--crop-padding", type=non_negative_int, default=None, metavar="PIXELS",
                   help="pad-and-crop by this many pixels (default: 1/8 of the size, for images up to 64 px)")
    p.add_argument("--random-erasing", type=probability, default=0.0, metavar="P",
                   help="erase one rectangle (2-40%% of the image) with this probability")
    p.add_argument("--normalize", default="model", choices=("model", "data"),
                   help="input statistics: the model's own (ImageNet's), or measured on the training images")
    p.add_argument("--cutmix", type=float, default=0.0, metavar="ALPHA")
    p.add_argument("--mixup", type=float, default=0.0, metavar="ALPHA")
    p.add_argument("--label-smoothing", type=float, default=0.0)
    p.add_argument("--drop-rate", type=float, default=None)
    p.add_argument("--drop-path-rate", type=float, default=None)
    p.add_argument("--val-ratio", type=open_fraction, default=0.2, help="held-out share when the data has no val split")
    add_run_arguments(p, batch_size=64)


def add_data_efficient_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("distillation and semi-supervised learning")
    g.add_argument("--teacher", help="checkpoint of a trained classifier (any model) to distil from")
    g.add_argument("--distill-temperature", type=float, default=4.0)
    g.add_argument("--distill-alpha", type=float, default=0.9, help="weight of the distillation term")
    g.add_argument("--distill-loss", default="kl", choices=("kl", "mse"))
    g.add_argument("--unlabeled", metavar="DIR", help="folder of unlabelled images, or digits-rest: the training "
                                                      "images --labels-per-class leaves out (labels hidden)")
    g.add_argument("--semi", choices=("pseudo-label", "fixmatch"), help="default with --unlabeled: fixmatch")
    g.add_argument("--threshold", type=probability, default=0.95, help="confidence a pseudo-label needs")
    g.add_argument("--mu", type=int, default=7, help="unlabelled images per labelled one in a batch")
    g.add_argument("--lambda-u", type=float, default=1.0, help="weight of the unlabelled loss")
    g.add_argument("--unsup-warmup", type=float, default=None, metavar="FRACTION",
                   help="share of training over which --lambda-u ramps up from 0 (default: 0.4 for pseudo-label "
                        "from the model itself, as USB; 0 for fixmatch and for pseudo-labels from --teacher)")
    g.add_argument("--labels-per-class", type=positive_int, metavar="N",
                   help="train on N labelled images a class (seeded)")


def add_noisy_student_arguments(p: argparse.ArgumentParser) -> None:
    add_train_arguments(p)
    g = p.add_argument_group("noisy student")
    g.add_argument("--unlabeled", required=True, metavar="DIR", help="folder of unlabelled images, or digits-rest")
    g.add_argument("--teacher", help="checkpoint of the first teacher")
    g.add_argument("--teacher-model", help="without --teacher: generation 0 trains this model on the labelled data")
    g.add_argument("--students", default="resnet18", help="models of generations 1, 2, … (the last repeats)")
    g.add_argument("--iterations", type=positive_int, default=2, help="student generations")
    g.add_argument("--soft", action="store_true", help="soft pseudo-labels (teacher probabilities), else hard")
    g.add_argument("--threshold", type=probability, default=0.3, help="teacher confidence a pseudo-label needs")
    g.add_argument("--labels-per-class", type=positive_int, metavar="N",
                   help="train on N labelled images a class (seeded)")
    # The student's noise (the paper's: RandAugment, dropout 0.5 on the classifier, stochastic depth 0.8 survival).
    p.set_defaults(augment="randaugment", drop_rate=0.5, drop_path_rate=0.2, model=None)


def cmd_noisy_student(args: argparse.Namespace) -> int:
    from backbonekit.training.preflight import check_before_imports

    check_before_imports(args)
    from backbonekit.classification.noisy_student import train_noisy_student  # Lightning: after the cheap checks
    from backbonekit.models.registry import require_kind

    require_kind(args.teacher_model, "classify", "--teacher-model", "train noisy-student")
    from backbonekit.training.settings import TrainSettings  # the command line's edge: typed from here on

    return train_noisy_student(TrainSettings.from_args(args))


def cmd_train(args: argparse.Namespace) -> int:
    from backbonekit.training.preflight import check_before_imports
    from backbonekit.training.run_record import start_training
    from backbonekit.training.settings import TrainSettings  # the command line's edge: typed from here on

    check_before_imports(args)
    if args.data is not None:  # a missing folder is said before the training stack is imported
        from backbonekit.classification.data_format import detect_format  # torch, for the IDX names

        detect_format(args.data)
    from backbonekit.models.registry import require_kind  # torchvision: after the cheap checks

    require_kind(args.model, "classify", "--model", "train classify")

    def train(a: TrainSettings) -> int:
        from backbonekit.classification.train import train_classifier  # Lightning: after every cheap check

        return train_classifier(a).exit_code

    return start_training(TrainSettings.from_args(args), "train classify", "classify", train)


def cmd_eval(args: argparse.Namespace) -> int:
    from backbonekit.classification.evaluate import evaluate_classifier

    evaluate_classifier(args, EVAL_FORMATS)
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from backbonekit.classification.predict import predict_images
    from backbonekit.io.output import RowWriter, predict_output

    output = predict_output(args, PREDICT_FORMATS)
    rows = predict_images(args.checkpoint, args.paths, top_k=args.top_k, batch_size=args.batch_size,
                          compile=args.compile, device=args.device, skip_bad_images=args.skip_bad_images,
                          runtime=args.runtime, precision=args.runtime_precision)
    writer = RowWriter(output, CSV_COLUMNS, csv_rows)
    for row in rows:
        writer.add(row)
        if not output.to_stdout:  # there the rows themselves are the output
            top = ", ".join(f"{name} {p:.3f}" for name, p in row["top"])
            print(f"{row['path']}: {top}", flush=True)
    written = writer.close()
    if written:
        print(f"wrote {', '.join(map(str, written))}")
    return 0


def csv_rows(row: dict) -> list[dict]:
    return [{"path": row["path"], "rank": rank, "class": name, "probability": p}
            for rank, (name, p) in enumerate(row["top"], 1)]


def run_demo() -> int:
    """The README's main command: ResNet-18 on the built-in digits, then where the results are."""
    parser = argparse.ArgumentParser(prog="backbonekit demo")
    add_train_arguments(parser)
    start = time.time()
    args = parser.parse_args(DEMO_ARGS)
    out = Path(args.out) / "classify" / args.name  # --exist-ok: the demo always starts fresh
    result = cmd_train(args)
    metrics = json.loads((out / "metrics.json").read_text())
    top1 = metrics["best"]["val/top1"]
    print(f"\ndigits demo: best val top-1 {top1:.2f}% in {time.time() - start:.0f}s; results in {out}/ "
          "(results.png, confusion_matrix.png, best.ckpt, best.safetensors, results.csv)", file=sys.stderr)
    return result
