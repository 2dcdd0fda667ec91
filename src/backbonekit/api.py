"""The commands as Python functions: ``bk.train``, ``bk.evaluate``, ``bk.predict``, ``bk.export``, ``bk.explain``.

Each takes the options of its command as keywords, under the same names (``batch_size`` or ``"batch-size"`` for
``--batch-size``), with the same defaults, checks and run record, because it runs the command itself: the keywords
are checked against the command's own options (a typo is one error naming the close match; a wrong value one error
naming the key, as in a ``--config`` file), then parsed by the command's parser and run by its function. Errors are
``backbonekit.errors.BackbonekitError`` subclasses with the command line's one-line message, never ``SystemExit``.

    import backbonekit as bk

    run = bk.train("classify", data="digits", model="resnet18", image_size=32, epochs=4)
    run.metrics["best"]["val/top1"], run.best_checkpoint
    model = run.load()
"""
from __future__ import annotations

import contextlib
import difflib
import io
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from backbonekit.errors import BackbonekitError, ConfigError

@dataclass
class Run:
    """A training run's folder and what it holds.

    ``folder``: the run folder (``runs/TASK/NAME``); ``exit_code``: the command's exit status.
    """
    folder: Path
    exit_code: int = 0                      # 0: trained to the end; 130: stopped by Ctrl+C (last.ckpt resumes it)

    @property
    def record(self) -> dict:
        """``run.yaml``: the command and every setting, as ``--config`` reads them."""
        return yaml.safe_load((self.folder / "run.yaml").read_text())

    @property
    def metrics(self) -> dict:
        """``metrics.json``: the final and best validation scores (percent), epochs done."""
        path = self.folder / "metrics.json"
        return json.loads(path.read_text()) if path.is_file() else {}

    @property
    def best_checkpoint(self) -> Path | None:
        """``best.ckpt`` (the best validation score's checkpoint), or None when the run saved none."""
        path = self.folder / "best.ckpt"
        return path if path.is_file() else None

    def load(self, fuse: bool = False):
        """The best checkpoint's trained task (a LightningModule, eval mode); ``fuse``: BatchNorm folded in."""
        from backbonekit.tasks import load_trained

        if self.best_checkpoint is None:
            raise ConfigError(f"{self.folder}: no best.ckpt (the run saved no checkpoint)")
        return load_trained(self.best_checkpoint, fuse=fuse)[1]


@dataclass
class Result:
    """What an ``evaluate``/``predict``/``export``/``explain`` call left: the files it wrote and what it printed."""
    exit_code: int
    files: list[Path] = field(default_factory=list)
    output: str = ""


def train(task: str, **settings) -> Run:
    """``backbonekit train TASK`` with ``settings`` as its options; the run it trained."""
    from backbonekit.training.run_record import runs_started

    with runs_started() as started:
        code, _ = _run(["train", task], settings, "train")
    if not started:  # a resumed run that had finished: the command trained nothing
        resume = settings.get("resume")
        if resume is None:
            raise ConfigError(f"train {task}: no run was started")
        from backbonekit.training.run_record import run_folder

        return Run(run_folder(resume), code)
    return Run(started[-1], code)


def evaluate(task: str, **settings) -> dict:
    """``backbonekit eval TASK``: the metrics it wrote (its ``metrics.json``)."""
    result = _command(["eval", task], settings, "evaluate")
    written = [p for p in result.files if p.name.endswith("metrics.json")]
    if not written:
        raise ConfigError(f"eval {task}: wrote no metrics.json")
    return json.loads(written[-1].read_text())


def predict(task: str, paths=(), **settings) -> Result:
    """``backbonekit predict TASK PATH…``: what it wrote and printed (``format="json"``: one object a line)."""
    return _command(["predict", task], settings, "predict", positional=[str(p) for p in paths])


def export(checkpoint: str | Path, **settings) -> Path:
    """``backbonekit export``: the ONNX file written."""
    result = _command(["export"], {"checkpoint": str(checkpoint), **settings}, "export")
    onnx = [p for p in result.files if p.suffix == ".onnx"]
    if not onnx:
        raise ConfigError(f"export {checkpoint}: wrote no .onnx file")
    return onnx[-1]


def quantize(checkpoint: str | Path, **settings) -> dict:
    """``backbonekit quantize``: the record beside the checkpoint (``precisions.json``), each int8 file's scores, drop
    and what stayed float; a drop over ``max_drop`` raises ``GateRefused`` and writes nothing."""
    _command(["quantize"], {"checkpoint": str(checkpoint), **settings}, "quantize")
    return json.loads((Path(checkpoint).parent / "precisions.json").read_text())


def explain(task: str, paths=(), **settings) -> list[Path]:
    """``backbonekit explain TASK PATH…``: the images written."""
    result = _command(["explain", task], settings, "explain", positional=[str(p) for p in paths])
    return [p for p in result.files if p.suffix == ".png"]


# ---------------------------------------------------------------------------------------------------- running
def _command(words: list[str], settings: dict, function: str, positional: list[str] = ()) -> Result:
    """Runs the command; the files created or changed under the folders it names (``out``, the checkpoint's)."""
    start = time.time() - 1  # file times have a resolution of about a second on some file systems
    code, args = _run(words, settings, function, positional)
    roots = {Path(p).parent if Path(p).suffix else Path(p) for p in (getattr(args, "out", None),) if p}
    checkpoint = getattr(args, "checkpoint", None)
    if checkpoint:
        roots.add(Path(checkpoint).parent)
    files = sorted({f for root in roots if root.is_dir() for f in root.rglob("*")
                    if f.is_file() and f.stat().st_mtime >= start}, key=lambda f: f.stat().st_mtime)
    return Result(code, files)


def _run(words: list[str], settings: dict, function: str, positional: list[str] = ()):
    """(exit status, parsed arguments) of the command ``words`` run with ``settings`` as its options."""
    from backbonekit.cli import build_parser, parse, set_threads
    from backbonekit.io.config_file import config_tokens
    from backbonekit.training.preflight import check_input_files

    parser = _command_parser(build_parser(), words, function)
    settings = _checked_names(parser, settings, f"bk.{function}()")
    argv = [*words, *config_tokens(settings, parser, f"bk.{function}()"), *positional]
    stderr = io.StringIO()  # argparse prints a usage error (and exits): here it is the exception's one line
    try:
        with contextlib.redirect_stderr(stderr):
            args = parse(argv)
    except SystemExit:
        lines = [line for line in stderr.getvalue().splitlines() if line.startswith("error: ")]
        raise ConfigError(lines[-1].removeprefix("error: ") if lines else f"bk.{function}(): bad arguments") from None
    sys.stderr.write(stderr.getvalue())  # the warnings of old spellings, as the command line shows them
    set_threads(getattr(args, "threads", None))
    check_input_files(args)
    try:
        code = args.func(args)
    except SystemExit as e:  # a library's exit inside the command: still an error, not the end of the caller
        raise BackbonekitError(f"{' '.join(words)} exited ({e.code})") from None
    return int(code or 0), args


def _command_parser(parser, words: list[str], function: str):
    import argparse

    for word in words:
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        if word not in sub.choices:
            close = difflib.get_close_matches(word, list(sub.choices), n=1)
            hint = f": did you mean {close[0]!r}?" if close else f" (known: {', '.join(sub.choices)})"
            raise ConfigError(f"bk.{function}(): unknown task {word!r}{hint}")
        parser = sub.choices[word]
    return parser


def _checked_names(parser, settings: dict, where: str) -> dict:
    """Keywords by the setting they name (``batch_size``, ``"batch-size"``, an option's current spelling or its
    destination); an old key is passed on (``config_tokens`` reads it with a warning naming the new one); an unknown
    one is one error naming the closest option."""
    import argparse

    from backbonekit.io.config_file import OLD_KEYS

    names = {}
    for action in parser._actions:
        if action.option_strings and action.dest != "help":
            names.setdefault(action.dest, action.dest)
            if action.help != argparse.SUPPRESS:  # an old spelling is no name to suggest
                names.update({s.lstrip("-").replace("-", "_"): action.dest for s in action.option_strings})
    checked = {}
    for key, value in settings.items():
        name = str(key).replace("-", "_")
        if name in OLD_KEYS and OLD_KEYS[name] in names.values():
            checked[name] = value
            continue
        if name not in names:
            close = difflib.get_close_matches(name, sorted(names), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ConfigError(f"{where}: unknown setting {key!r}{hint}")
        checked[names[name]] = value
    return checked
