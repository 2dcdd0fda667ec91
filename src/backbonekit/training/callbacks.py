"""Callbacks of every run: per-epoch results.csv and console line, exact-resume RNG state, clean stop on signals."""
from __future__ import annotations

import csv
import math
import os
import random
import signal
import sys
import time
from pathlib import Path

import lightning.pytorch as pl
from lightning.pytorch.callbacks import ModelCheckpoint
import numpy as np
import torch

from backbonekit.training.units import shown



def _scalar(v) -> float:
    return float(v.item() if isinstance(v, torch.Tensor) else v)


def _first_lr(trainer) -> float | None:
    return trainer.optimizers[0].param_groups[0]["lr"] if trainer.optimizers else None


class ResultsCSV(pl.Callback):
    """One row per epoch: epoch, every logged scalar at epoch level, learning rate, seconds.

    Epochs are counted from 1, as the console line (``epoch 1/10``), the plots and ``epochs_done`` count them.
    """

    def __init__(self, path: Path):
        self.path = Path(path)
        self._start = time.time()
        self._lr = None

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._start = time.time()
        # The rate the epoch starts with: epoch-level schedulers have already stepped by on_train_epoch_end.
        self._lr = _first_lr(trainer)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        # A run resumed in the middle of an epoch skips on_train_epoch_start: without this its row would have no
        # rate and the lr curve a gap there.
        if self._lr is None:
            self._lr = _first_lr(trainer)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        # Lightning calls this after the epoch's validation, once the epoch-level training metrics exist.
        lr, self._lr = self._lr, None
        if not trainer.is_global_zero:
            return
        metrics = {k: _scalar(v) for k, v in trainer.callback_metrics.items()
                   if (isinstance(v, torch.Tensor) and v.numel() == 1) or isinstance(v, (int, float))}
        row = {"epoch": trainer.current_epoch + 1, **dict(sorted(metrics.items()))}
        if lr is not None:
            row["lr"] = lr
        row["seconds"] = round(time.time() - self._start, 2)
        self._append(row)

    def _append(self, row: dict) -> None:
        rows = []
        if self.path.exists():
            with open(self.path, newline="") as f:
                # A resumed run rewrites the epochs it repeats.
                rows = [r for r in csv.DictReader(f) if int(r["epoch"]) < row["epoch"]]
        rows.append(row)
        fields = list(dict.fromkeys(k for r in rows for k in r))
        tmp = self.path.with_suffix(".csv.tmp")
        with open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=fields)
            writer.writeheader()
            writer.writerows(rows)
        os.replace(tmp, self.path)


class EpochLine(pl.Callback):
    """Plain one-line-per-epoch log for logs and CI, where a progress bar would be noise.

    An epoch still running after ``batch_line_seconds`` also gets a line every N batches, N being the batches that
    first stretch took: a long epoch shows it is moving (and how long it has left) while short ones stay one line.
    """

    batch_line_seconds = 30.0

    def __init__(self, keys: tuple[str, ...]):
        self.keys = keys
        self.every: int | None = None
        self._start = time.time()

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._start = time.time()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if not trainer.is_global_zero:
            return
        done, total, elapsed = batch_idx + 1, trainer.num_training_batches, time.time() - self._start
        if self.every is None:
            if elapsed < self.batch_line_seconds:
                return
            self.every = done
        if done % self.every or done >= total:  # the epoch's own line follows its last batch
            return
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        parts = [f"epoch {trainer.current_epoch + 1}/{trainer.max_epochs}",
                 f"batch {done}/{total}" if math.isfinite(total) else f"batch {done}"]
        if isinstance(loss, torch.Tensor) and loss.numel() == 1:
            parts.append(f"loss {_scalar(loss):.4f}")
        parts.append(f"{elapsed:.1f}s")
        if math.isfinite(total):
            parts.append(f"about {elapsed / done * (total - done):.0f}s to the epoch's end")
        print("  ".join(parts), flush=True)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if not trainer.is_global_zero:
            return
        m = {k: v for k, v in trainer.callback_metrics.items() if not isinstance(v, torch.Tensor) or v.numel() == 1}
        # The keys asked for first, in their order, then any other epoch-level scalar the module logged.
        keys = [k for k in dict.fromkeys(self.keys) if k in m] + sorted(k for k in m if k not in self.keys)
        parts = [f"{k} {shown(k, _scalar(m[k]))}" for k in keys]
        print(f"epoch {trainer.current_epoch + 1}/{trainer.max_epochs}  " + "  ".join(parts)
              + f"  {time.time() - self._start:.1f}s", flush=True)


class CompileNotice(pl.Callback):
    """``--compile``: torch.compile works on the first batch of training and again on the first of validation
    (another graph), silently for 20-55 s on a small CPU; say so, and how long it took."""

    def __init__(self):
        self._started: dict[str, float | None] = {}

    def _start(self, stage: str) -> None:
        if stage not in self._started:
            self._started[stage] = time.time()
            print(f"compiling the model for {stage} (torch.compile): the first batch takes longer", file=sys.stderr,
                  flush=True)

    def _end(self, trainer, stage: str) -> None:
        started = self._started.get(stage)
        if started is not None and trainer.is_global_zero:
            print(f"compiled for {stage}: first batch in {time.time() - started:.1f}s", file=sys.stderr, flush=True)
            self._started[stage] = None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.is_global_zero:
            self._start("training")

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self._end(trainer, "training")

    def on_validation_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0) -> None:
        if trainer.is_global_zero:
            self._start("validation")

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        self._end(trainer, "validation")


class RNGState(pl.Callback):
    """Saves and restores the Python, NumPy and torch RNGs so a resumed run draws the same numbers.

    NumPy's state is stored as a tensor and plain ints so the checkpoint still loads with ``weights_only=True``.
    """

    def on_save_checkpoint(self, trainer, pl_module, checkpoint: dict) -> None:
        kind, keys, pos, has_gauss, cached = np.random.get_state()
        checkpoint["rng_states"] = {
            "python": random.getstate(), "torch": torch.get_rng_state(),
            "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                      "has_gauss": int(has_gauss), "cached": float(cached)},
        }
        if torch.cuda.is_available():
            checkpoint["rng_states"]["cuda"] = torch.cuda.get_rng_state_all()

    def on_load_checkpoint(self, trainer, pl_module, checkpoint: dict) -> None:
        states = checkpoint.get("rng_states")
        if not states:
            return
        trainer._backbonekit_rng_states = states  # for restore(): set again once the loader is rebuilt
        _set_rng_states(states)

    @staticmethod
    def restore(trainer) -> None:
        states = getattr(trainer, "_backbonekit_rng_states", None)
        if states:
            _set_rng_states(states)


def _set_rng_states(states: dict) -> None:
    version, internal, gauss = states["python"]
    random.setstate((version, tuple(internal), gauss))
    torch.set_rng_state(states["torch"])
    n = states["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"]))
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


class LoaderPosition(pl.Callback):
    """Tells a resumable training loader (training/loaders.py) how many batches of the epoch have been trained, so
    that a checkpoint saved mid-epoch (Ctrl+C, SIGTERM) resumes at the next one."""

    def on_train_start(self, trainer, pl_module) -> None:
        # Lightning builds the training loader and prefetches its first batch while configure_optimizers asks for
        # estimated_stepping_batches, before the checkpoint's loop state is read; it then never hands the saved
        # position to the loader. Hand it over here and start the epoch's iterator again from it.
        loop = trainer.fit_loop
        states, loop._combined_loader_states_to_load = loop._combined_loader_states_to_load, []
        if states and loop.restarting and loop._combined_loader is not None and loop._data_fetcher is not None:
            loop._combined_loader._load_state_dicts(states)
            iter(loop._data_fetcher)
            RNGState.restore(trainer)  # the discarded iterator drew a seed from the restored generator

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        loaders = trainer.train_dataloader
        for loader in loaders if isinstance(loaders, (list, tuple)) else [loaders]:
            if hasattr(loader, "batches_done"):
                loader.batches_done = batch_idx + 1


class ResumedSchedule(pl.Callback):
    """A resumed run's first step at the rate its schedule gives for that step. The optimiser's saved state holds the
    rate the old run last set (0 at the end of a finished cosine), and LambdaLR only sets a new one after a step: a
    resume with more epochs ran its whole first epoch at the old run's final rate. The schedule is rebuilt from this
    run's settings (training/optim.py), so its rate at the restored step is the stretched schedule's."""

    def on_train_start(self, trainer, pl_module) -> None:
        if trainer.ckpt_path is None:
            return
        for config in trainer.lr_scheduler_configs:
            scheduler = config.scheduler
            if isinstance(scheduler, torch.optim.lr_scheduler.LambdaLR):
                rates = [base * rule(scheduler.last_epoch)
                         for base, rule in zip(scheduler.base_lrs, scheduler.lr_lambdas)]
                for group, rate in zip(scheduler.optimizer.param_groups, rates):
                    group["lr"] = rate
                scheduler._last_lr = rates  # what get_last_lr() reports


class GracefulStop(pl.Callback):
    """SIGINT / SIGTERM: finish the current batch, write ``last.ckpt``, stop; the caller reports how to resume.

    Under DDP a signal may reach one process only (``kill`` of rank 0) or all of them (Ctrl+C, SLURM): the decision
    is shared every batch so that all processes save together (saving is a collective) and stop at the same step.
    """

    def __init__(self, last_path: Path):
        self.last_path = Path(last_path)
        self.received: int | None = None
        self._previous = {}

    def _handler(self, signum, frame) -> None:
        if self.received is not None:  # a second Ctrl+C: stop now
            raise KeyboardInterrupt
        self.received = signum
        print(f"\nreceived {signal.Signals(signum).name}: stopping after this batch and saving {self.last_path}",
              file=sys.stderr, flush=True)

    def on_train_start(self, trainer, pl_module) -> None:
        # Installed here, after Lightning has put in its own handlers, so ours are the ones in force.
        if _in_main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handler)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        stop = self.received is not None
        if trainer.world_size > 1:
            stop = trainer.strategy.reduce_boolean_decision(stop, all=False)
        if stop and not trainer.should_stop:
            if self.received is None:  # another process got the signal
                self.received = signal.SIGTERM
            trainer.save_checkpoint(self.last_path)
            trainer.should_stop = True

    def on_fit_end(self, trainer, pl_module) -> None:
        self._restore()

    def on_exception(self, trainer, pl_module, exception) -> None:
        self._restore()

    def _restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()


def _in_main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


class LastCheckpoint(ModelCheckpoint):
    """``last.ckpt`` after every epoch, for resuming. A callback of its own: ModelCheckpoint's ``save_last`` only
    copies a checkpoint it saves — the best — so last.ckpt would fall back to the best epoch and a resume would lose
    the epochs after it. Once ``stop`` has saved the state of an interrupted epoch, that file is left as it is.
    When ``best`` has just saved the same training step, last.ckpt becomes a hard link to that file instead of a
    second serialisation of the same state (0.3–0.6 s per improving epoch for a ResNet-18 and its optimiser)."""

    def __init__(self, run_dir: Path, stop: GracefulStop, best: ModelCheckpoint | None = None):
        super().__init__(dirpath=run_dir, filename="last", monitor=None, save_top_k=1, enable_version_counter=False,
                         auto_insert_metric_name=False)
        self.stop = stop
        self.best = best

    def _save_checkpoint(self, trainer, filepath: str) -> None:
        best = self.best
        # Decided from state every rank shares (not from the file system), so all ranks take the same branch and
        # meet the same barriers.
        same_step = (best is not None and trainer.global_step > 0 and best._last_global_step_saved == trainer.global_step
                     and bool(best._last_checkpoint_saved))
        if not same_step:
            super()._save_checkpoint(trainer, filepath)
            return
        if trainer.is_global_zero:
            trainer.strategy.checkpoint_io.link(best._last_checkpoint_saved, filepath)  # after best's write
        trainer.strategy.barrier("last_checkpoint_link")
        self._last_global_step_saved = trainer.global_step
        self._last_checkpoint_saved = filepath

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if self.stop.received is None:
            super().on_train_epoch_end(trainer, pl_module)

    def on_validation_end(self, trainer, pl_module) -> None:
        if self.stop.received is None:
            super().on_validation_end(trainer, pl_module)
