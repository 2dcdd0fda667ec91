"""The command-line options every ``train TASK`` command shares (batch size, devices, precision, run folder, resume,
progress); ``training.settings.TrainSettings.from_args`` makes the typed settings of them."""
from __future__ import annotations

import argparse

from backbonekit.training.loggers import logger_name, mlflow_uri
from backbonekit.training.train_args import Deprecated, non_negative_int, positive_int, precision


def add_run_arguments(p: argparse.ArgumentParser, batch_size: int = 32) -> None:
    p.add_argument("--batch-size", default=str(batch_size),
                   help="a number, or 'auto' to pick the largest that fits memory")
    p.add_argument("--max-memory", help="with --batch-size auto on CPU: memory budget, e.g. 4GB")
    p.add_argument("--memory-fraction", type=float, default=0.6, help="with --batch-size auto on CUDA")
    p.add_argument("--precision", default="32", type=precision,
                   help="32 (fp32), bf16-mixed (bf16) or 16-mixed (fp16)")
    p.add_argument("--devices", default="1", help="number of devices (or 'auto')")
    p.add_argument("--accelerator", default="auto", help="cpu, gpu, auto")
    p.add_argument("--strategy", default="auto", help="auto, ddp, ddp_spawn, …")
    p.add_argument("--num-nodes", type=int, default=1)
    p.add_argument("--workers", type=non_negative_int, default=0, help="DataLoader worker processes")
    p.add_argument("--threads", type=positive_int, default=None,
                   help="CPU threads for torch (default: one per core); idle threads sleep rather than spin")
    p.add_argument("--deterministic", action="store_true")
    p.add_argument("--compile", action="store_true",
                   help="torch.compile the model (20–55 s of compiling first on a 2-core CPU; "
                        "docs/training.md: where it pays)")
    p.add_argument("--ema", type=float, default=None, metavar="DECAY",
                   help="keep an exponential moving average of the weights (e.g. 0.999): validation, best.ckpt and "
                        "best.safetensors use it")
    p.add_argument("--out", default="runs", help="runs go to OUT/TASK/NAME")
    p.add_argument("--name", help="the run's folder name (default: exp, exp2, …); an existing one is refused")
    p.add_argument("--exist-ok", action="store_true", help="replace the run folder --name names if it exists")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--resume", metavar="RUN",
                   help="continue a run (its folder or last.ckpt) with its recorded settings; only --epochs may "
                        "be raised")
    p.add_argument("--config", metavar="FILE",
                   help="settings from a YAML file (a run's run.yaml reproduces it) or recipe:NAME (see "
                        "`backbonekit recipes`); flags typed after it override it")
    p.add_argument("--limit-train-batches", type=_batches, default=None, metavar="N",
                   help="quick checks: N batches an epoch, or a share (0.1; 1.0 is every batch)")
    p.add_argument("--limit-val-batches", type=_batches, default=None, metavar="N",
                   help="quick checks: N validation batches (or a share)")
    p.add_argument("--progress", choices=("auto", "bar", "lines"), default="auto",
                   help="auto: a progress bar on a terminal, one line per epoch otherwise")
    p.add_argument("--logger", nargs="+", type=logger_name, default=["csv"], metavar="NAME",
                   help="csv, tensorboard, mlflow (several at once): csv is results.csv and results.png, written by "
                        "every run; tensorboard writes RUN/tensorboard, mlflow a file store in RUN/mlruns (pip "
                        "install 'backbonekit[loggers]')")
    p.add_argument("--mlflow-uri", type=mlflow_uri, default=None, metavar="URI",
                   help="--logger mlflow: where MLflow tracks (a folder, file:, sqlite:///…, http://…); default "
                        "RUN/mlruns")


def _batches(value: str) -> int | float:
    """Lightning's reading: a whole number is batches, a decimal a share of them (so 1.0 is every batch, not one)."""
    number = float(value)
    if number <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {value}")
    if number.is_integer() and not any(mark in str(value) for mark in ".eE"):
        return int(number)
    if number > 1:
        raise argparse.ArgumentTypeError(f"a number of batches (whole) or a share up to 1.0, got {value}")
    return number


def add_runtime_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument("--runtime", choices=("torch", "onnxruntime", "openvino", "auto"), default="torch",
                   help="torch (eager PyTorch), onnxruntime or openvino: the checkpoint exported once to <stem>.onnx "
                        "beside it (an .onnx file given as --checkpoint runs in onnxruntime unless openvino is "
                        "asked); auto: the fastest here at --batch-size (and precision, with --runtime-precision "
                        "auto, its default), measured once and remembered in runtime.json beside the checkpoint")
    # Not --precision: train's --precision is Lightning's training precision (32, bf16-mixed, 16-mixed), the spelling
    # Lightning users know and every run.yaml records; this one is the exported runtime's arithmetic, beside --runtime.
    p.add_argument("--runtime-precision", choices=("fp32", "bf16", "int8", "auto"), default=None,
                   help="fp32 (default; auto with --runtime auto); bf16: --runtime openvino where the CPU has it "
                        "(its error against fp32 is printed); int8: onnxruntime or openvino, the file `backbonekit "
                        "quantize` wrote, else quantised now through its accuracy gate (1 point); auto: with "
                        "--runtime auto, the fastest precision whose accuracy passed its gate")
    p.add_argument("--precision", dest="runtime_precision", choices=("fp32", "bf16"), action=Deprecated,
                   replacement="--runtime-precision", help=argparse.SUPPRESS)


def add_device_argument(p: argparse.ArgumentParser) -> None:
    # train's word and values (Lightning's --accelerator); eval, predict and explain run on one device, so no
    # --devices count: cuda:N picks the GPU. --device was the old spelling here.
    p.add_argument("--accelerator", dest="device", default="auto",
                   help="auto (the GPU when there is one), cpu, gpu (= cuda), or cuda:N for one GPU of several")
    p.add_argument("--device", dest="device", action=Deprecated, replacement="--accelerator", help=argparse.SUPPRESS)
