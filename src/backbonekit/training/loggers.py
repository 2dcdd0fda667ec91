"""Experiment loggers beside the run's own ``results.csv``: ``--logger csv|tensorboard|mlflow`` (several at once).

``csv`` is the run folder's ``results.csv`` and ``results.png``, written by every run (eval, resume and the plots read
them), so it is the default and adds nothing. ``tensorboard`` and ``mlflow`` are Lightning's own loggers, each
behind the ``loggers`` pip extra:

- TensorBoard writes event files to ``RUN/tensorboard``.
- MLflow writes to a local file store in ``RUN/mlruns`` (no server), or to ``--mlflow-uri``; the experiment is the
  task's folder name (``classify``), the MLflow run is named after the run folder, and a resumed run goes on
  logging into the same MLflow run (its id is kept in ``hparams.yaml``).

Nothing is written outside the run folder unless ``--mlflow-uri`` says so.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from urllib.parse import urlparse

from backbonekit.errors import ConfigError

LOGGERS = ("csv", "tensorboard", "mlflow")
EXTRA = "pip install 'backbonekit[loggers]'"
# Any one of these distributions makes the logger work: Lightning's TensorBoardLogger falls back to tensorboardX, and
# its MLFlowLogger needs MLflow's tracking client, which mlflow-skinny has (mlflow-tracing alone does not).
PACKAGES = {"tensorboard": ("tensorboard", "tensorboardX"), "mlflow": ("mlflow", "mlflow-skinny")}
TENSORBOARD_DIR = "tensorboard"
MLFLOW_DIR = "mlruns"


def logger_name(value: str) -> str:
    """An argparse ``type`` for ``--logger``: a known name whose package is installed."""
    name = value.strip().lower()
    if name not in LOGGERS:
        raise argparse.ArgumentTypeError(f"must be one of {', '.join(LOGGERS)}, got {value}")
    require(name)
    return name


def mlflow_uri(value: str) -> str:
    """An argparse ``type`` for ``--mlflow-uri``: a URI as given (``http://…``, ``sqlite:///…``, ``file:…``), a
    plain folder as an absolute ``file:`` URI, so the record points at the same store from any working directory."""
    scheme = urlparse(value).scheme
    if len(scheme) > 1:  # one letter is a Windows drive, not a scheme
        return value
    return Path(value).expanduser().resolve().as_uri()


def require(name: str) -> None:
    """Raises a one-line error naming the pip extra when ``name``'s package is missing."""
    if name in PACKAGES and not any(_installed(d) for d in PACKAGES[name]):
        raise argparse.ArgumentTypeError(f"--logger {name} needs the {PACKAGES[name][0]} package, which is not "
                                         f"installed: {EXTRA}")


def _installed(distribution: str) -> bool:
    try:
        version(distribution)
    except PackageNotFoundError:
        return False
    return True


def make_loggers(names, run_dir: Path, experiment: str, uri: str | None, run_id: str | None = None) -> list:
    """Lightning's loggers for ``names`` (``csv`` needs none), writing into ``run_dir`` unless ``uri`` is given;
    ``run_id`` continues an MLflow run (a resume)."""
    loggers = []
    for name in dict.fromkeys(names):
        if name not in LOGGERS:
            raise ConfigError(f"--logger {name}: must be one of {', '.join(LOGGERS)}")
        try:
            require(name)
        except argparse.ArgumentTypeError as e:
            raise ConfigError(str(e)) from None
        if name == "tensorboard":
            from lightning.pytorch.loggers import TensorBoardLogger

            # version "" keeps the event files in RUN/tensorboard itself, not in version_0, version_1, … below it.
            loggers.append(TensorBoardLogger(save_dir=run_dir, name=TENSORBOARD_DIR, version="",
                                             default_hp_metric=False))
        elif name == "mlflow":
            from lightning.pytorch.loggers import MLFlowLogger

            uri = uri or (run_dir / MLFLOW_DIR).resolve().as_uri()
            if _is_file_store(uri):
                # MLflow 3 refuses its file store unless asked (it points people at a database server): a folder
                # inside the run is what keeps a run self-contained, so it is asked for here, for this process.
                os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
            loggers.append(MLFlowLogger(experiment_name=experiment, run_name=run_dir.name, tracking_uri=uri,
                                        run_id=run_id))
    return loggers


def describe(loggers) -> dict:
    """Where each logger writes, for ``hparams.yaml`` (paths relative to the run folder) and the console. Asking an
    MLflow logger for its run starts that run (on rank 0; other ranks have none)."""
    from lightning.pytorch.loggers import MLFlowLogger, TensorBoardLogger

    where = {}
    for logger in loggers:
        if isinstance(logger, TensorBoardLogger):
            where["tensorboard"] = {"log_dir": TENSORBOARD_DIR}
        elif isinstance(logger, MLFlowLogger):
            # Lightning announces a new experiment at WARNING; the console line below says it once.
            quiet = logging.getLogger(MLFlowLogger.__module__)
            level = quiet.level
            quiet.setLevel(logging.ERROR)
            try:
                run_id = logger.run_id
            finally:
                quiet.setLevel(level)
            client = logger.experiment
            where["mlflow"] = {"tracking_uri": client.tracking_uri,
                               "experiment": client.get_experiment(logger.experiment_id).name, "run_id": run_id}
    return where


def announce(where: dict, run_dir: Path) -> None:
    if "tensorboard" in where:
        log_dir = run_dir / where["tensorboard"]["log_dir"]
        print(f"TensorBoard: {log_dir} (view: tensorboard --logdir {log_dir})", file=sys.stderr)
    if "mlflow" in where:
        m = where["mlflow"]
        print(f"MLflow: run {m['run_id']} in experiment {m['experiment']} at {m['tracking_uri']}", file=sys.stderr)


def recorded_run_id(hparams: dict | None) -> str | None:
    """The MLflow run a run folder logged to (``hparams.yaml``'s ``loggers``), to go on with it after a resume."""
    return (((hparams or {}).get("loggers") or {}).get("mlflow") or {}).get("run_id")


def _is_file_store(uri: str) -> bool:
    return urlparse(uri).scheme in ("", "file")
