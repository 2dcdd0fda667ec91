"""A run's name stays inside --out, and a refused or failed command changes no file of an existing run."""
import hashlib
from pathlib import Path

import pytest

from backbonekit.cli import main

ARGS = ["--model", "resnet18", "--image-size", "16", "--batch-size", "4", "--epochs", "1", "--progress", "lines",
        "--limit-train-batches", "1", "--limit-val-batches", "1"]


def _snapshot(folder: Path) -> dict:
    """Every file and folder under ``folder``: its bytes' hash and its modification time."""
    return {str(p.relative_to(folder)): (hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir",
                                         p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*"))}


@pytest.mark.parametrize("name", ["../../escape", "a/b", "..", "", "/tmp/abs"])
def test_a_name_that_is_not_one_folder_inside_out_is_refused(name, tmp_path, capsys):
    out = tmp_path / "deep" / "runs"
    assert main(["train", "classify", "--data", "digits", *ARGS, "--out", str(out), "--name", name]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: --name") and "one folder name inside --out" in err[0]
    assert not any(tmp_path.rglob("*"))  # nothing was created, inside --out or beside it
