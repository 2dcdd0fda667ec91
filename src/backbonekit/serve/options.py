"""Every setting of ``backbonekit serve``, with the defaults the command line shows."""
from __future__ import annotations

import os
from dataclasses import dataclass

API_KEY_ENV = "BACKBONEKIT_API_KEY"  # the key from the environment: kept out of `ps` and shell history


@dataclass
class ServeOptions:
    checkpoint: str
    runtime: str = "torch"             # torch | onnxruntime | openvino | auto (training/inference.py)
    precision: str = "fp32"            # bf16: OpenVINO only
    device: str | None = None          # torch: auto, cpu, cuda
    host: str = "127.0.0.1"            # loopback unless asked: nothing else on the network reaches it
    port: int = 8000
    api_key: str | None = None         # None: BACKBONEKIT_API_KEY, when set
    max_body_mb: float = 20.0          # a request body over this: 413
    max_pixels: int = 40_000_000       # an image over this many pixels (read from its header): 413
    max_images: int = 16               # images in one request
    timeout_s: float = 30.0            # a request not answered by then: 504
    max_batch: int = 8                 # images run together at most
    max_wait_ms: float = 5.0           # how long the first image of a batch waits for others
    max_queue: int = 64                # images waiting; beyond it: 503 with Retry-After
    top_k: int = 5                     # classify
    score_threshold: float = 0.3       # detect
    max_boxes: int = 8                 # detect: explained boxes
    method: str | None = None          # explain's CAM method (task default when None)
    layer: str | None = None           # explain's layer (task default when None)

    def key(self) -> str | None:
        return self.api_key or os.environ.get(API_KEY_ENV) or None

    @property
    def max_body_bytes(self) -> int:
        return int(self.max_body_mb * 1024 * 1024)
