"""The steps every ``train TASK`` shares, once: seeding, the batch size (``auto`` searched in a trial process),
loaders, the engine, hparams.yaml, fit, then the best checkpoint read once and written as ``best.safetensors``.

A task contributes a ``TrainPlan`` (its configuration, data sets and what to monitor) and, optionally, what it
does with the best checkpoint afterwards (score it, draw it). ``run_record.start_training`` decides the run folder
around this.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import lightning.pytorch as pl
from torch.utils.data import Dataset

from backbonekit.training.autobatch import batch_size_scope, resolve_batch_size
from backbonekit.training.autobatch_step import AUTOBATCH_STEP, autobatch_recipe
from backbonekit.training.engine import EngineConfig, FitResult, fit
from backbonekit.training.loaders import make_loaders
from backbonekit.training.settings import TrainSettings
from backbonekit.training.task_io import save_task_weights
from backbonekit.training.task_spec import TaskSpec


@dataclass
class TrainPlan:
    """What one task brings to a training run."""
    config: dict                           # the task's configuration: ``Class(**config)``, recorded in checkpoints
    train_set: Dataset
    val_set: Dataset
    monitor: str                           # the validation metric that picks best.ckpt
    mode: str = "max"
    log_keys: tuple[str, ...] = ("train/loss", "val/loss")
    data: dict = field(default_factory=dict)       # hparams.yaml's ``data`` (the batch size is added)
    hparams: dict = field(default_factory=dict)    # further hparams.yaml sections
    collate_fn: Callable | None = None
    mixing: bool = False                   # batches are mixed (CutMix/MixUp): validation gets no collate of its own
    callbacks: tuple = ()
    metadata: dict = field(default_factory=dict)   # extra best.safetensors metadata (strings)


Finish = Callable[[FitResult, object, int, TrainPlan], None]  # (the fit, the best checkpoint's task, batch size, plan)


def train_task(args: TrainSettings, spec: TaskSpec, plan: Callable[[TrainSettings], TrainPlan],
               finish: Finish | None = None, run_task: str | None = None) -> FitResult:
    """Trains ``spec``'s task on ``plan(args)`` (seeded first, so data splits and weights repeat)."""
    with batch_size_scope():
        pl.seed_everything(args.seed, workers=True, verbose=False)
        p = plan(args)
        batch_size = resolve_batch_size(args.batch_size, AUTOBATCH_STEP, autobatch_recipe(spec, p.config, args.precision),
                                        max_batch=len(p.train_set), max_memory=args.max_memory,
                                        memory_fraction=args.memory_fraction)
        module = spec.task_class()(**p.config)
        train_loader, val_loader = make_loaders(p.train_set, p.val_set, batch_size, workers=args.workers,
                                                collate_fn=p.collate_fn, mixing=p.mixing)
        engine = EngineConfig(task=run_task or spec.name, epochs=args.epochs, monitor=p.monitor, mode=p.mode,
                              log_keys=p.log_keys, gradient_clip_val=args.gradient_clip(), **args.engine_options())
        hparams = {"task": {k: v for k, v in p.config.items() if k != "class_names"},
                   **({"class_names": p.config["class_names"]} if "class_names" in p.config else {}),
                   "data": {**p.data, "batch_size": batch_size}, **p.hparams}
        result = fit(module, train_loader, val_loader, engine, hparams=hparams, extra_callbacks=p.callbacks)
        if result.trainer.is_global_zero and result.best_path is not None and result.best_path.exists():
            best = spec.load(result.best_path)
            save_task_weights(best, dict(best.hparams), result.run_dir / "best.safetensors", extra=p.metadata)
            if finish is not None:
                finish(result, best, batch_size, p)
    return result
