"""``backbonekit serve``: its flags (parsing imports nothing heavy: ``--help`` needs no torch, no FastAPI)."""
from __future__ import annotations

import argparse

from backbonekit.serve.options import API_KEY_ENV, ServeOptions

RUNTIMES = ("torch", "onnxruntime", "openvino", "auto")


def add_commands(verbs: dict) -> None:
    from backbonekit.training.run_args import add_device_argument

    d = ServeOptions(checkpoint="")
    p = verbs["_top"].add_parser("serve", help="serve a trained model over HTTP, with a page to try it in a browser",
                                 description="Serve a trained checkpoint (any task) over HTTP: POST /v1/predict, "
                                             "/v1/explain, GET /v1/model, /health, /metrics, and a page at /.")
    p.add_argument("--checkpoint", required=True, help="best.ckpt, last.ckpt, best.safetensors or an exported .onnx")
    p.add_argument("--runtime", choices=RUNTIMES, default=d.runtime, help="what runs the model (auto: the fastest "
                                                                         "here at --max-batch, measured once)")
    p.add_argument("--runtime-precision", "--precision", dest="precision", choices=("fp32", "bf16"),
                   default=d.precision, help="bf16: OpenVINO only")
    add_device_argument(p)  # --accelerator, as predict's: the torch runtime's device
    p.add_argument("--host", default=d.host, help="address to listen on (127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=d.port)
    p.add_argument("--api-key", help=f"required on every request to /v1 and /metrics (default: ${API_KEY_ENV}; "
                                     "neither: no key)")
    p.add_argument("--max-body-mb", type=float, default=d.max_body_mb, help="larger request bodies get 413")
    p.add_argument("--max-pixels", type=int, default=d.max_pixels, help="larger images get 413 (read from the "
                                                                        "header, before decoding)")
    p.add_argument("--max-images", type=int, default=d.max_images, help="images in one request")
    p.add_argument("--timeout", dest="timeout_s", type=float, default=d.timeout_s,
                   help="seconds a request may take before it gets 504")
    p.add_argument("--max-batch", type=int, default=d.max_batch, help="images run through the model together")
    p.add_argument("--max-wait-ms", type=float, default=d.max_wait_ms,
                   help="how long an image waits for others to batch with")
    p.add_argument("--max-queue", type=int, default=d.max_queue, help="images waiting; more get 503 + Retry-After")
    p.add_argument("--top-k", type=int, default=d.top_k, help="classify: classes an image")
    p.add_argument("--score-threshold", type=float, default=d.score_threshold, help="detect: boxes kept")
    p.add_argument("--method", default=None, help="explain: CAM method (gradcam, gradcam++, layercam, eigencam)")
    p.add_argument("--layer", default=None, help="explain: the module whose activations are explained")
    p.set_defaults(func=cmd_serve)


def options_from_args(args: argparse.Namespace) -> ServeOptions:
    from dataclasses import fields

    return ServeOptions(**{f.name: getattr(args, f.name) for f in fields(ServeOptions) if hasattr(args, f.name)})


def cmd_serve(args: argparse.Namespace) -> int:
    from backbonekit.errors import ConfigError
    from backbonekit.serve.server import run_server

    for flag, value in (("--max-batch", args.max_batch), ("--max-queue", args.max_queue),
                        ("--max-images", args.max_images), ("--max-pixels", args.max_pixels), ("--top-k", args.top_k)):
        if value < 1:
            raise ConfigError(f"{flag} must be at least 1, got {value}")
    for flag, value in (("--max-body-mb", args.max_body_mb), ("--timeout", args.timeout_s)):
        if value <= 0:
            raise ConfigError(f"{flag} must be positive, got {value}")
    if args.max_wait_ms < 0:
        raise ConfigError(f"--max-wait-ms must be 0 or more, got {args.max_wait_ms}")
    run_server(options_from_args(args))
    return 0
