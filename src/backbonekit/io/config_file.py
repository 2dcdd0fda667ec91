"""``--config FILE.yaml`` and ``--config recipe:NAME``: settings as plain data, turned into the command's own flags.

A configuration file is a mapping of option names (``lr``, ``batch_size`` or ``batch-size``) to values, or a run's
``run.yaml`` (its ``settings``). Its values become flags placed before the ones typed, so argparse checks every type
and choice as usual and a typed flag overrides the file. Recipes are such files shipped in ``backbonekit/recipes``.

Which options were typed (``explicit_options``) is what ``--resume`` compares with the run's record.
"""
from __future__ import annotations

import argparse
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
    """``settings`` as flags of ``parser``; a name that is not one of its options is an error naming it."""
    options = {a.dest: a for a in parser._actions if a.option_strings and a.dest != "help"}
    unknown = sorted(k for k in settings if k not in options)
    if unknown:
        raise ConfigError(f"{source}: unknown setting(s) {', '.join(unknown)} for this command")
    tokens: list[str] = []
    for key, value in settings.items():
        action = options[key]
        flag = max(action.option_strings, key=len)
        if value is None or key == "config":
            continue
        if isinstance(action, argparse._StoreTrueAction):
            if value:
                tokens.append(flag)
        elif isinstance(value, (list, tuple)):
            if value:
                tokens += [flag, *map(str, value)]
        else:
            tokens += [flag, str(value)]
    return tokens


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
