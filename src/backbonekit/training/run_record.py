"""A training run is a record: ``run.yaml`` in its folder holds every setting of the command that started it (data
paths made absolute, the split, the seed, the package version), written once before anything trains and never
rewritten.

- A new run gets a new folder: ``--name`` that exists is refused unless ``--exist-ok`` (which replaces it once the
  new run has saved a checkpoint, see ``replacing``); without
  ``--name`` runs number themselves (exp, exp2, …).
- ``--resume RUN`` (the folder or a file in it) restores every recorded setting. Only ``--epochs`` may be raised
  (each raise is appended to ``resumes.yaml``); a typed flag that conflicts with the record is an error naming the
  setting; a finished run says so and changes nothing. Where the run trains (devices, workers, threads, progress) may
  change.
- A run that fails before its first checkpoint leaves nothing behind.
- ``eval``/``predict`` read the record to score the run's own validation data (``recorded_settings``).
"""
from __future__ import annotations

import json
import os
import shutil
import sys
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import yaml

from backbonekit.errors import ConfigError
from backbonekit.training.preflight import check_train_settings
from backbonekit.training.run_dir import ENV_RUN_DIR
from backbonekit.training.settings import TrainSettings

RECORD = "run.yaml"
SPLIT_DEFAULTS = {"val_ratio": 0.2, "seed": 0, "val_data": None}
RESUMES = "resumes.yaml"
# Where and how fast the run trains, not what it computes: these may differ when it resumes.
ENVIRONMENT = ("workers", "threads", "progress", "devices", "accelerator", "strategy", "num_nodes", "max_memory",
               "memory_fraction", "compile")
# Which run this is, not how it trains: never part of the settings.
PLACE = ("out", "name", "resume", "exist_ok", "config", "func", "command", "task", "dataset")
# Settings that name files or folders: recorded absolute, so the run can be evaluated from anywhere.
PATH_SETTINGS = ("data", "val_data", "pretrained", "pretrained_backbone", "teacher", "unlabeled", "image_root")


def settings_of(args: TrainSettings) -> dict:
    """Every setting of the command, paths that exist made absolute."""
    settings = {}
    for key, value in args.items().items():
        if key in PLACE or key.startswith("_"):
            continue
        if key in PATH_SETTINGS and isinstance(value, str) and Path(value).exists():
            value = str(Path(value).resolve())
        settings[key] = list(value) if isinstance(value, tuple) else value
    return settings


def run_folder(path: str | Path) -> Path:
    """The run folder named by ``path``: the folder itself or any file in it (last.ckpt, best.safetensors)."""
    path = Path(path)
    return path if path.is_dir() else path.parent


def read_record(run_dir: Path) -> dict | None:
    path = run_dir / RECORD
    if not path.is_file():
        return None
    data = yaml.safe_load(path.read_text())
    if not isinstance(data, dict) or not isinstance(data.get("settings"), dict):
        raise ConfigError(f"{path}: not a run record (no settings)")
    return data


def recorded_settings(checkpoint: str | Path) -> dict | None:
    """The settings of the run a checkpoint belongs to, or None when there is no record beside it."""
    record = read_record(run_folder(checkpoint))
    return None if record is None else record["settings"]


def eval_source(checkpoint: str | Path, data: str | None, **split) -> dict:
    """What ``eval`` scores: ``--data`` when given, else the run's own recorded data; each split setting (``val_ratio``,
    ``seed``, …) as typed, else the run's. ``what`` says which, for the printout."""
    recorded = recorded_settings(checkpoint) or {}
    if data is None and "data" not in recorded:
        raise ConfigError(f"{checkpoint}: no run record ({RECORD}) beside it to find the run's data: give --data")
    same_data = data is None or _same("data", data, recorded.get("data"))
    source = {"data": recorded["data"] if data is None else data,
              "what": "the run's own validation data" if same_data else "other data (--data)"}
    for key, value in split.items():
        source[key] = value if value is not None else recorded.get(key, SPLIT_DEFAULTS.get(key))
    # Another ratio or seed on the run's own data draws a validation split from images the run trained on: its score
    # would be called "validation" while partly measuring training images, so it is refused rather than reported.
    moved = [key for key in ("val_ratio", "seed") if recorded and same_data and split.get(key) is not None
             and not _same(key, split[key], recorded.get(key, SPLIT_DEFAULTS[key]))]
    if moved:
        typed = ", ".join(f"--{k.replace('_', '-')} {split[k]} (the run: {recorded.get(k, SPLIT_DEFAULTS[k])})"
                          for k in moved)
        raise ConfigError(f"{checkpoint}: {typed} would score images the run trained on, as the run split "
                          f"{source['data']} its own way: leave them out to score the run's validation split, or "
                          "give --data for other data")
    return source


def target_epochs(run_dir: Path, record: dict) -> int:
    """The run's epochs: as recorded, or as last raised by a resume."""
    epochs = record["settings"].get("epochs")
    resumes = run_dir / RESUMES
    if resumes.is_file():
        for entry in yaml.safe_load(resumes.read_text()) or []:
            epochs = entry.get("epochs", epochs)
    return epochs


def epochs_done(run_dir: Path) -> int | None:
    """Epochs a run completed by its own account (``metrics.json`` of its last fit), or None when it never ended."""
    path = run_dir / "metrics.json"
    if not path.is_file():
        return None
    summary = json.loads(path.read_text())
    return summary.get("epochs_done")


def new_run_folder(out: str, task: str, name: str | None, exist_ok: bool) -> Path:
    base = Path(out) / task
    if name is not None:
        check_run_name(name)
        run = base / name
        if run.exists() and not run.is_dir():
            raise ConfigError(f"--name {name}: {run} is a file, not a run folder")
        if run.exists() and any(run.iterdir()):
            if not exist_ok:
                raise ConfigError(f"run {run} exists: choose another --name, continue it with --resume {run}, or "
                                  "replace it with --exist-ok")
        return run  # with --exist-ok the caller replaces it: `replacing`
    run, i = base / "exp", 2
    while run.exists():
        run, i = base / f"exp{i}", i + 1
    return run


@contextmanager
def replacing(run: Path, saved: Callable[[Path], bool] = lambda run: (run / "last.ckpt").is_file()):
    """``--exist-ok`` without losing the old run to a new one that fails: the old folder waits under a hidden name
    beside it while the new run is built in its place; when the command ends (a failure, Ctrl+C or success alike) it
    is removed if the new run saved a checkpoint, and otherwise moved back as it was (a rename: its files keep their
    bytes and times). A command killed outright (SIGKILL) leaves it under the hidden name, which the next
    ``--exist-ok`` of that name refuses to overwrite."""
    if not (run.is_dir() and any(run.iterdir())):
        yield
        return
    aside = run.parent / f".{run.name}.replaced"
    if aside.exists():
        raise ConfigError(f"{aside} holds the run an earlier --exist-ok of {run.name} set aside (that command was "
                          f"killed): move it back to {run} or delete it, then run this again")
    os.rename(run, aside)
    print(f"replacing {run} (--exist-ok): the old run is kept as {aside} until the new one saves a checkpoint",
          file=sys.stderr)
    try:
        yield
    finally:
        if saved(run):
            shutil.rmtree(aside)
        else:
            shutil.rmtree(run, ignore_errors=True)
            os.rename(aside, run)
            print(f"{run} is back as it was: the run meant to replace it saved no checkpoint", file=sys.stderr)


def check_run_name(name: str) -> None:
    """A run's name is one folder inside ``--out``: a separator or ``..`` would put the run elsewhere (``--name
    ../../escape`` landed outside runs/), and an empty name would be ``--out`` itself."""
    seps = {os.sep, "/"} | ({os.altsep} if os.altsep else set())
    if not name.strip() or name in (".", "..") or any(s in name for s in seps) or Path(name).is_absolute():
        raise ConfigError(f"--name {name!r}: a run's name is one folder name inside --out (no '/', no '..', not "
                          "empty)")


def write_record(run_dir: Path, command: str, settings: dict) -> None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        package = version("backbonekit")
    except PackageNotFoundError:
        package = "unknown"
    record = {"command": command, "backbonekit": package,
              "started": datetime.now(timezone.utc).isoformat(timespec="seconds"), "settings": settings}
    run_dir.mkdir(parents=True, exist_ok=True)
    tmp = run_dir / f".{RECORD}.tmp"
    tmp.write_text(yaml.safe_dump(_plain(record), sort_keys=False))
    tmp.replace(run_dir / RECORD)


def restore(args: TrainSettings, run_dir: Path, record: dict, command: str) -> int:
    """Puts the recorded settings into ``args`` (typed flags checked against them); returns the target epochs."""
    if record.get("command") != command:
        raise ConfigError(f"--resume {run_dir}: a `{record.get('command')}` run, not `{command}`")
    recorded = record["settings"]
    typed = args.explicit
    conflicts = differing(args.items(), recorded, typed - {"epochs"}, _resolved_settings(run_dir))
    if conflicts:
        raise ConfigError(f"--resume {run_dir}: {conflicts}. A resumed run keeps its settings (only --epochs may be "
                          "raised); start a new run to change them")
    epochs = target_epochs(run_dir, record)
    if "epochs" in typed:
        if args.epochs < epochs:
            raise ConfigError(f"--resume {run_dir}: --epochs {args.epochs} is fewer than the run's {epochs}")
        epochs = args.epochs
    for key, value in recorded.items():
        if key not in ENVIRONMENT or key not in typed:
            setattr(args, key, value)
    args.epochs = epochs
    if str(recorded.get("batch_size")) == "auto":
        resolved = _resolved_batch_size(run_dir)
        if resolved:
            args.batch_size = str(resolved)  # the size the run trained with, not a new search
    return epochs


def differing(settings: dict, recorded: dict, keys, resolved: dict | None = None) -> str:
    """The settings among ``keys`` whose value differs from the record, as ``--flag VALUE (the run: VALUE)``; ''
    when none do. Where the run trains is not compared. A setting recorded as None was left to the task's default
    (``--lr``: 0.1 for SGD, 1e-3 for AdamW): ``resolved`` holds the values the run actually used, compared and
    shown instead."""
    resolved = resolved or {}
    run = {k: resolved.get(k) if v is None else v for k, v in recorded.items()}
    keys = [k for k in sorted(keys) if k in run and k not in ENVIRONMENT and k not in PLACE
            and not _same(k, settings.get(k), run[k])]
    return "; ".join(f"--{k.replace('_', '-')} {_shown(settings.get(k))} (the run: {_shown(run[k])})"
                     for k in keys)


def start_training(args: TrainSettings, command: str, task_folder: str, train: Callable[[TrainSettings], int]) -> int:
    """Decides the run folder (new, or the resumed one), keeps the record, runs ``train(args)`` there."""
    if os.environ.get(ENV_RUN_DIR):  # a process started by DDP: rank 0 chose and recorded the run
        run_dir = Path(os.environ[ENV_RUN_DIR])
        if args.resume:
            restore(args, run_dir, read_record(run_dir) or {"command": command, "settings": {}}, command)
            args.resume = str(run_dir / "last.ckpt")
        return train(args)
    if args.resume:
        run_dir = _resume_folder(args.resume)
        record = read_record(run_dir)
        if record is None:
            raise ConfigError(f"--resume {args.resume}: no {RECORD} in {run_dir} (a run from before backbonekit "
                              "kept records): start a new run")
        epochs = restore(args, run_dir, record, command)
        check_train_settings(args, command)
        done = epochs_done(run_dir)
        if done is not None and done >= epochs:
            print(f"{run_dir} finished all {epochs} epochs; nothing to resume (raise --epochs to train longer)",
                  file=sys.stderr)
            return 0
        if epochs != target_epochs(run_dir, record):
            _append_resume(run_dir, epochs)
        args.resume, created, new_parents = str(run_dir / "last.ckpt"), False, []
        print(f"resuming {run_dir} (epochs {epochs})", file=sys.stderr)
    else:
        if getattr(args, "data", "") is None:
            raise ConfigError("--data is required (or --resume RUN to continue a run)")
        check_train_settings(args, command)
        run_dir = new_run_folder(args.out, task_folder, args.name, getattr(args, "exist_ok", False))
        with replacing(run_dir):
            return _train_new(args, run_dir, command, train)
    return _train_in(args, run_dir, command, train, created, new_parents)


def _train_new(args: TrainSettings, run_dir: Path, command: str, train: Callable) -> int:
    created = not run_dir.exists()
    new_parents = [p for p in run_dir.parents if not p.exists()]
    try:
        write_record(run_dir, command, settings_of(args))
    except BaseException:
        if created:
            shutil.rmtree(run_dir, ignore_errors=True)
        raise
    return _train_in(args, run_dir, command, train, created, new_parents)


def _train_in(args: TrainSettings, run_dir: Path, command: str, train: Callable, created: bool,
              new_parents: list[Path]) -> int:
    os.environ[ENV_RUN_DIR] = str(run_dir)
    for started in _watchers:
        started.append(run_dir)
    try:
        return train(args)
    except BaseException as e:
        removed = created and not (run_dir / "last.ckpt").exists()
        if removed:
            shutil.rmtree(run_dir, ignore_errors=True)  # nothing to resume: leave nothing behind
            for parent in new_parents:  # innermost first; only folders this command made, and only if empty
                if parent.is_dir() and not any(parent.iterdir()):
                    parent.rmdir()
        # Lightning answers a KeyboardInterrupt inside fit (a second Ctrl+C) with sys.exit(1).
        if isinstance(e, KeyboardInterrupt) or (isinstance(e, SystemExit) and e.code == 1):
            print(interrupted_at_once(run_dir, command, removed), file=sys.stderr)
            return 130
        raise
    finally:
        os.environ.pop(ENV_RUN_DIR, None)


_watchers: list[list[Path]] = []


@contextmanager
def runs_started():
    """The run folders that training started in while inside (a list that fills as runs start): how the Python API
    learns where the command it ran trained, the folder being chosen exactly as the command line chooses it."""
    started: list[Path] = []
    _watchers.append(started)
    try:
        yield started
    finally:
        _watchers.remove(started)


def interrupted_at_once(run_dir: Path, command: str, removed: bool) -> str:
    """What a run stopped without its own save (a second Ctrl+C) kept, and what it lost."""
    if removed:
        return f"stopped at once: no epoch had finished, so nothing was saved and {run_dir} was removed"
    results = run_dir / "results.csv"
    epochs = max(0, len(results.read_text().splitlines()) - 1) if results.is_file() else None
    kept = f"epoch {epochs}" if epochs else "the last save"
    return (f"stopped at once: {run_dir / 'last.ckpt'} holds {kept}; the batches trained since were not saved. "
            f"Continue with: backbonekit {command} --resume {run_dir}")


def _resume_folder(resume: str) -> Path:
    path = Path(resume)
    if not path.exists():
        raise ConfigError(f"--resume {resume}: no such run folder or checkpoint")
    run_dir = run_folder(path)
    if not (run_dir / "last.ckpt").is_file():
        raise ConfigError(f"--resume {resume}: {run_dir} has no last.ckpt (the run ended before its first epoch)")
    return run_dir


def _append_resume(run_dir: Path, epochs: int) -> None:
    path = run_dir / RESUMES
    entries = (yaml.safe_load(path.read_text()) or []) if path.is_file() else []
    entries.append({"resumed": datetime.now(timezone.utc).isoformat(timespec="seconds"), "epochs": epochs})
    path.write_text(yaml.safe_dump(entries, sort_keys=False))


def _resolved_settings(run_dir: Path) -> dict:
    """The task's configuration as the run resolved it (``hparams.yaml``'s ``task``: the defaults filled in)."""
    path = run_dir / "hparams.yaml"
    if not path.is_file():
        return {}
    return (yaml.safe_load(path.read_text()) or {}).get("task") or {}


def _resolved_batch_size(run_dir: Path) -> int | None:
    path = run_dir / "hparams.yaml"
    if not path.is_file():
        return None
    return ((yaml.safe_load(path.read_text()) or {}).get("data") or {}).get("batch_size")


def _same(key: str, a, b) -> bool:
    """Equal settings; for paths, also a folder and the one file in it that it stands for (a COCO folder and its
    annotations.json)."""
    a, b = _comparable(key, a), _comparable(key, b)
    if a == b:
        return True
    if key in PATH_SETTINGS and isinstance(a, str) and isinstance(b, str):
        return Path(a).parent == Path(b) or Path(b).parent == Path(a)
    return False


def _comparable(key: str, value):
    if key in PATH_SETTINGS and isinstance(value, str) and Path(value).exists():
        return str(Path(value).resolve())
    if isinstance(value, (list, tuple)):
        return [_comparable(key, v) for v in value]
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return str(value) if value is not None and not isinstance(value, bool) else value


def _shown(value) -> str:
    return " ".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)


def _plain(obj):
    """YAML-safe copy: tuples → lists, paths and other objects → strings."""
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, (int, float, str, bool)) or obj is None:
        return obj
    return str(obj)
