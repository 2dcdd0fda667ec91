"""What the serve tests share: images as bytes, a stand-in model whose answer says which image it saw (its mean
grey level), and an app around either."""
from __future__ import annotations

import io
import threading
import time

from PIL import Image

from backbonekit.serve.app import create_app
from backbonekit.serve.options import ServeOptions


def png_bytes(grey: int = 128, size: tuple[int, int] = (8, 8), fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (grey, grey, grey)).save(buffer, format=fmt)
    return buffer.getvalue()


def noise_png(size: int = 64) -> bytes:
    """A PNG of random pixels: its compressed data is as long as the image (cut short, it cannot decode)."""
    import numpy as np

    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (size, size, 3), dtype=np.uint8)).save(buffer, "PNG")
    return buffer.getvalue()


class EchoModel:
    """Answers each image with its grey level, so a caller can tell its own row from another's; records the size
    of every batch it runs; ``delay`` seconds a batch."""
    task, path_field = "classify", "path"

    def __init__(self, delay: float = 0.0):
        self.delay, self.batches, self.lock = delay, [], threading.Lock()

    def describe(self) -> dict:
        return {"task": self.task, "classes": ["grey"], "input_size": [8, 8], "runtime": "none", "explain": False,
                "checkpoint": "echo", "run": {}}

    def prepare(self, image) -> int:
        return image.getpixel((0, 0))[0]

    def run(self, items: list[int]) -> list[dict]:
        with self.lock:
            self.batches.append(len(items))
        time.sleep(self.delay)
        return [{"top": [["grey", grey / 255]]} for grey in items]

    def explain(self, image):
        raise AssertionError("not called")


def echo_app(model=None, **options):
    return create_app(model or EchoModel(), ServeOptions(checkpoint="echo", **options))
