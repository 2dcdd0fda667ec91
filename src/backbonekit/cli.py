"""Command line: argument parsing only. Each command calls one function of a task, of weights or of the tools.

Verbs (``train``, ``eval``, ``predict``, ``data``) take a task as their second word (``backbonekit train classify
…``); each task folder adds its own sub-commands through ``add_commands``. ``export``, ``models``, ``summary``,
``bench`` and ``demo`` stand alone: ``export`` finds the task in the checkpoint.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from backbonekit.errors import BackbonekitError

VERBS = ("train", "eval", "predict", "data")

# Modules that add sub-commands under the verbs: each has ``add_commands(verbs: dict[str, _SubParsersAction])``.
# A module that is not there yet is skipped, so tasks can land one at a time.
COMMAND_MODULES = (
    "backbonekit.tools.commands",
    "backbonekit.tools.export_command",
    "backbonekit.classification.commands",
    "backbonekit.detection.commands",
    "backbonekit.sequence.commands",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="backbonekit", description=__doc__.splitlines()[0])
    top = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    verbs = {}
    for verb in VERBS:
        p = top.add_parser(verb, help=f"{verb} (per task)")
        verbs[verb] = p.add_subparsers(dest="task", required=True, metavar="TASK")
    verbs["_top"] = top
    demo = top.add_parser("demo", help="the main job on built-in data (see README)")
    demo.set_defaults(func=run_demo)
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name and name.startswith(e.name):
                continue
            raise
        module.add_commands(verbs)
    return parser


def run_demo(args: argparse.Namespace) -> int:
    """Train a classifier on the built-in digits; before the trainer existed this was a parity check."""
    try:
        from backbonekit.classification.commands import run_demo as demo
    except ImportError:
        from backbonekit.tools.commands import run_parity_demo as demo
    return demo()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        result = args.func(args)
    except BackbonekitError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
