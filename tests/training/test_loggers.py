"""``--logger csv|tensorboard|mlflow``: each logger's files are opened by that logger's own reader (TensorBoard's
EventAccumulator, the MLflow client) and hold the same epoch values as the run's results.csv."""
import csv

import lightning.pytorch as pl
import pytest
import torch
import torch.nn.functional as F
import yaml
from torch.utils.data import DataLoader, TensorDataset

from backbonekit.cli import main
from backbonekit.errors import ConfigError
from backbonekit.training import loggers
from backbonekit.training.engine import EngineConfig, fit

pytest.importorskip("tensorboard")
pytest.importorskip("mlflow")



class Toy(pl.LightningModule):
    def __init__(self, lr: float = 0.1, note: str = "toy"):
        super().__init__()
        self.save_hyperparameters()
        self.net = torch.nn.Linear(4, 3)

    def training_step(self, batch, batch_idx):
        loss = F.cross_entropy(self.net(batch[0]), batch[1])
        self.log("train/loss", loss, on_step=False, on_epoch=True)
        return loss

    def validation_step(self, batch, batch_idx):
        logits = self.net(batch[0])
        self.log("val/loss", F.cross_entropy(logits, batch[1]))
        self.log("val/acc", (logits.argmax(1) == batch[1]).float().mean())

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)


def _loaders():
    x = torch.randn(48, 4, generator=torch.Generator().manual_seed(0))
    y = x[:, :3].argmax(1)
    return (DataLoader(TensorDataset(x[:32], y[:32]), batch_size=8),
            DataLoader(TensorDataset(x[32:], y[32:]), batch_size=8))


def _cfg(tmp_path, **kw):
    return EngineConfig(**{"task": "toy", "epochs": 2, "out": str(tmp_path / "runs"), "monitor": "val/loss",
                           "mode": "min", "progress": False, "accelerator": "cpu", **kw})


def _results(run):
    with open(run / "results.csv") as f:
        return list(csv.DictReader(f))


def _tensorboard_scalars(log_dir) -> dict:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(log_dir))
    events.Reload()
    return {tag: [e.value for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def _mlflow_history(uri: str, run_id: str, key: str) -> list[float]:
    from mlflow.tracking import MlflowClient

    return [m.value for m in sorted(MlflowClient(uri).get_metric_history(run_id, key), key=lambda m: m.step)]


def test_tensorboard_and_mlflow_hold_the_runs_metrics_and_stay_in_its_folder(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # a logger writing to the working directory (./mlruns, ./lightning_logs) shows here
    result = fit(Toy(), *_loaders(), _cfg(tmp_path, out="runs", loggers=("csv", "tensorboard", "mlflow")))
    run = result.run_dir
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs"]
    rows = _results(run)
    assert len(rows) == 2 and (run / "results.png").is_file()  # the default record is still written

    scalars = _tensorboard_scalars(run / "tensorboard")
    for key in ("train/loss", "val/loss", "val/acc"):
        assert scalars[key] == pytest.approx([float(r[key]) for r in rows]), key

    from mlflow.tracking import MlflowClient

    hp = yaml.safe_load((run / "hparams.yaml").read_text())
    assert hp["engine"]["loggers"] == ["csv", "tensorboard", "mlflow"]
    where = hp["loggers"]["mlflow"]
    assert where["tracking_uri"] == (run / "mlruns").resolve().as_uri() and where["experiment"] == "toy"
    client = MlflowClient(where["tracking_uri"])
    found = client.search_runs([client.get_experiment_by_name("toy").experiment_id])
    assert [r.info.run_id for r in found] == [where["run_id"]]
    assert found[0].info.run_name == run.name and found[0].info.status == "FINISHED"
    assert found[0].data.params == {"lr": "0.1", "note": "toy"}  # the module's hyperparameters
    assert _mlflow_history(where["tracking_uri"], where["run_id"], "val/loss") == pytest.approx(
        [float(r["val/loss"]) for r in rows])

    err = capsys.readouterr().err
    assert f"TensorBoard: {run / 'tensorboard'}" in err and f"MLflow: run {where['run_id']}" in err


def test_a_resumed_run_goes_on_in_its_mlflow_run_at_a_given_uri(tmp_path):
    store = loggers.mlflow_uri(str(tmp_path / "store"))
    first = fit(Toy(), *_loaders(), _cfg(tmp_path, epochs=1, loggers=("mlflow",), mlflow_uri=store))
    assert not (first.run_dir / "mlruns").exists()  # --mlflow-uri is the only place MLflow writes
    run_id = yaml.safe_load((first.run_dir / "hparams.yaml").read_text())["loggers"]["mlflow"]["run_id"]
    fit(Toy(), *_loaders(), _cfg(tmp_path, epochs=2, loggers=("mlflow",), mlflow_uri=store,
                                 resume=str(first.last_path)))
    from mlflow.tracking import MlflowClient

    client = MlflowClient(store)
    assert len(client.search_runs([client.get_experiment_by_name("toy").experiment_id])) == 1
    assert _mlflow_history(store, run_id, "val/loss") == pytest.approx(
        [float(r["val/loss"]) for r in _results(first.run_dir)])


def test_train_takes_the_logger_from_a_config_file_and_records_it(tiny_runs, tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text("logger: tensorboard\n")  # one value, not a list
    data = tiny_runs["data"]["classify"]
    assert main(["train", "classify", "--data", str(data), "--config", str(config), "--model", "resnet18",
                 "--image-size", "16", "--epochs", "1", "--batch-size", "4", "--limit-train-batches", "1",
                 "--limit-val-batches", "1", "--progress", "lines", "--out", str(tmp_path / "runs")]) == 0
    run = tmp_path / "runs" / "classify" / "exp"
    assert yaml.safe_load((run / "run.yaml").read_text())["settings"]["logger"] == ["tensorboard"]
    assert _tensorboard_scalars(run / "tensorboard")["val/top1"] == pytest.approx(
        [float(r["val/top1"]) for r in _results(run)])


def test_the_default_writes_no_logger_files(tiny_runs):
    run = tiny_runs["sequence"]
    assert not (run / "tensorboard").exists() and not (run / "mlruns").exists()
    assert yaml.safe_load((run / "run.yaml").read_text())["settings"]["logger"] == ["csv"]
    assert "loggers" not in yaml.safe_load((run / "hparams.yaml").read_text())


@pytest.mark.parametrize("how", ["flag", "config"])
def test_an_unknown_logger_is_one_line_naming_the_choices(tmp_path, capsys, how):
    args = ["train", "detect", "--data", str(tmp_path), "--out", str(tmp_path / "runs")]
    if how == "flag":
        args += ["--logger", "csv", "wandb"]
    else:
        (tmp_path / "c.yaml").write_text("logger: [csv, wandb]\n")
        args += ["--config", str(tmp_path / "c.yaml")]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert "logger: must be one of csv, tensorboard, mlflow, got wandb" in err[-1]
    assert how == "flag" or len(err) == 1
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("name, package", [("tensorboard", "tensorboard"), ("mlflow", "mlflow")])
def test_a_missing_package_names_the_pip_extra(tmp_path, capsys, monkeypatch, name, package):
    monkeypatch.setattr(loggers, "_installed", lambda distribution: False)
    assert main(["train", "classify", "--data", str(tmp_path), "--out", str(tmp_path / "runs"),
                 "--logger", name]) == 2
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert f"--logger {name} needs the {package} package" in line and "backbonekit[loggers]" in line
    with pytest.raises(ConfigError, match=r"backbonekit\[loggers\]"):  # the engine checks too (a Python caller)
        loggers.make_loggers([name], tmp_path, "toy", None)
    assert not (tmp_path / "runs").exists()


def test_mlflow_uri_keeps_uris_and_makes_folders_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert loggers.mlflow_uri("store") == (tmp_path / "store").resolve().as_uri()
    for uri in ("sqlite:///mlflow.db", "http://localhost:5000", "file:///tmp/mlruns"):
        assert loggers.mlflow_uri(uri) == uri
