"""The engine on its own, with a toy LightningModule: it must know nothing of any task but the module interface."""
import csv
import json
import os
import signal

import lightning.pytorch as pl
import pytest
import torch
import torch.nn.functional as F
import yaml
from torch.utils.data import DataLoader, TensorDataset

from backbonekit.training.callbacks import GracefulStop
from backbonekit.training.engine import EngineConfig, build_trainer, fit


class Toy(pl.LightningModule):
    def __init__(self, lr: float = 0.1, note: str = "toy"):
        super().__init__()
        self.save_hyperparameters()  # plain types only: the checkpoint must load with weights_only=True
        self.net = torch.nn.Linear(4, 3)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self.net(x), y)
        self.log("train/loss", loss, on_step=False, on_epoch=True)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self.net(x)
        self.log("val/loss", F.cross_entropy(logits, y))
        self.log("val/acc", (logits.argmax(1) == y).float().mean())

    def configure_optimizers(self):
        opt = torch.optim.SGD(self.parameters(), lr=self.hparams.lr)
        return {"optimizer": opt, "lr_scheduler": torch.optim.lr_scheduler.StepLR(opt, 1, gamma=0.5)}


def _loaders():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(48, 4, generator=g)
    y = x[:, :3].argmax(1)
    return DataLoader(TensorDataset(x[:32], y[:32]), batch_size=8), DataLoader(TensorDataset(x[32:], y[32:]),
                                                                                 batch_size=8)


def _cfg(tmp_path, **kw):
    return EngineConfig(**{"task": "toy", "epochs": 2, "out": str(tmp_path / "runs"), "monitor": "val/loss",
                           "mode": "min", "progress": False, "accelerator": "cpu", **kw})


def test_run_folder_holds_every_record(tmp_path, capsys):
    result = fit(Toy(), *_loaders(), _cfg(tmp_path), hparams={"data": {"rows": 48}})
    run = tmp_path / "runs" / "toy" / "exp"
    assert result.run_dir == run and result.exit_code == 0
    for name in ("hparams.yaml", "results.csv", "last.ckpt", "best.ckpt", "metrics.json", "results.png"):
        assert (run / name).is_file(), name
    assert not [p for p in run.iterdir() if p.name.endswith(".tmp")]  # atomic saves leave no temporaries

    with open(run / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["epoch"] for r in rows] == ["1", "2"]  # counted as the console lines count them
    assert {"train/loss", "val/loss", "val/acc", "lr"} <= set(rows[0])
    assert float(rows[1]["lr"]) == pytest.approx(0.05)  # the scheduler's rate after each epoch

    hp = yaml.safe_load((run / "hparams.yaml").read_text())
    assert hp["engine"]["task"] == "toy" and hp["data"] == {"rows": 48}

    # Everything Lightning saves (hparams, loops, callbacks, optimiser, RNG states) is plain data.
    ckpt = torch.load(run / "last.ckpt", weights_only=True)
    assert ckpt["hyper_parameters"] == {"lr": 0.1, "note": "toy"}
    assert ckpt["epoch"] == 1 and {"python", "numpy", "torch"} <= set(ckpt["rng_states"])
    assert ckpt["optimizer_states"] and ckpt["lr_schedulers"]

    summary = json.loads((run / "metrics.json").read_text())
    assert summary["epochs_done"] == 2 and not summary["interrupted"]
    assert summary["best"]["val/loss"] == pytest.approx(min(float(r["val/loss"]) for r in rows))

    # Not a terminal (pytest captures): one plain line per epoch, no progress bar.
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("epoch ")]
    assert len(lines) == 2 and lines[0].startswith("epoch 1/2") and "val/loss" in lines[0] and lines[0].endswith("s")


def test_runs_are_numbered_unless_named(tmp_path):
    names = [fit(Toy(), *_loaders(), _cfg(tmp_path, epochs=1, **kw)).run_dir.name
             for kw in ({}, {}, {"name": "mine"})]
    assert names == ["exp", "exp2", "mine"]


def test_progress_bar_on_request(tmp_path):
    from lightning.pytorch.callbacks import RichProgressBar

    from backbonekit.training.callbacks import EpochLine

    for progress, kind in ((True, RichProgressBar), (False, EpochLine)):
        trainer, _ = build_trainer(_cfg(tmp_path, progress=progress), tmp_path)
        assert any(isinstance(c, kind) for c in trainer.callbacks)


class GetsWorse(Toy):
    """Validation "accuracy" falls every epoch: only the first epoch is the best."""

    def on_validation_epoch_end(self):
        self.log("val/score", -float(self.current_epoch))


def test_last_checkpoint_follows_every_epoch_not_only_the_best(tmp_path):
    result = fit(GetsWorse(), *_loaders(), _cfg(tmp_path, epochs=3, monitor="val/score", mode="max"))
    last = torch.load(result.last_path, weights_only=True)
    best = torch.load(result.best_path, weights_only=True)
    assert best["epoch"] == 0 and last["epoch"] == 2  # resuming from last.ckpt must not go back to the best epoch
    assert result.best_score == 0.0
    assert not os.path.samefile(result.last_path, result.best_path)


class GetsBetter(Toy):
    def on_validation_epoch_end(self):
        self.log("val/score", float(self.current_epoch))


def test_last_checkpoint_is_a_link_to_best_when_both_are_of_the_same_step(tmp_path):
    """One serialisation per improving epoch: last.ckpt is another name of best.ckpt (the test above shows that the
    later saves of last.ckpt after a linked epoch leave best.ckpt as it was)."""
    result = fit(GetsBetter(), *_loaders(), _cfg(tmp_path, epochs=2, monitor="val/score", mode="max"))
    assert os.path.samefile(result.last_path, result.best_path)
    assert torch.load(result.last_path, weights_only=True)["epoch"] == 1


class HasModel(Toy):
    """Tasks keep their network as ``model``: what ``compile`` compiles."""

    def __init__(self):
        super().__init__()
        self.model = self.net


def test_compile_compiles_the_model_in_place_and_keeps_checkpoint_keys(tmp_path, monkeypatch, capsys):
    from torch._dynamo.utils import counters

    # Dynamo's "eager" backend: the same tracing and graph capture, without inductor's C++ build (40 s on 2 cores).
    compile_ = torch.nn.Module.compile
    monkeypatch.setattr(torch.nn.Module, "compile", lambda self, **kw: compile_(self, backend="eager", **kw))
    module = HasModel()
    keys = set(module.state_dict())
    counters.clear()
    result = fit(module, *_loaders(), _cfg(tmp_path, epochs=1, compile=True))
    assert counters["stats"]["unique_graphs"] >= 1  # the steps ran through torch.compile
    err = capsys.readouterr().err
    assert "compiling the model for training" in err and "compiled for validation: first batch in" in err
    assert set(torch.load(result.last_path, weights_only=True)["state_dict"]) == keys  # no "_orig_mod." prefixes


class StopsMidEpoch(pl.Callback):
    """A SIGTERM arriving at the second batch of the third epoch."""

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.current_epoch == 2 and batch_idx == 1:
            next(c for c in trainer.callbacks if isinstance(c, GracefulStop)).received = signal.SIGTERM


def test_a_run_resumed_mid_epoch_logs_every_epoch_once_with_its_rate(tmp_path, capsys):
    """The lr curve joins up after a resume (Lightning skips on_train_epoch_start there), and results.csv counts
    epochs as the console lines do."""
    first = fit(Toy(), *_loaders(), _cfg(tmp_path, epochs=4, name="r"), extra_callbacks=[StopsMidEpoch()])
    assert first.interrupted_by == signal.SIGTERM
    fit(Toy(), *_loaders(), _cfg(tmp_path, epochs=4, name="r", resume=str(first.last_path)))
    with open(first.run_dir / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["epoch"] for r in rows] == ["1", "2", "3", "4"]
    assert [float(r["lr"]) for r in rows] == pytest.approx([0.1, 0.05, 0.025, 0.0125])
    printed = [line.split()[1] for line in capsys.readouterr().out.splitlines() if line.startswith("epoch ")]
    assert printed[-1] == "4/4" and printed[-2] == "3/4"


def test_long_epochs_get_a_line_every_n_batches(tmp_path, capsys, monkeypatch):
    from backbonekit.training.callbacks import EpochLine

    monkeypatch.setattr(EpochLine, "batch_line_seconds", 0.0)  # every epoch counts as long: N = 1 batch
    fit(Toy(), *_loaders(), _cfg(tmp_path, epochs=1))
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("epoch ")]
    assert [line.split("  ")[1] for line in lines[:3]] == ["batch 1/4", "batch 2/4", "batch 3/4"]
    assert "loss " in lines[0] and "to the epoch's end" in lines[0]
    assert "val/loss" in lines[3] and len(lines) == 4  # then the epoch's own line, not a line for its last batch
