"""Command line: argument parsing only. Each command calls one function of a task, of weights or of the tools.

Verbs (``train``, ``eval``, ``predict``, ``explain``, ``data``) take a task as their second word
(``backbonekit train classify …``); each task folder adds its own sub-commands through ``add_commands``.
``export``, ``models``, ``summary``, ``bench`` and ``demo`` stand alone: ``export`` finds the task in the checkpoint.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys
import time

from backbonekit.errors import BackbonekitError

# Each verb: (its line in `backbonekit --help`, the name and line of its second word in `backbonekit VERB --help`).
VERB_HELP = {
    "train": ("train a model on your data: a run folder with checkpoints, metrics and plots",
              "TASK", "what the model learns"),
    "eval": ("score a trained checkpoint (or a detector's saved results) on labelled data", "TASK",
             "the task the checkpoint was trained for"),
    "predict": ("run a trained checkpoint on images", "TASK", "the task the checkpoint was trained for"),
    "explain": ("draw what drove a trained model's predictions (class activation maps, attention)", "TASK",
                "the task the checkpoint was trained for"),
    "data": ("write a small synthetic data set to try the tasks on", "COMMAND", "the data command"),
}
VERBS = tuple(VERB_HELP)

# Modules that add the stand-alone commands; each has ``add_commands(verbs: dict[str, _SubParsersAction])`` and
# imports nothing heavy at module level, so parsing (and ``--help``) needs no torch. Tasks add theirs through the
# task registry (``backbonekit.tasks``).
COMMAND_MODULES = (
    "backbonekit.tools.commands",
    "backbonekit.tools.export_command",
    "backbonekit.tools.quantize_command",
    "backbonekit.serve.command",
)


DESCRIPTION = ("Train, evaluate, run and export CNN backbones (ResNet, EfficientNet and the survey models) for "
               "classification, EfficientDet detection and SeqDeepFake sequence detection; they load the "
               "torchvision, timm and efficientnet_pytorch weights you have on disk. Start with `backbonekit demo`.")


class _Parser(argparse.ArgumentParser):
    """A usage error is a short usage line and one ``error:`` line: the full usage of a train command is 40 lines
    that bury the one that says what is wrong (``--help`` still shows it all)."""

    def error(self, message: str):
        formatter = self._get_formatter()
        # Only what must be typed (the required options and positionals); everything else is "[options]".
        needed = [a for a in self._actions if a.required or not a.option_strings]
        formatter.add_usage(None, needed, [], prefix="usage: ")
        usage = " ".join(formatter.format_help().split())
        self.exit(2, f"{usage} [options] (--help lists them)\nerror: {message}\n")


class _Help(argparse.ArgumentDefaultsHelpFormatter):
    """Help that shows every option's default once: not again where the text already says it, nor "None" for an
    option that has none or "False" for a flag."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "default" in text.lower() or any(action.default is v for v in (None, False, argparse.SUPPRESS)):
            return text
        return super()._get_help_string(action)


def build_parser() -> argparse.ArgumentParser:
    from backbonekit import __version__

    parser = _Parser(prog="backbonekit", description=DESCRIPTION, formatter_class=_Help)
    parser.add_argument("--version", action="version", version=f"backbonekit {__version__}")
    top = parser.add_subparsers(dest="command", required=True, metavar="COMMAND",
                                help="what to do (each one has a --help of its own)")
    verbs = {}
    for verb, (text, word, word_help) in VERB_HELP.items():
        p = top.add_parser(verb, help=text, description=text[0].upper() + text[1:] + ".")
        verbs[verb] = p.add_subparsers(dest="task", required=True, metavar=word, help=word_help)
    # `data`'s one command; the tasks add the data sets they can write under it.
    synth = verbs["data"].add_parser("synth", help="write a synthetic data set in a task's own format, to try the "
                                     "task without downloading one", description="Write a synthetic data set.")
    verbs["data_synth"] = synth.add_subparsers(dest="dataset", required=True, metavar="DATASET",
                                               help="which data set (and so which task's format)")
    verbs["_top"] = top
    for name in COMMAND_MODULES:
        importlib.import_module(name).add_commands(verbs)
    from backbonekit.tasks import all_tasks

    for spec in all_tasks().values():
        spec.add_commands(verbs)
    _show_every_default(parser)
    return parser


def _show_every_default(parser: argparse.ArgumentParser) -> None:
    """Every (sub-)command's help shows its defaults; argparse prints one only beside help text, so every option
    gets some."""
    from backbonekit.io.config_file import all_parsers

    for p in all_parsers(parser):
        p.formatter_class = _Help
        for action in p._actions:
            if action.option_strings and action.help is None and not any(action.default is v for v in (None, False)):
                action.help = "(default: %(default)s)"


def set_threads(threads: int | None) -> None:
    """CPU threads and OpenMP wait policy for this run, chosen before torch starts its thread pool.

    Idle OpenMP threads spin for a while before they sleep. On an idle machine that is the fastest (a D0-Lite train
    step at 128², batch 8, 2 cores: 0.33–0.47 s spinning, 0.84 s with OMP_WAIT_POLICY=PASSIVE); with another CPU job
    on the machine the spinning threads steal its cores and ours (1.2–3.2 s against 0.87 s passive). So: passive when
    other processes keep at least half the cores busy as the run starts, libgomp's default otherwise; an
    OMP_WAIT_POLICY or GOMP_SPINCOUNT of the user's is left as it is. ``--threads N`` caps torch's pool (default: one
    per core).
    """
    if not {"OMP_WAIT_POLICY", "GOMP_SPINCOUNT"} & set(os.environ) and machine_is_busy():
        os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
    if threads:
        os.environ["OMP_NUM_THREADS"] = str(threads)
        if "torch" in sys.modules:
            sys.modules["torch"].set_num_threads(threads)


def machine_is_busy(stat: str = "/proc/stat", window: float = 0.1) -> bool:
    """Whether other processes keep at least half the cores busy now, from the CPU time they use over ``window``
    seconds (this process sleeps meanwhile). Not the load average: a job that ended a minute ago still lifts it, and
    a run started after it would then give up spinning on an idle machine (half the speed)."""
    cores = os.cpu_count() or 1
    try:
        busy_before, total_before = _cpu_ticks(stat)
        time.sleep(window)
        busy_after, total_after = _cpu_ticks(stat)
    except (OSError, ValueError, IndexError):  # no /proc (macOS, Windows): the load average is all there is
        try:
            return os.getloadavg()[0] >= 0.5 * cores
        except OSError:
            return False
    total = total_after - total_before
    return total > 0 and (busy_after - busy_before) / total >= 0.5


def _cpu_ticks(stat: str) -> tuple[int, int]:
    """(busy, total) clock ticks of all cores since boot, from the first line of /proc/stat."""
    with open(stat) as f:
        fields = [int(v) for v in f.readline().split()[1:9]]
    user, nice, system, idle, iowait, irq, softirq, steal = fields
    busy = user + nice + system + irq + softirq + steal
    return busy, busy + idle + iowait


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    """Arguments with ``--config`` expanded into the command's flags (typed flags after them win) and
    ``_explicit``: the options the command line (or the file) set, which ``--resume`` checks against the record."""
    from backbonekit.io.config_file import config_tokens, explicit_options, load_config, subparser

    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    spec = _config_option(argv)
    if spec is not None:
        # Expanded before parsing: a file may give what the command requires (--data, --unlabeled).
        words = argv[:2] if argv and argv[0] in VERBS else argv[:1]
        settings, command = load_config(spec)
        if command and command != " ".join(words):
            raise BackbonekitError(f"--config {spec} is for `{command}`, not `{' '.join(words)}`")
        try:
            sub = subparser(parser, words)
        except KeyError:
            sub = None  # an unknown command: argparse says so below
        if sub is not None:
            argv = argv[:len(words)] + config_tokens(settings, sub, spec) + argv[len(words):]
    args, unknown = parser.parse_known_args(argv)
    if unknown:  # said by the sub-command, with its usage, not by the top-level parser
        _command_parser(parser, argv).error(f"unrecognized arguments: {' '.join(unknown)}")
    args._explicit = explicit_options(build_parser(), argv)
    return args


def _command_parser(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.ArgumentParser:
    """The (sub-)parser of the command ``argv`` names: ``train classify``, ``data synth shapes``, ``models``."""
    for word in argv:
        choices = next((a.choices for a in parser._actions if isinstance(a, argparse._SubParsersAction)), None)
        if not choices or word not in choices:
            break
        parser = choices[word]
    return parser


def _config_option(argv: list[str]) -> str | None:
    for i, word in enumerate(argv):
        if word == "--config" and i + 1 < len(argv):
            return argv[i + 1]
        if word.startswith("--config="):
            return word.split("=", 1)[1]
    return None


def main(argv: list[str] | None = None) -> int:
    try:
        args = parse(argv)
    except BackbonekitError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except SystemExit as e:  # argparse: --help, --version, or a usage error it has printed
        return e.code if isinstance(e.code, int) else 2 if e.code else 0
    set_threads(getattr(args, "threads", None))
    try:
        from backbonekit.training.preflight import check_input_files

        check_input_files(args)
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
