"""``--config FILE.yaml`` and ``--config recipe:NAME``: settings as plain data, turned into the command's own flags.

A configuration file is a mapping of option names (``lr``, ``batch_size`` or ``batch-size``) to values, or a run's
``run.yaml`` (its ``settings``). Each value is checked against its option's argparse action (type, choices, how
many values, a flag's true/false): a wrong one is an error naming the file and the key. Then the values become
flags placed before the ones typed, so a typed flag overrides the file. Recipes are such files shipped in
``backbonekit/recipes``.

Which options were typed (``explicit_options``) is what ``--resume`` compares with the run's record.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
from pathlib import Path

import yaml

from backbonekit.errors import ConfigError

RECIPES = Path(__file__).resolve().parent.parent / "recipes"
RECIPE_PREFIX = "recipe:"
_UNSET = object()


def list_recipes() -> dict[str, dict]:
    """Every shipped recipe by name: ``{"command": …, "description": …, "aims_at": …, "settings": {…}}``."""
    return {p.stem: _read_yaml(p) for p in sorted(RECIPES.glob("*.yaml"))}


def load_config(spec: str) -> tuple[dict, str | None]:
    """(settings, the command it was written for or None) of a file or ``recipe:NAME``."""
    if spec.startswith(RECIPE_PREFIX):
        name = spec[len(RECIPE_PREFIX):]
        path = RECIPES / f"{name}.yaml"
        if not path.is_file():
            raise ConfigError(f"--config {spec}: no such recipe (known: {', '.join(list_recipes())})")
    else:
        path = Path(spec)
        if not path.is_file():
            raise ConfigError(f"--config {spec}: no such file")
    data = _read_yaml(path)
    settings = data.get("settings", data) if isinstance(data.get("settings"), dict) else data
    return {str(k).replace("-", "_"): v for k, v in settings.items()}, data.get("command")


def config_tokens(settings: dict, parser: argparse.ArgumentParser, source: str) -> list[str]:
    """``settings`` as flags of ``parser``; a name that is not one of its options, or a value of the wrong type for
    its option (read from the option's argparse action), is an error naming the file and the key."""
    options: dict[str, argparse.Action] = {}
    for action in parser._actions:  # an old spelling (help suppressed) shares its dest with the option it became
        if action.option_strings and action.dest != "help" and (action.dest not in options
                                                                 or action.help != argparse.SUPPRESS):
            options[action.dest] = action
    settings = _renamed(settings, options, source)
    unknown = sorted(k for k in settings if k not in options)
    if unknown:
        raise ConfigError(f"{source}: unknown setting(s) {', '.join(unknown)} for this command")
    tokens: list[str] = []
    for key, value in settings.items():
        if value is None or key == "config":
            continue
        action = options[key]
        flag = max(action.option_strings, key=len)
        if action.nargs == 0:  # a flag: a YAML true/false only (`maybe` and the string "false" read as true)
            if not isinstance(value, bool):
                raise ConfigError(f"{source}: {key}: expected true or false, got {_shown(value)}")
            tokens += [flag] if value == (True if action.const is None else action.const) else []
            continue
        words = _typed_words(action, value, f"{source}: {key}")
        if words:
            tokens += [flag, *words]
    return tokens


# Keys older files (and run records of older versions) used, and the option that replaced each.
OLD_KEYS = {"frozen_bn": "freeze_bn", "skip_missing": "skip_bad_images", "val_fraction": "val_ratio",
            "backbone_lr": "backbone_lr_mult"}


def _renamed(settings: dict, options: dict, source: str) -> dict:
    """``settings`` with each old key read as the option that replaced it (a warning names both); an absolute
    ``backbone_lr`` becomes the multiplier of ``lr`` it stands for. A key the command still takes is left as it is."""
    settings = dict(settings)
    for old, new in OLD_KEYS.items():
        if old not in settings or new not in options:
            continue
        value = settings.pop(old)
        if value is None:  # an unset option in an older run.yaml
            continue
        if old == "backbone_lr":
            lr = settings.get("lr", options["lr"].default if "lr" in options else None)
            if not isinstance(lr, (int, float)) or isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ConfigError(f"{source}: backbone_lr (the old absolute key) needs a number and lr beside it: "
                                  "give backbone_lr_mult (the backbone's lr = lr × this)")
            value = value / lr
            print(f"warning: {source}: backbone_lr is an old key, use backbone_lr_mult (here {value:g} = "
                  f"backbone_lr / lr)", file=sys.stderr)
        else:
            print(f"warning: {source}: {old} is an old key, use {new}", file=sys.stderr)
        settings.setdefault(new, value)
    return settings


def _typed_words(action: argparse.Action, value, where: str) -> list[str]:
    """``value`` as the words the option takes, each checked as argparse would check it; a list only where the
    option takes several values (one value is a list of one there)."""
    many = action.nargs in ("+", "*", argparse.REMAINDER) or isinstance(action.nargs, int)
    if isinstance(value, (list, tuple)) and not many:
        raise ConfigError(f"{where}: expected {_expected(action)}, got a list {_shown(value)}")
    items = list(value) if isinstance(value, (list, tuple)) else [value]
    if isinstance(action.nargs, int) and len(items) != action.nargs:
        raise ConfigError(f"{where}: expected a list of {action.nargs} values ({_expected(action)} each), got "
                          f"{_shown(value)}")
    if action.nargs == "+" and not items:
        raise ConfigError(f"{where}: expected one or more values ({_expected(action)} each), got an empty list")
    for item in items:
        _check_item(action, item, where)
    return [str(item) for item in items]


def _check_item(action: argparse.Action, item, where: str) -> None:
    # A bool or a mapping never means a number, a name or a path (`str(True)` would slip through as "True").
    if isinstance(item, (bool, dict, list, tuple)):
        raise ConfigError(f"{where}: expected {_expected(action)}, got {_shown(item)}")
    try:
        converted = action.type(str(item)) if callable(action.type) else str(item)
    except argparse.ArgumentTypeError as e:  # our range-checking types say the rule
        raise ConfigError(f"{where}: {e}") from None
    except (TypeError, ValueError):
        raise ConfigError(f"{where}: expected {_expected(action)}, got {_shown(item)}") from None
    if action.choices is not None and converted not in action.choices:
        raise ConfigError(f"{where}: expected {_expected(action)}, got {_shown(item)}")


def _shown(value) -> str:
    """A value as the file spells it (true, "one", [1, 2]), not as Python does (True, 'one')."""
    return json.dumps(value, default=str)


_TYPE_NAMES = {int: "an integer", float: "a number", str: "text", "integer": "an integer", "number": "a number"}


def _expected(action: argparse.Action) -> str:
    """What the option takes, in words, from its action: ``one of sgd, adamw``, ``an integer``, ``a number``."""
    if action.choices is not None:
        return "one of " + ", ".join(map(str, action.choices))
    kind = action.type if action.type in _TYPE_NAMES else getattr(action.type, "__name__", None)
    return _TYPE_NAMES.get(kind, "text" if action.type is None else f"a valid {action.dest.replace('_', '-')}")


def subparser(parser: argparse.ArgumentParser, words: list[str]) -> argparse.ArgumentParser:
    """The parser of the sub-command named by ``words`` (``["train", "classify"]``)."""
    for word in words:
        action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parser = action.choices[word]
    return parser


def explicit_options(parser: argparse.ArgumentParser, argv: list[str]) -> set[str]:
    """The destinations of the options ``argv`` sets itself (not left at their defaults)."""
    saved = []
    for p in all_parsers(parser):
        for action in p._actions:
            if action.option_strings and action.dest != "help":
                saved.append((action, action.default))
                action.default = _UNSET
    try:
        # the second parse of argv: a deprecated spelling's warning was printed by the first, once is enough
        with contextlib.redirect_stderr(io.StringIO()):
            namespace = parser.parse_args(argv)
    finally:
        for action, default in saved:
            action.default = default
    return {k for k, v in vars(namespace).items() if v is not _UNSET}


def all_parsers(parser: argparse.ArgumentParser):
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield from all_parsers(sub)


def _read_yaml(path: Path) -> dict:
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        raise ConfigError(f"{path}: not a readable YAML file ({str(e).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of settings, got {type(data).__name__}")
    return data
