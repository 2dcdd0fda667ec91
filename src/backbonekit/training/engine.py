"""Runs any task's LightningModule: run folder, checkpoints (best/last, atomic), logs, plots, resume, signals.

The engine knows nothing of tasks beyond the LightningModule interface and the metric to monitor.
"""
from __future__ import annotations

import json
import logging
import os
import signal
import sys
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

import lightning.pytorch as pl
import yaml
from lightning.pytorch.callbacks import ModelCheckpoint, RichProgressBar

from backbonekit.errors import ConfigError
from backbonekit.training.batchnorm_start import FreshBatchNormStart
from backbonekit.training.callbacks import (CompileNotice, EpochLine, GracefulStop, LastCheckpoint, LoaderPosition,
                                            ResultsCSV, ResumedSchedule, RNGState)
from backbonekit.training.checkpoint_io import BackgroundCheckpointIO
from backbonekit.training.ema import WarmupEMA
from backbonekit.training.loggers import announce, describe, make_loggers, recorded_run_id
from backbonekit.training.plots import plot_results
from backbonekit.training.run_dir import ENV_RUN_DIR, make_run_dir
from backbonekit.training.run_record import _plain
from backbonekit.training.units import UNIT_NOTE


@dataclass
class EngineConfig:
    task: str
    epochs: int = 10
    out: str = "runs"
    name: str | None = None
    resume: str | None = None
    precision: str = "32"
    devices: int | str = 1
    accelerator: str = "auto"
    strategy: str = "auto"
    num_nodes: int = 1
    deterministic: bool = False
    compile: bool = False                   # torch.compile the task's ``model`` (state-dict keys unchanged)
    ema_decay: float | None = None          # validate and checkpoint an exponential moving average of the weights
    monitor: str = "val/top1"
    mode: str = "max"
    log_keys: tuple[str, ...] = ("train/loss", "val/loss")
    progress: bool | None = None            # None: a progress bar on a terminal, one line per epoch otherwise
    gradient_clip_val: float | None = None
    limit_train_batches: int | float | None = None
    limit_val_batches: int | float | None = None
    loggers: tuple[str, ...] = ("csv",)     # training/loggers.py: csv (always written), tensorboard, mlflow
    mlflow_uri: str | None = None           # None: a file store in the run folder


@dataclass
class FitResult:
    run_dir: Path
    best_path: Path | None
    last_path: Path
    best_score: float | None
    metrics: dict = field(default_factory=dict)
    interrupted_by: int | None = None       # the signal that stopped the run early, if any
    trainer: pl.Trainer | None = None

    @property
    def exit_code(self) -> int:
        return 0 if self.interrupted_by is None else 128 + self.interrupted_by


def build_trainer(cfg: EngineConfig, run_dir: Path, extra_callbacks=()) -> tuple[pl.Trainer, dict]:
    progress = sys.stdout.isatty() if cfg.progress is None else cfg.progress
    parts = {
        "checkpoint": ModelCheckpoint(dirpath=run_dir, filename="best", monitor=cfg.monitor, mode=cfg.mode,
                                      save_top_k=1, enable_version_counter=False, auto_insert_metric_name=False),
        "stop": GracefulStop(run_dir / "last.ckpt"),
    }
    parts["last"] = LastCheckpoint(run_dir, parts["stop"], best=parts["checkpoint"])
    callbacks = [parts["checkpoint"], parts["last"], parts["stop"], ResultsCSV(run_dir / "results.csv"), RNGState(),
                 ResumedSchedule(), LoaderPosition(), FreshBatchNormStart(),
                 RichProgressBar() if progress else EpochLine(cfg.log_keys + (cfg.monitor,)), *extra_callbacks]
    if cfg.compile:
        callbacks.append(CompileNotice())
    if cfg.ema_decay is not None:
        if not 0 < cfg.ema_decay < 1:
            raise ConfigError(f"--ema must be between 0 and 1 (a decay such as 0.999), got {cfg.ema_decay}")
        # Lightning swaps the average in for each validation and saves it as the checkpoint's state_dict (the live
        # weights ride along for --resume), so best.ckpt and everything exported from it hold the average. Its decay
        # warms up with the updates (training/ema.py): a fixed 0.999 left short runs at their random start.
        callbacks.append(WarmupEMA(cfg.ema_decay))
    loggers = make_loggers(cfg.loggers, run_dir, cfg.task, cfg.mlflow_uri, run_id=_resumed_mlflow_run(cfg, run_dir))
    trainer = pl.Trainer(
        default_root_dir=run_dir, max_epochs=cfg.epochs, precision=cfg.precision, devices=cfg.devices,
        accelerator=cfg.accelerator, strategy=cfg.strategy, num_nodes=cfg.num_nodes, logger=loggers or False,
        callbacks=callbacks, plugins=[BackgroundCheckpointIO()], enable_progress_bar=progress,
        enable_model_summary=False, deterministic=cfg.deterministic, num_sanity_val_steps=0,
        gradient_clip_val=cfg.gradient_clip_val, limit_train_batches=cfg.limit_train_batches,
        limit_val_batches=cfg.limit_val_batches, log_every_n_steps=10)
    parts["loggers"] = loggers
    return trainer, parts


def _resumed_mlflow_run(cfg: EngineConfig, run_dir: Path) -> str | None:
    """A resumed run goes on logging into the MLflow run it started (named in its hparams.yaml)."""
    path = run_dir / "hparams.yaml"
    if cfg.resume is None or "mlflow" not in cfg.loggers or not path.is_file():
        return None
    return recorded_run_id(yaml.safe_load(path.read_text()))


def fit(module: pl.LightningModule, train_loader, val_loader, cfg: EngineConfig, *, hparams: dict | None = None,
        extra_callbacks=()) -> FitResult:
    """Train ``module``; returns where everything was written. Seed before building the module for reproducibility."""
    owns_run_dir = ENV_RUN_DIR not in os.environ  # DDP children inherit the folder chosen by rank 0
    run_dir = make_run_dir(cfg.out, cfg.task, cfg.name, cfg.resume)
    try:
        return _fit_in(run_dir, module, train_loader, val_loader, cfg, hparams, extra_callbacks)
    finally:
        if owns_run_dir:
            os.environ.pop(ENV_RUN_DIR, None)


def _fit_in(run_dir: Path, module, train_loader, val_loader, cfg: EngineConfig, hparams, extra_callbacks) -> FitResult:
    with _quiet_lightning():
        trainer, parts = build_trainer(cfg, run_dir, extra_callbacks)
    where = describe(parts["loggers"]) if trainer.is_global_zero else {}
    if trainer.is_global_zero and not (run_dir / "hparams.yaml").exists():  # a resumed run keeps its own
        with open(run_dir / "hparams.yaml", "w") as f:
            yaml.safe_dump({"engine": _plain(asdict(cfg)), **({"loggers": where} if where else {}),
                            **_plain(hparams or {})}, f, sort_keys=False)
    announce(where, run_dir)
    if cfg.compile:
        module.model.compile()  # in place: the module and its checkpoint keys stay as they are
    with warnings.catch_warnings(), _quiet_lightning():
        # Small data sets and CPU runs trigger advice that does not apply (worker counts, log intervals); the run
        # folder is ours and holds hparams.yaml before the first checkpoint.
        for message in (r".*does not have many workers", r".*log_every_n_steps", r".*smaller than the logging",
                        r"Checkpoint directory .* exists and is not empty", r".*LeafSpec.* is deprecated"):
            warnings.filterwarnings("ignore", message=message)
        trainer.fit(module, train_loader, val_loader, ckpt_path=cfg.resume)

    checkpoint = parts["checkpoint"]
    result = FitResult(run_dir=run_dir, best_path=Path(checkpoint.best_model_path) if checkpoint.best_model_path
                       else None, last_path=run_dir / "last.ckpt",
                       best_score=float(checkpoint.best_model_score) if checkpoint.best_model_score is not None
                       else None, interrupted_by=parts["stop"].received, trainer=trainer)
    result.metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if getattr(v, "numel", lambda: 1)() == 1}
    if trainer.is_global_zero:
        plot_results(run_dir / "results.csv", run_dir / "results.png")
        summary = {"unit": UNIT_NOTE, "final": result.metrics, "best": {cfg.monitor: result.best_score},
                   "epochs_done": trainer.current_epoch, "interrupted": result.interrupted_by is not None}
        (run_dir / "metrics.json").write_text(json.dumps(summary, indent=2))
        if result.interrupted_by is not None:
            name = signal.Signals(result.interrupted_by).name
            print(f"stopped by {name}; saved {result.last_path}; resume with --resume {result.last_path}",
                  file=sys.stderr)
    return result


class _quiet_lightning:
    """Lightning's start-up banners (GPU/TPU availability, tips) at INFO level would bury the epoch lines."""

    def __enter__(self):
        self.loggers = [logging.getLogger(n) for n in ("lightning.pytorch", "lightning.fabric", "lightning")]
        self.levels = [lg.level for lg in self.loggers]
        for lg in self.loggers:
            lg.setLevel(logging.WARNING)

    def __exit__(self, *exc):
        for lg, level in zip(self.loggers, self.levels):
            lg.setLevel(level)
