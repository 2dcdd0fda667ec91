"""Top-level tool commands: ``models``, ``summary``, ``bench``, ``recipes``."""
from __future__ import annotations

import argparse
import fnmatch
import json
import sys

from backbonekit.training.train_args import positive_int


def bench_precision(value: str) -> str:
    from backbonekit.training.train_args import precision

    return {"32": "fp32", "bf16-mixed": "bf16"}.get(precision(value), value)


def add_commands(verbs: dict) -> None:
    top = verbs["_top"]
    p = top.add_parser("models", help="list the registered models")
    p.add_argument("pattern", nargs="?", default="*", help="shell-style pattern, e.g. 'efficientnet_b*'")
    p.add_argument("--table", action="store_true",
                   help="the survey: layers, parameters, GFLOPs, measured images/s and feature levels at each "
                        "classifier's default size")
    p.add_argument("--plot", metavar="PNG", help="with --table: draw measured images/s against parameters and GFLOPs")
    p.set_defaults(func=cmd_models)

    p = top.add_parser("summary", help="per-layer table, parameters, FLOPs and memory of a model")
    p.add_argument("model")
    p.add_argument("--image-size", nargs="+", type=positive_int, metavar=("H", "W"),
                   help="input height and width (one number: square; default: the model's resolution)")
    p.add_argument("--num-classes", type=positive_int, default=None,
                   help="classes of the model's head; none given: the model as `backbonekit models` lists it "
                        "(1000 ImageNet classes, a detector's 90 COCO classes)")
    p.add_argument("--stem", default="imagenet", choices=("imagenet", "small"),
                   help="small: the classifier's first downsampling left out, for 28-32 px images")
    p.add_argument("--max-rows", type=positive_int, default=None, help="show only the first N layers")
    p.add_argument("--json", action="store_true", help="print the totals as JSON")
    p.set_defaults(func=cmd_summary)

    _add_bench(top)

    p = top.add_parser("recipes", help="the shipped training recipes (use as --config recipe:NAME)")
    p.add_argument("name", nargs="?", help="show this recipe's settings and its full command")
    p.set_defaults(func=cmd_recipes)


def _add_bench(top) -> None:
    p = top.add_parser("bench", help="images/s of our model against torchvision's, timm's or effdet's, in one process",
                       description="Classifiers: inference or train step against torchvision or timm. Detectors "
                                   "(efficientdet_dX): predict (network, decoding, NMS) against effdet's "
                                   "tf_efficientdet_dX, e.g. 'backbonekit bench efficientdet_d0 --vs effdet'.")
    p.add_argument("model", nargs="?", help="a registered model (random weights); or none with --checkpoint")
    p.add_argument("--vs", default=None, help="torchvision or timm (classifiers; default torchvision), effdet "
                                              "(detectors; the default for them)")
    p.add_argument("--batch-size", type=positive_int, default=None, help="default 8 (classifiers), 1 (detectors)")
    p.add_argument("--image-size", type=positive_int, default=None,
                   help="default 224 (classifiers), the detector's resolution (efficientdet_d0: 512)")
    p.add_argument("--train", action="store_true", help="time a full train step instead of inference")
    p.add_argument("--channels-last", action="store_true", help="both models and the input in channels-last")
    p.add_argument("--precision", default="fp32", type=bench_precision,
                   help="fp32 (32) or bf16 (bf16-mixed): the same spellings as train")
    p.add_argument("--fuse", action="store_true", help="fold BatchNorm into convs (ours only: a feature we offer)")
    p.add_argument("--threads", type=positive_int, default=None)
    p.add_argument("--rounds", type=positive_int, default=5)
    p.add_argument("--iters", type=positive_int, default=3, help="steps per round")
    p.add_argument("--runtimes", metavar="LIST",
                   help="time ours on each of torch,fused,channels-last,compile,onnxruntime,openvino,"
                        "openvino-bf16,onnxruntime-int8,openvino-int8 (comma-separated) against the peer eager and "
                        "(classifiers) the peer exported (and quantised: int8 on random calibration, a speed figure) "
                        "to the same runtimes; detectors from image to detections against effdet eager (default "
                        "batch 1 then)")
    p.add_argument("--checkpoint", metavar="CKPT",
                   help="with --runtimes, instead of MODEL: a trained classifier (best.ckpt, best.safetensors), "
                        "each row (ours and the peer's, same weights) with its top-1 on the run's validation split; "
                        "int8 calibrated on the run's training images as `backbonekit quantize` does")
    p.add_argument("--limit-images", type=positive_int, metavar="N",
                   help="with --checkpoint: score N validation images (drawn evenly), not all")
    p.add_argument("--keep-float", default="auto", help="with --checkpoint: the int8 rows' layer types left float, "
                   "as `backbonekit quantize --keep-float` decides them (auto: measured; none; or a list)")
    p.add_argument("--plot", metavar="PNG", help="with --runtimes: draw the images/s of every runtime (and with "
                                                 "--checkpoint their top-1)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_bench)


def cmd_models(args: argparse.Namespace) -> int:
    from rich.table import Table

    from backbonekit.errors import ConfigError
    from backbonekit.io.console import make_console
    from backbonekit.models.registry import CLASSIFIER, create_model, default_cfg, list_models

    names = [n for n in list_models(args.pattern)
             # efficientnet_custom(phi) is a family, not one model: listed when asked for by name.
             if n != "efficientnet_custom" or args.pattern == n]
    if not names:
        raise ConfigError(f"no model matches {args.pattern!r}; `backbonekit models` lists them all")
    if args.table:
        from backbonekit.tools.survey import survey_rows

        rows = survey_rows([n for n in names if default_cfg(n)["task"] == CLASSIFIER], on_model=_survey_progress)
        table = Table("model", "family", "input", "layers", "params", "GFLOPs", "images/s (b1)", "feature levels")
        for r in rows:
            speed = "—" if r["images_per_s"] is None else f"{r['images_per_s']:.1f}"
            table.add_row(r["name"], r["family"], "×".join(map(str, r["input_size"])), str(r["layers"]),
                          f"{r['params']:,}", f"{r['gflops']:.2f}", speed, r["levels"])
        make_console().print(table)
        if args.plot:
            from backbonekit.tools.survey import plot_survey

            print(f"chart written to {plot_survey(rows, args.plot)}", file=sys.stderr)
        return 0
    if args.plot:
        raise ConfigError("--plot draws the survey: give --table too")
    import torch

    table = Table("model", "task", "params", "input", "feature channels")
    for name in names:
        cfg = default_cfg(name)
        # On the meta device: shapes and counts without allocating or initialising weights (VGG-16: 5 s to build).
        with torch.device("meta"):
            model = create_model(name)
        # Detectors and sequence models: the channels of the backbone levels they read.
        info = getattr(model, "feature_info", None) or getattr(getattr(model, "backbone", None), "feature_info", [])
        table.add_row(name, cfg["task"], f"{sum(p.numel() for p in model.parameters()):,}",
                      "×".join(map(str, cfg["input_size"][1:])), " ".join(str(i["num_chs"]) for i in info))
    make_console().print(table)
    return 0


def _survey_progress(i: int, n: int, name: str) -> None:
    # Building, counting and timing every model takes minutes on a CPU: a line per model (stderr, so the table on
    # stdout stays clean to pipe).
    print(f"measuring {i}/{n}: {name}", file=sys.stderr, flush=True)


def cmd_summary(args: argparse.Namespace) -> int:
    from backbonekit.errors import ConfigError
    from backbonekit.models.registry import CLASSIFIER, create_model, default_cfg
    from backbonekit.tools.summary import render, summarize

    # Without --num-classes the model is built as `models` builds it, so both count the same parameters.
    options = {} if args.num_classes is None else {"num_classes": args.num_classes}
    if args.stem != "imagenet":
        if default_cfg(args.model)["task"] != CLASSIFIER:
            raise ConfigError(f"--stem {args.stem}: {args.model} is not a classifier")
        options["stem"] = args.stem
    model = create_model(args.model, **options)
    size = args.image_size or list(model.pretrained_cfg["input_size"][1:])
    if len(size) not in (1, 2) or min(size) < 8:
        raise ConfigError("--image-size takes H W (or one number for a square), each at least 8")
    h, w = (size[0], size[0]) if len(size) == 1 else size
    summary = summarize(model, (3, h, w))
    if args.json:
        print(json.dumps({"model": args.model, "stem": args.stem, "input_size": [3, h, w],
                          "params": summary.total_params,
                          "trainable_params": summary.trainable_params, "flops": summary.flops,
                          "activation_bytes": summary.activation_bytes, "layers": len(summary.rows)}))
    else:
        render(summary, args.max_rows)
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from backbonekit.errors import ConfigError
    from backbonekit.tools.bench import render, run_bench

    if args.checkpoint and (args.model or not args.runtimes):
        raise ConfigError("--checkpoint takes the place of MODEL, with --runtimes: `backbonekit bench --checkpoint "
                          "RUN/best.ckpt --runtimes torch,onnxruntime,…`")
    if not args.checkpoint and (args.model is None or args.limit_images or args.keep_float != "auto"):
        raise ConfigError("bench needs a MODEL (random weights) or --checkpoint (a trained classifier; "
                          "--limit-images and --keep-float go with it)")
    if args.runtimes:
        return cmd_bench_runtimes(args)

    result = run_bench(args.model, vs=args.vs, batch_size=args.batch_size, image_size=args.image_size,
                       train=args.train, channels_last=args.channels_last, precision=args.precision, fuse=args.fuse,
                       threads=args.threads, rounds=args.rounds, iters=args.iters)
    if args.json:
        print(json.dumps(result.as_dict()))
    else:
        render([result])
    return 0


def cmd_bench_runtimes(args: argparse.Namespace) -> int:
    import sys

    from backbonekit.errors import ConfigError
    from backbonekit.tools.bench import is_detector
    from backbonekit.tools.runtime_bench import parse_runtimes, plot_runtimes, render_runtimes, run_runtime_bench

    runtimes = parse_runtimes(args.runtimes)
    if args.train:
        raise ConfigError("--runtimes times inference (predict for detectors), not --train")
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    say = lambda text: print(text, file=sys.stderr, flush=True)  # noqa: E731
    batch = args.batch_size or 1
    if args.checkpoint:
        return _bench_checkpoint(args, runtimes, batch, say)
    if is_detector(args.model):
        from backbonekit.models.efficientdet import CONFIGS
        from backbonekit.tools.runtime_bench import run_detector_runtime_bench

        vs = "effdet"
        size = args.image_size or CONFIGS[args.model.removeprefix("efficientdet_")].image_size[0]
        rows = run_detector_runtime_bench(args.model, runtimes, batch, size, rounds=args.rounds, iters=args.iters,
                                          progress=say)
    else:
        vs, size = args.vs or "torchvision", args.image_size or 224
        rows = run_runtime_bench(args.model, runtimes, vs, batch, size, rounds=args.rounds, iters=args.iters,
                                 progress=say)
    if args.json:
        for row in rows:
            print(json.dumps(row.as_dict()))
    else:
        render_runtimes(rows, args.model, vs, batch, size)
    if args.plot:
        title = f"{args.model} vs {vs}, batch {batch}, {size}²"
        print(f"chart written to {plot_runtimes(rows, vs, title, args.plot)}", file=sys.stderr)
    return 0


def _bench_checkpoint(args: argparse.Namespace, runtimes: list[str], batch: int, say) -> int:
    from backbonekit.errors import ConfigError
    from backbonekit.tools.runtime_accuracy import run_checkpoint_bench
    from backbonekit.tools.runtime_bench import plot_runtimes, render_runtimes

    if args.image_size:
        raise ConfigError("--image-size: a --checkpoint is benchmarked at its own image size")
    vs = args.vs or "torchvision"
    rows, no_peer = run_checkpoint_bench(args.checkpoint, runtimes, vs, batch, rounds=args.rounds, iters=args.iters,
                                         limit_images=args.limit_images, keep_float=args.keep_float, progress=say)
    size, name = _checkpoint_model(args.checkpoint)
    if args.json:
        for row in rows:
            print(json.dumps(row.as_dict()))
    else:
        render_runtimes(rows, f"{args.checkpoint} ({name})", vs, batch, size)
        if no_peer:
            print(f"no {vs} rows: {no_peer}")
    if args.plot:
        title = f"{args.checkpoint} ({name}) vs {vs} (same weights), batch {batch}, {size}²"
        print(f"chart written to {plot_runtimes(rows, vs, title, args.plot)}", file=sys.stderr)
    return 0


def _checkpoint_model(checkpoint: str) -> tuple[int, str]:
    from backbonekit.training.task_io import recorded_config

    config = recorded_config(checkpoint)
    size = config["image_size"]
    return int(size[0] if isinstance(size, (list, tuple)) else size), str(config["model"])


def cmd_recipes(args: argparse.Namespace) -> int:
    from backbonekit.errors import ConfigError
    from backbonekit.io.config_file import list_recipes

    recipes = list_recipes()
    if args.name is None:
        for name, recipe in recipes.items():
            print(f"{name:<26} {recipe['command']:<22} aims at: {recipe.get('aims_at', '-')}")
        print("\nbackbonekit recipes NAME shows one; use it as: backbonekit TRAIN-COMMAND --config recipe:NAME …")
        return 0
    if args.name not in recipes:
        raise ConfigError(f"no recipe {args.name!r} (known: {', '.join(recipes)})")
    recipe = recipes[args.name]
    print(f"{args.name}: {recipe['description']}\naims at: {recipe.get('aims_at', '-')}\n")
    for key, value in recipe["settings"].items():
        print(f"  {key}: {value}")
    print(f"\nbackbonekit {recipe['command']} --config recipe:{args.name} [--data …] [flags that override it]")
    return 0
