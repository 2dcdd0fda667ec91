"""Folders a command writes into, and the one grammar of what ``eval`` and ``predict`` write (below)."""
from __future__ import annotations

import argparse
import csv
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

from backbonekit.errors import ConfigError


def output_folder(path: str | Path, flag: str = "--out", create: bool = True) -> Path:
    """``path`` as a folder to write into (made, with its parents, when ``create``); a file there is an error
    naming ``flag``, before anything is computed."""
    path = Path(path)
    blocker = next((p for p in (path, *path.parents) if p.exists() and not p.is_dir()), None)
    if blocker is not None:
        raise ConfigError(f"{flag} {path}: {blocker} is a file, not a folder")
    if create:
        path.mkdir(parents=True, exist_ok=True)
    return path


# --- The one grammar of what `eval TASK` and `predict TASK` write -------------------------------------------------
#
# Every eval and predict command takes ``--out DIR`` (where its files go) and ``--format F …`` (which files). eval
# writes ``metrics.<format>`` into ``--out``, by default ``eval/<split>/`` of the checkpoint's run folder (one folder
# a split, so a test-split eval never overwrites a val-split one); predict writes ``predictions.<format>`` (and a
# task's own files) into ``--out``, default ``predictions/``, or with ``--out -`` the one text format on stdout, a
# line an image. json and csv are every task's; a task adds its own (detect: png kitti coco; sequence: png) by
# declaring a ``Formats`` once in its commands module. The task's old output flags stay as ``add_old_output_flag``.

STDOUT = "-"
SHARED_FORMATS = {
    "eval": {"json": "metrics.json, every figure printed", "csv": "metrics.csv, one metric,value row a figure "
                                                                  "(nested names joined by /)"},
    "predict": {"json": "predictions.json, a list with an object an image (JSON lines with --out -)",
                "csv": "predictions.csv, a table (with --out -: on stdout)"},
}
STEMS = {"eval": "metrics", "predict": "predictions"}


@dataclass(frozen=True)
class Formats:
    """What one command (``verb``) of one task writes: the shared formats, its ``own`` (name → help; a shared name
    here changes only its help), those written when ``--format`` is not given, and file names other than
    ``<stem>.<format>`` (``files``, e.g. detect's json, since its predictions.json is the COCO results file)."""
    verb: str
    own: dict = field(default_factory=dict)
    default: tuple = ("json",)
    files: dict = field(default_factory=dict)

    @property
    def choices(self) -> dict[str, str]:
        return {**SHARED_FORMATS[self.verb], **self.own}


@dataclass(frozen=True)
class Output:
    """Where a command writes: ``folder`` (None: stdout), the ``formats`` asked for, and a file an old flag named
    for a format (``--csv FILE``) in ``files``."""
    folder: Path | None
    formats: tuple
    stem: str = "metrics"
    files: dict = field(default_factory=dict)
    names: dict = field(default_factory=dict)

    @property
    def to_stdout(self) -> bool:
        return self.folder is None

    def path(self, fmt: str) -> Path:
        """The file of ``fmt`` (its folder made)."""
        path = self.files.get(fmt) or self.folder / self.names.get(fmt, f"{self.stem}.{fmt}")
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def own_folder(self) -> Path:
        """The folder a task's own writers write into (made)."""
        return output_folder(self.folder)


def add_output_arguments(p: argparse.ArgumentParser, formats: Formats, out_help: str,
                         out_default: str | None = None) -> None:
    """``--out DIR`` and ``--format F …`` of an eval or predict command; the task's ``formats`` are its choices."""
    p.add_argument("--out", metavar="DIR", default=out_default, help=out_help)
    choices = formats.choices
    p.add_argument("--format", nargs="+", choices=tuple(choices), metavar="FORMAT",
                   help="what to write (several at once): " + "; ".join(f"{k}: {v}" for k, v in choices.items())
                        + f" (default: {' '.join(formats.default)})")


class _OldOutputFlag(argparse.Action):
    """An output flag a task had before ``--format``: says what replaced it, and records its format(s) and the file
    it named (``-`` for stdout) for ``predict_output``."""

    def __init__(self, option_strings, dest, fmt: str | None, file: bool, stdout: bool, replacement: str, **kwargs):
        self.fmt, self.file, self.stdout, self.replacement = fmt, file, stdout, replacement
        super().__init__(option_strings, dest, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        print(f"warning: {option_string} is deprecated, use {self.replacement}", file=sys.stderr)
        old = getattr(namespace, self.dest, None)
        old = dict(old) if isinstance(old, dict) else {}  # not a dict: argparse's default, or a parser's sentinel
        for fmt in ([self.fmt] if self.fmt else values):
            old[fmt] = STDOUT if self.stdout else values if self.file else None
        setattr(namespace, self.dest, old)


def add_old_output_flag(p: argparse.ArgumentParser, flag: str, replacement: str, fmt: str | None = None,
                        file: bool = False, stdout: bool = False, **kwargs) -> None:
    """``--json`` (``stdout``: JSON lines), ``--csv FILE`` (``file``: written there), ``--save png kitti`` (no
    ``fmt``: the formats are the values), kept working beside ``--format`` with a one-line warning."""
    nargs = 0 if stdout else None if file else "+"
    p.add_argument(flag, dest="old_output", action=_OldOutputFlag, fmt=fmt, file=file, stdout=stdout,
                   replacement=replacement, nargs=nargs, help=argparse.SUPPRESS, **kwargs)


def predict_output(args: argparse.Namespace, formats: Formats) -> Output:
    """What ``predict`` writes where, from ``--out``, ``--format`` and any old output flag; a folder that is a
    file, or a picture asked for on stdout, is an error before the model is loaded."""
    old = getattr(args, "old_output", None) or {}
    chosen = _chosen(args, formats, old)
    if args.out == STDOUT or STDOUT in old.values():
        if len(chosen) != 1 or chosen[0] not in SHARED_FORMATS["predict"]:
            raise ConfigError(f"--out - writes one text format to stdout (json or csv), not {' '.join(chosen)}")
        return Output(None, tuple(chosen), STEMS["predict"])
    folder = output_folder(args.out or "predictions", create=False)
    files = {fmt: Path(path) for fmt, path in old.items() if path}
    return Output(folder, tuple(chosen), STEMS["predict"], files, dict(formats.files))


def eval_output(args: argparse.Namespace, formats: Formats, default_folder: Path, stem: str = "metrics") -> Output:
    """Where ``eval`` writes its metrics: ``--out DIR`` (``metrics.<format>``), else ``default_folder`` with files
    named ``stem``. An old ``--out FILE.json`` (a file, where --out now names a folder) is still written, with a
    warning."""
    chosen = _chosen(args, formats, {})
    if args.out == STDOUT:
        raise ConfigError("--out -: eval writes files; give a folder")
    if args.out and Path(args.out).suffix == ".json" and not Path(args.out).is_dir():
        print(f"warning: --out {args.out}: a file is deprecated, --out names a folder (metrics.json is written "
              "into it)", file=sys.stderr)
        output_folder(Path(args.out).parent, create=False)
        return Output(Path(args.out).parent, tuple(dict.fromkeys(("json", *chosen))), "metrics",
                      {"json": Path(args.out)})
    folder = output_folder(args.out or default_folder, create=False)
    return Output(folder, tuple(chosen), "metrics" if args.out else stem, {}, dict(formats.files))


def _chosen(args: argparse.Namespace, formats: Formats, old: dict) -> list[str]:
    chosen = list(args.format or ([] if old else formats.default))
    return chosen + [fmt for fmt in old if fmt not in chosen]


def write_metrics(result: dict, output: Output) -> list[Path]:
    """eval's metrics in the formats asked for: json (as printed) and csv (a metric,value row each)."""
    written = []
    if "json" in output.formats:
        path = output.path("json")
        path.write_text(json.dumps(result, indent=2) + "\n")
        written.append(path)
    if "csv" in output.formats:
        path = output.path("csv")
        with open(path, "w", newline="") as f:
            writer = csv.writer(f, lineterminator="\n")
            writer.writerow(["metric", "value"])
            writer.writerows(_flatten(result))
        written.append(path)
    return written


def _flatten(value, prefix: str = ""):
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _flatten(item, f"{prefix}/{key}" if prefix else str(key))
    elif isinstance(value, (list, tuple)) and not all(isinstance(v, (int, float, str)) for v in value):
        for i, item in enumerate(value):
            yield from _flatten(item, f"{prefix}/{i}")
    else:
        yield prefix, json.dumps(value) if isinstance(value, (list, tuple)) else value


class RowWriter:
    """predict's shared formats, a row an image as it comes: json (a list in a file, or JSON lines on stdout) and
    csv (the task's ``columns``; ``csv_rows(row)`` gives its lines, e.g. one a box)."""

    def __init__(self, output: Output, columns: list[str], csv_rows):
        self.output, self.columns, self.csv_rows, self.rows = output, columns, csv_rows, []
        self.csv_file = self.csv = None

    def add(self, row: dict) -> None:
        if "json" in self.output.formats:
            if self.output.to_stdout:
                print(json.dumps(row), flush=True)
            else:
                self.rows.append(row)
        if "csv" in self.output.formats:
            if self.csv is None:  # opened at the first image: a command that fails before leaves no file
                self.csv_file = sys.stdout if self.output.to_stdout else open(self.output.path("csv"), "w",
                                                                               newline="")
                self.csv = csv.DictWriter(self.csv_file, self.columns, lineterminator="\n")
                self.csv.writeheader()
            self.csv.writerows(self.csv_rows(row))
            self.csv_file.flush()

    def close(self) -> list[Path]:
        """Writes what is kept to the end (the json list; an empty one for no image) and names the files."""
        if self.output.to_stdout:
            return []
        written = []
        if "json" in self.output.formats:
            path = self.output.path("json")
            path.write_text(json.dumps(self.rows, indent=1) + "\n")
            written.append(path)
        if "csv" in self.output.formats:
            if self.csv is None:
                self.csv_file = open(self.output.path("csv"), "w", newline="")
                csv.DictWriter(self.csv_file, self.columns, lineterminator="\n").writeheader()
            self.csv_file.close()
            written.append(self.output.path("csv"))
        return written
