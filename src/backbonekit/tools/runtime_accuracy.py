"""``bench --checkpoint RUN/best.ckpt --runtimes …``: a trained classifier on every runtime, each row with the top-1
of the very variant timed on the run's own validation split, beside its images/s and its size on disk.

Ours: the checkpoint as ``eval`` loads it (BatchNorm folded) for the torch runtimes; the file ``backbonekit export``
writes (normalisation and softmax inside, uint8 images in) for the export runtimes; for the int8 ones that file
quantised by ``backbonekit quantize``'s own path (``training/int8.py``): calibrated on the run's training images,
its layer types kept float by the same ``--keep-float auto`` measurement (the rows' images, the default limit of
1 point), but never gated: every row is shown with its score. The peer (torchvision or timm): the same trained
weights in the peer's own model (``peer_weights.py``), eager, and exported and quantised the same way (the same
calibration images and the layer types ours kept float). Every variant is scored on the same images and timed on
a batch of them, as ``runtime_bench`` times the random-weights rows.
"""
from __future__ import annotations

import statistics
import tempfile
from pathlib import Path
from typing import Callable

import torch
from torch.utils.data import Subset

from backbonekit.classification.spec import SPEC as CLASSIFY
from backbonekit.errors import ConfigError
from backbonekit.tools.runtime_bench import EXPORTED, RuntimeRow, alternate, as_tensor, module_mb, torch_variant

SCORING_BATCH = 64  # eval classify's default batch size


def require_classifier(checkpoint: str | Path) -> None:
    """A ``train classify`` checkpoint, else one line saying what takes the others."""
    from backbonekit.tasks import all_tasks
    from backbonekit.training.task_io import read_trained

    path = Path(checkpoint)
    if not path.is_file():
        raise ConfigError(f"--checkpoint {path}: {'a folder' if path.is_dir() else 'no such file'}")
    all_tasks()
    task = read_trained(path)[0].get("task")
    if task != CLASSIFY.name:
        raise ConfigError(f"--checkpoint {path}: a `{task}` checkpoint; bench's accuracy rows are for classifiers "
                          f"(top-1): `backbonekit quantize --checkpoint {path}` scores and gates {task} int8")


def validation_images(checkpoint: str | Path, image_size: int, limit: int | None = None):
    """The run's validation split as ``eval classify`` scores it; ``limit``: that many of its images, drawn evenly."""
    from backbonekit.classification.int8 import run_data

    val = run_data(checkpoint, image_size).val
    if limit is None or limit >= len(val):
        return val
    return Subset(val, torch.linspace(0, len(val) - 1, limit).round().long().unique().tolist())


def top1(model: Callable, images, batch_size: int = SCORING_BATCH) -> float:
    """Top-1 (%) of ``model`` (images → logits, or a runner's outputs, logits first) on ``images``."""
    from backbonekit.classification.int8 import top1 as task_top1

    return task_top1(lambda x: as_tensor(model(x)), images, batch_size)


def run_checkpoint_bench(checkpoint: str | Path, runtimes: list[str], vs: str = "torchvision", batch_size: int = 1,
                         rounds: int = 5, iters: int = 3, warmup: int = 2, limit_images: int | None = None,
                         keep_float: str = "auto", progress: Callable[[str], None] | None = None
                         ) -> tuple[list[RuntimeRow], str]:
    """(rows of ours and of the peer on each runtime, with their top-1; why there are no peer rows, or '');
    ``keep_float``: as ``backbonekit quantize --keep-float`` (auto, none, or layer types)."""
    from backbonekit.tools.peer_weights import peer_task

    say = progress or (lambda text: None)
    require_classifier(checkpoint)
    trained = CLASSIFY.load(checkpoint, fuse=True)  # what eval runs
    images = validation_images(checkpoint, trained.cfg.image_size, limit_images)
    x = torch.stack([images[i % len(images)][0] for i in range(batch_size)])
    peer, why = peer_task(CLASSIFY.load(checkpoint), vs, x)
    if peer is None:
        say(f"no {vs} rows: {why}")
    with tempfile.TemporaryDirectory(prefix="backbonekit-bench-") as folder:
        variants = Variants(Path(checkpoint), trained, peer, images, Path(folder), say, keep_float)
        steps, sizes = {}, {}
        for runtime, who in _variants(runtimes, vs, peer is not None):
            say(f"preparing {runtime} ({who})")
            steps[(runtime, who)], sizes[(runtime, who)] = variants.prepare(who, runtime)
        say(f"scoring {len(steps)} variants on {len(images)} validation images")
        scores = {key: top1(step, images) for key, step in steps.items()}
        with torch.inference_mode():
            reference = (peer or trained)(x)
            diffs = {key: float((as_tensor(step(x)) - reference).abs().max()) for key, step in steps.items()}
        scale = max(float(reference.abs().max()), 1e-30)
        say(f"timing {len(steps)} variants, {rounds} alternating rounds")
        rates = alternate(steps, x, rounds, iters, warmup)
    rows = [RuntimeRow(runtime, who, statistics.median(r), max(r), min(r), diffs[(runtime, who)],
                       diffs[(runtime, who)] / scale, sizes[(runtime, who)], scores[(runtime, who)])
            for (runtime, who), r in rates.items()]
    return rows, why


def _variants(runtimes: list[str], vs: str, with_peer: bool) -> list[tuple[str, str]]:
    """(runtime, who) in order: the peer eager, then ours on each runtime and the peer on each export runtime."""
    keys = [("torch", vs)] * with_peer
    for runtime in runtimes:
        keys += [(runtime, "ours")] + [(runtime, vs)] * (with_peer and runtime in EXPORTED)
    return list(dict.fromkeys(keys))


class Variants:
    """Each (who, runtime) of a trained classifier as a function of images, and its size on disk: ``folder`` holds
    the exported and quantised files."""

    def __init__(self, checkpoint: Path, trained, peer, images, folder: Path, say: Callable[[str], None],
                 keep_float: str = "auto"):
        self.checkpoint, self.trained, self.peer, self.images = checkpoint, trained, peer, images
        self.folder, self.say, self.keep_float = folder, say, keep_float
        self.kept: dict[str, list[str]] = {}  # int8 runtime → the layer types ours kept float (the peer's too)
        self.calibration: torch.Tensor | None = None

    def prepare(self, who: str, runtime: str) -> tuple[Callable, float]:
        model = self.trained if who == "ours" else self.peer
        if runtime not in EXPORTED:
            module, layout = torch_variant(model, runtime)
            return (lambda images: module(layout(images))), module_mb(model)
        base, _, precision = runtime.partition("-")
        path = self.int8(who, base) if precision == "int8" else self.fp32(who)
        if base == "onnxruntime":
            from backbonekit.io.onnx_export import OnnxRunner

            return OnnxRunner(path), path.stat().st_size / 1e6
        from backbonekit.io.openvino_runtime import OpenVinoRunner

        return OpenVinoRunner(path, "bf16" if precision == "bf16" else "fp32"), path.stat().st_size / 1e6

    def fp32(self, who: str) -> Path:
        """The file ``backbonekit export`` writes (the peer's: its model in the same wrapper), exported once."""
        from backbonekit.classification.export import export_classifier_onnx
        from backbonekit.nn.fuse import fuse_batchnorm

        path = self.folder / f"{'ours' if who == 'ours' else 'peer'}.onnx"
        if not path.exists():
            export_classifier_onnx(self.trained if who == "ours" else fuse_batchnorm(self.peer), path)
        return path

    def int8(self, who: str, runtime: str) -> Path:
        """The fp32 file quantised for ``runtime`` on the run's training images: ours by quantize's own path
        (its keep-float measurement included), the peer's with the layer types ours kept float."""
        import onnx

        from backbonekit.classification import int8 as support
        from backbonekit.io.onnx_export import read_metadata
        from backbonekit.io.quantize import float_nodes, quantize_onnx, require

        require(runtime)
        out = self.folder / f"{'ours' if who == 'ours' else 'peer'}.int8-{runtime}.onnx"
        if out.exists():
            return out
        if who == "ours":
            return self._quantise_ours(runtime, out)
        self.int8("ours", runtime)  # its decisions first
        fp32 = self.fp32(who)
        kept, _ = float_nodes(onnx.load(str(fp32)), support.SCOPES["backbone"], self.kept[runtime])
        quantize_onnx(fp32, out, runtime, self.calibration.numpy(), kept,
                      {**read_metadata(fp32), "precision": "int8", "runtime": runtime, "scope": "backbone",
                       "kept_float_types": self.kept[runtime]})
        return out

    def _quantise_ours(self, runtime: str, out: Path) -> Path:
        from backbonekit.classification import int8 as support
        from backbonekit.training.int8 import Int8Options, calibration_images, quantise_and_score
        options = Int8Options(runtime=runtime, keep_float=self.keep_float)
        if self.calibration is None:
            self.calibration, source = calibration_images(self.checkpoint, support, self.trained.cfg, options)
            self.say(f"int8: calibrating on {len(self.calibration)} images of {source}")
        work = self.folder / f"quantise-{runtime}"
        work.mkdir()
        figures = quantise_and_score(self.checkpoint, CLASSIFY, support, self.fp32("ours"), self.calibration, options,
                                     work, score_model=lambda model: top1(model, self.images))
        Path(figures["candidate"]).rename(out)
        self.kept[runtime] = figures["kept_float_types"]
        alone = ", ".join(f"{k} {d:+.2f}" for k, d in figures["drop_by_type_alone"].items())
        self.say(f"{runtime}-int8: kept float: {', '.join(self.kept[runtime]) or 'none'}"
                 + (f" (top-1 lost with one type alone int8: {alone})" if alone else ""))
        return out
