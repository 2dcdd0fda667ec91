"""Run folders: ``runs/<task>/<name>``, numbered like Ultralytics (exp, exp2, …) unless a name is given."""
from __future__ import annotations

import os
from pathlib import Path

# Set by rank 0 so that processes started by DDP write into the same folder instead of numbering a new one.
ENV_RUN_DIR = "BACKBONEKIT_RUN_DIR"


def make_run_dir(out: str | Path, task: str, name: str | None = None, resume: str | Path | None = None) -> Path:
    if os.environ.get(ENV_RUN_DIR):
        return Path(os.environ[ENV_RUN_DIR])
    if resume is not None:
        run = Path(resume).resolve().parent  # resuming continues in the run's own folder
    elif name:
        run = Path(out) / task / name
    else:
        base = Path(out) / task
        run, i = base / "exp", 2
        while run.exists():
            run, i = base / f"exp{i}", i + 1
    run.mkdir(parents=True, exist_ok=True)
    os.environ[ENV_RUN_DIR] = str(run)
    return run
