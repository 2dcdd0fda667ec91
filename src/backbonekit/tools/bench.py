"""Throughput of our model against the peer library's, measured alternately in one process.

Machines are noisy (other processes, frequency scaling), so absolute images/s from two runs are not comparable;
rounds alternate ours and the peer in one process. Interference only ever slows a round down, so the fastest round of
each is the primary estimate (an A/A run of two identical models here: 0.996 on best rounds, 0.943 on medians); the
ratio of medians is reported too. Both models compute the same function:
the peer's random weights are loaded into ours and the outputs are compared before any timing.
"""
from __future__ import annotations

import contextlib
import statistics
import time
from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from backbonekit.errors import ConfigError
from backbonekit.models.registry import create_model
from backbonekit.nn.fuse import fuse_batchnorm

PEERS = ("torchvision", "timm")


@dataclass
class BenchResult:
    model: str
    peer: str
    mode: str                 # "inference" or "train"
    batch_size: int
    image_size: int
    precision: str
    channels_last: bool
    fused: bool
    ours_images_per_s: float          # best round
    peer_images_per_s: float
    ours_median: float
    peer_median: float
    max_abs_diff: float

    @property
    def ratio(self) -> float:
        return self.ours_images_per_s / self.peer_images_per_s

    @property
    def median_ratio(self) -> float:
        return self.ours_median / self.peer_median

    def as_dict(self) -> dict:
        return {**asdict(self), "ratio": self.ratio, "median_ratio": self.median_ratio}


def build_peer(name: str, library: str) -> nn.Module:
    if library == "torchvision":
        import torchvision

        builder = getattr(torchvision.models, name, None)
        if builder is None:
            raise ConfigError(f"torchvision has no model {name!r}")
        return builder()
    if library == "timm":
        try:
            import timm
        except ImportError:
            raise ConfigError("timm is not installed (pip install timm)") from None
        if name not in timm.list_models():
            raise ConfigError(f"timm has no model {name!r}")
        return timm.create_model(name)
    raise ConfigError(f"--vs must be one of {', '.join(PEERS)}, got {library!r}")


def _matching_regularisation(peer: nn.Module) -> dict:
    """Stochastic depth costs time in training: use it in ours exactly when the peer does (timm's default is off)."""
    kinds = {type(m).__name__ for m in peer.modules()}
    return {} if kinds & {"DropPath", "StochasticDepth"} else {"drop_path_rate": 0.0}


def _step_fn(model: nn.Module, x: torch.Tensor, train: bool, precision: str):
    autocast = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if precision == "bf16" \
        else contextlib.nullcontext
    if not train:
        model.eval()

        def infer():
            with torch.inference_mode(), autocast():
                model(x)
        return infer
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    target = torch.randint(0, 1000, (x.shape[0],))

    def train_step():
        optimizer.zero_grad(set_to_none=True)
        with autocast():
            loss = F.cross_entropy(model(x), target)
        loss.backward()
        optimizer.step()
    return train_step


def _images_per_s(step, batch_size: int, iters: int) -> float:
    start = time.perf_counter()
    for _ in range(iters):
        step()
    return batch_size * iters / (time.perf_counter() - start)


def run_bench(name: str, vs: str = "torchvision", batch_size: int = 8, image_size: int = 224, train: bool = False,
              channels_last: bool = False, precision: str = "fp32", fuse: bool = False, threads: int | None = None,
              rounds: int = 5, iters: int = 3, warmup: int = 2) -> BenchResult:
    if precision not in ("fp32", "bf16"):
        raise ConfigError(f"--precision must be fp32 or bf16, got {precision!r}")
    if fuse and train:
        raise ConfigError("--fuse folds BatchNorm for inference; it cannot be combined with --train")
    if threads:
        torch.set_num_threads(threads)
    peer = build_peer(name, vs)
    ours = create_model(name, pretrained=peer.state_dict(), **_matching_regularisation(peer))
    x = torch.randn(batch_size, 3, image_size, image_size)
    with torch.inference_mode():
        max_diff = (ours.eval()(x[:1]) - peer.eval()(x[:1])).abs().max().item()
    if fuse:
        ours = fuse_batchnorm(ours)
    if channels_last:
        ours, peer = ours.to(memory_format=torch.channels_last), peer.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    steps = {"ours": _step_fn(ours, x, train, precision), "peer": _step_fn(peer, x, train, precision)}
    for step in steps.values():
        for _ in range(warmup):
            step()
    rates = {"ours": [], "peer": []}
    for r in range(rounds):
        # Alternate which goes first so that a slow phase of the machine does not always hit the same model.
        order = ("ours", "peer") if r % 2 == 0 else ("peer", "ours")
        for who in order:
            rates[who].append(_images_per_s(steps[who], batch_size, iters))
    return BenchResult(name, vs, "train" if train else "inference", batch_size, image_size, precision,
                       channels_last, fuse, max(rates["ours"]), max(rates["peer"]), statistics.median(rates["ours"]),
                       statistics.median(rates["peer"]), max_diff)


def render(results: list[BenchResult]) -> None:
    from backbonekit.tools.console import make_console
    from rich.table import Table

    table = Table(title=f"images/s, best of alternating rounds (medians in brackets), {torch.get_num_threads()} threads")
    for column in ("model", "vs", "mode", "batch", "size", "precision", "ours", "peer", "ours/peer", "max|diff|"):
        table.add_column(column, justify="right" if column not in ("model", "vs", "mode") else "left")
    for r in results:
        mode = r.mode + (" fused" if r.fused else "") + (" CL" if r.channels_last else "")
        table.add_row(r.model, r.peer, mode, str(r.batch_size), str(r.image_size), r.precision,
                      f"{r.ours_images_per_s:.2f} ({r.ours_median:.2f})",
                      f"{r.peer_images_per_s:.2f} ({r.peer_median:.2f})", f"{r.ratio:.3f}× ({r.median_ratio:.3f}×)",
                      f"{r.max_abs_diff:.1e}")
    make_console().print(table)
