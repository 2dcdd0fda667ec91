"""Throughput of our model against the peer library's, measured alternately in one process.

Machines are noisy (other processes, frequency scaling), so absolute images/s from two runs are not comparable;
rounds alternate ours and the peer in one process. Interference only ever slows a round down, so the fastest round of
each is the primary estimate (an A/A run of two identical models here: 0.996 on best rounds, 0.943 on medians); the
ratio of medians is reported too. Both models compute the same function:
the peer's random weights are loaded into ours and the outputs are compared before any timing.

Detectors (``efficientdet_dX`` against effdet's ``tf_efficientdet_dX``) are timed in predict mode: network, box
decoding and NMS, image to detections, as effdet's ``DetBenchPredict`` does. Their random weights get BatchNorm
statistics from a pass over random images first (fresh statistics would shrink every activation to ~0, all logits
would equal the class bias and the detections would compare nothing), and the detections of the model as timed
(fused, channels-last) are compared with effdet's.
"""
from __future__ import annotations

import contextlib
import math
import statistics
import time
from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from backbonekit.detection.postprocess import postprocess
from backbonekit.errors import ConfigError
from backbonekit.models.registry import create_model
from backbonekit.nn.batchnorm import reestimate_batch_norm
from backbonekit.nn.fuse import fuse_batchnorm

PEERS = ("torchvision", "timm")
DETECTOR_PEERS = ("effdet",)
CLASSIFIER_DEFAULTS = dict(vs="torchvision", batch_size=8, image_size=224)


@dataclass
class BenchResult:
    model: str
    peer: str
    mode: str                 # "inference", "train" or "predict" (detectors: network + decoding + NMS)
    batch_size: int
    image_size: int
    precision: str
    channels_last: bool
    fused: bool
    ours_images_per_s: float          # best round
    peer_images_per_s: float
    ours_median: float
    peer_median: float
    max_abs_diff: float               # detectors: of matched detections (box corners in pixels, scores)

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


def _alternate(steps: dict, batch_size: int, rounds: int, iters: int, warmup: int) -> dict[str, list[float]]:
    """images/s of each step per round, ``steps`` = {"ours": …, "peer": …}."""
    for step in steps.values():
        for _ in range(warmup):
            step()
    rates = {"ours": [], "peer": []}
    for r in range(rounds):
        # Alternate which goes first so that a slow phase of the machine does not always hit the same model.
        order = ("ours", "peer") if r % 2 == 0 else ("peer", "ours")
        for who in order:
            rates[who].append(_images_per_s(steps[who], batch_size, iters))
    return rates


def is_detector(name: str) -> bool:
    return name.startswith("efficientdet_d")


def run_bench(name: str, vs: str | None = None, batch_size: int | None = None, image_size: int | None = None,
              train: bool = False, channels_last: bool = False, precision: str = "fp32", fuse: bool = False,
              threads: int | None = None, rounds: int = 5, iters: int = 3, warmup: int = 2) -> BenchResult:
    """Our ``name`` against the same model of ``vs`` on the same weights. Unset options take the model's defaults:
    classifiers torchvision, batch 8, 224²; detectors effdet, batch 1, their own resolution (D0: 512²)."""
    if precision not in ("fp32", "bf16"):
        raise ConfigError(f"--precision must be fp32 or bf16, got {precision!r}")
    if fuse and train:
        raise ConfigError("--fuse folds BatchNorm for inference; it cannot be combined with --train")
    if threads:
        torch.set_num_threads(threads)
    options = dict(channels_last=channels_last, precision=precision, fuse=fuse, rounds=rounds, iters=iters,
                   warmup=warmup)
    if is_detector(name):
        return _run_detector_bench(name, vs or "effdet", batch_size or 1, image_size, train, **options)
    return _run_classifier_bench(name, vs or CLASSIFIER_DEFAULTS["vs"], batch_size or CLASSIFIER_DEFAULTS["batch_size"],
                                 image_size or CLASSIFIER_DEFAULTS["image_size"], train, **options)


def _run_classifier_bench(name: str, vs: str, batch_size: int, image_size: int, train: bool, channels_last: bool,
                          precision: str, fuse: bool, rounds: int, iters: int, warmup: int) -> BenchResult:
    peer = build_peer(name, vs)
    ours = create_model(name, pretrained=peer.state_dict(), **_matching_regularisation(peer))
    x = torch.randn(batch_size, 3, image_size, image_size)
    if fuse:
        ours = fuse_batchnorm(ours, inplace=True)
    if channels_last:
        ours, peer = ours.to(memory_format=torch.channels_last), peer.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    # Checked as timed: after folding and the memory-format change, so the fused model's outputs are checked too.
    with torch.inference_mode():
        max_diff = (ours.eval()(x[:1]) - peer.eval()(x[:1])).abs().max().item()
    steps = {"ours": _step_fn(ours, x, train, precision), "peer": _step_fn(peer, x, train, precision)}
    rates = _alternate(steps, batch_size, rounds, iters, warmup)
    return BenchResult(name, vs, "train" if train else "inference", batch_size, image_size, precision,
                       channels_last, fuse, max(rates["ours"]), max(rates["peer"]), statistics.median(rates["ours"]),
                       statistics.median(rates["peer"]), max_diff)


def build_detector_peer(name: str, library: str, image_size: int) -> nn.Module:
    """effdet's ``tf_efficientdet_dX`` with its predict bench (anchors, top-k, decoding, NMS), random weights."""
    if library not in DETECTOR_PEERS:
        raise ConfigError(f"--vs for a detector must be one of {', '.join(DETECTOR_PEERS)}, got {library!r}")
    try:
        import effdet
    except ImportError:
        raise ConfigError("effdet is not installed (pip install effdet)") from None
    peer_name = "tf_" + name
    if peer_name not in effdet.config.model_config.efficientdet_model_param_dict:
        raise ConfigError(f"effdet has no model {peer_name!r}")
    # effdet fixes its anchors and resampling sizes at build time: build it for the benchmarked size.
    return effdet.create_model(peer_name, bench_task="predict", pretrained=False, pretrained_backbone=False,
                               image_size=(image_size, image_size))


def calibrate_batchnorm(model: nn.Module, images: torch.Tensor, seed: int = 0) -> nn.Module:
    """Random BN affines and the statistics of one pass over ``images`` (BN in training mode, everything else in
    eval mode: stochastic depth during the pass would give statistics that eval-mode activations do not have, and
    they would grow layer by layer into saturated scores); BiFPN fusion weights unequal, so that an input paired
    with the wrong weight would show. Returns the model in eval mode."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("weights"):  # effdet edge_weights, our nodes.N.weights (conv weights: .weight)
                p.copy_(torch.rand(p.shape, generator=g) * 1.3 + 0.2)
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.copy_(torch.rand(m.num_features, generator=g) * 0.5 + 0.75)
                m.bias.copy_(torch.randn(m.num_features, generator=g) * 0.1)
    reestimate_batch_norm(model, [images])
    return model.eval()


def calibration_images(x: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """``x`` and random images besides, enough that the coarsest level (stride 128: one position per image at 128²)
    gets at least 16 positions per channel; with fewer, a channel there can get a near-zero variance that other
    images blow up."""
    size = x.shape[-1]
    extra = max(2, math.ceil(16 / math.ceil(size / 128) ** 2)) - x.shape[0]
    g = torch.Generator().manual_seed(seed)
    return torch.cat([x, torch.randn(max(0, extra), *x.shape[1:], generator=g)])


def _effdet_detections(output: torch.Tensor) -> list[dict[str, torch.Tensor]]:
    """effdet's (B, max_det, 6) rows [x1, y1, x2, y2, score, class + 1], zero-padded → our per-image dicts."""
    results = []
    for rows in output:
        rows = rows[rows[:, 4] > 0]
        results.append({"boxes": rows[:, :4], "scores": rows[:, 4], "labels": rows[:, 5].long() - 1})
    return results


def detection_difference(ours: list[dict], theirs: list[dict]) -> float:
    """Largest difference between two sets of detections per image, whatever their order: each detection is
    matched to the nearest one of the same class in the other set (max |diff| over box corners in pixels and the
    score), both ways. Infinite when the counts differ or a class has no counterpart.

    Order-free because candidates whose logits are exactly equal may come out of NMS in either order."""
    worst = 0.0
    for o, t in zip(ours, theirs, strict=True):
        if len(o["boxes"]) != len(t["boxes"]):
            return math.inf
        if not len(o["boxes"]):
            continue
        a = torch.cat([o["boxes"], o["scores"][:, None]], 1).float()
        b = torch.cat([t["boxes"], t["scores"][:, None]], 1).float()
        distance = (a[:, None] - b[None]).abs().amax(-1)
        distance[o["labels"][:, None] != t["labels"][None]] = math.inf
        worst = max(worst, distance.amin(1).max().item(), distance.amin(0).max().item())
    return worst


def _predict_fn(model, x: torch.Tensor, precision: str):
    """One call of ``model(x)`` from image to detections, for _alternate (outputs are discarded)."""
    autocast = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if precision == "bf16" \
        else contextlib.nullcontext

    def predict():
        with torch.inference_mode(), autocast():
            model(x)
    return predict


class _OursPredict(nn.Module):
    """Our detector from image to detections: heads → ``postprocess`` (top 5000 candidates, decoding, class-wise
    NMS, best 100), with effdet's limits and, like its predict bench without ``img_info``, no clipping."""

    def __init__(self, model: nn.Module, image_size: int, max_candidates: int, max_detections: int):
        super().__init__()
        self.model = model
        self.anchors = model.anchors((image_size, image_size))
        self.max_candidates, self.max_detections = max_candidates, max_detections

    def forward(self, x: torch.Tensor) -> list[dict[str, torch.Tensor]]:
        cls, box = self.model(x)  # per-level maps: postprocess reads them in place, no flattening copy
        return postprocess(cls, box, self.anchors.boxes, max_candidates=self.max_candidates,
                           max_detections=self.max_detections)


def detector_pair(name: str, vs: str, x: torch.Tensor) -> tuple[nn.Module, nn.Module]:
    """(ours, effdet's predict bench) on the same random weights, made to behave like trained ones on ``x``."""
    # The same random weights in every run (fused or not), and the caller's random state left as it was.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        peer = build_detector_peer(name, vs, x.shape[-1])
    calibrate_batchnorm(peer.model, calibration_images(x))
    with torch.no_grad():
        # Trained box nets predict small corrections (log size ratios within about ±2); random ones reach ±8, where
        # we bound exp() (anchors.MAX_LOG_RATIO) and effdet does not: such boxes would compare the bound only.
        peer.model.box_net.predict.conv_pw.weight.mul_(0.25)
    ours = create_model(name, num_classes=peer.model.config.num_classes, pretrained=peer.model.state_dict())
    return ours.eval(), peer.eval()


def _run_detector_bench(name: str, vs: str, batch_size: int, image_size: int | None, train: bool,
                        channels_last: bool, precision: str, fuse: bool, rounds: int, iters: int,
                        warmup: int) -> BenchResult:
    if train:
        raise ConfigError("detectors are benchmarked in predict mode (network, decoding, NMS); --train is not "
                          "supported for them")
    if image_size is None:
        from backbonekit.models.efficientdet import CONFIGS

        image_size = CONFIGS[name.removeprefix("efficientdet_")].image_size[0]
    x = torch.randn(batch_size, 3, image_size, image_size, generator=torch.Generator().manual_seed(1))
    model, peer = detector_pair(name, vs, x)
    config = peer.model.config
    ours = _OursPredict(model, image_size, config.max_detection_points, config.max_det_per_image)
    if fuse:
        ours.model = fuse_batchnorm(ours.model, inplace=True)
    if channels_last:
        ours, peer = ours.to(memory_format=torch.channels_last), peer.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():  # the model as timed (fused, channels-last) against effdet
        max_diff = detection_difference(ours(x), _effdet_detections(peer(x)))
    steps = {"ours": _predict_fn(ours, x, precision), "peer": _predict_fn(peer, x, precision)}
    rates = _alternate(steps, batch_size, rounds, iters, warmup)
    return BenchResult(name, vs, "predict", batch_size, image_size, precision, channels_last, fuse,
                       max(rates["ours"]), max(rates["peer"]), statistics.median(rates["ours"]),
                       statistics.median(rates["peer"]), max_diff)


def render(results: list[BenchResult]) -> None:
    from backbonekit.io.console import make_console
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
    if any(r.mode == "predict" for r in results):
        table.caption = ("predict: image → detections (network, decoding, NMS); max|diff| there: matched "
                         "detections, box corners in pixels and scores")
    make_console().print(table)
