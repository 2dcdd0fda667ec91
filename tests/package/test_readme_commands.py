"""Every `backbonekit …` command shown in README.md and the docs (docs/*.md) parses with the real command line: a
documented flag that does not exist, or a sub-command that was renamed, fails here. (Running them needs the users'
files; the tests of each task run the same commands on data they write.) Every Python block of those pages parses."""
import ast
import shlex

import pytest
from docs_pages import blocks, commands

from backbonekit.cli import build_parser


def test_readme_shows_commands():
    words = {c.split()[0] for c in commands()}
    assert {"train", "eval", "predict", "data", "export", "models", "summary", "bench", "explain", "recipes"} <= words


@pytest.mark.parametrize("command", commands())
def test_readme_command_parses(command):
    words = shlex.split(command)
    if {"--help", "--version"} & set(words):  # they print and exit 0 (any other exit is a parse error)
        with pytest.raises(SystemExit) as done:
            build_parser().parse_args(words)
        assert done.value.code == 0
    else:
        build_parser().parse_args(words)


@pytest.mark.parametrize("page, block", blocks("python"), ids=lambda value: value if value.endswith(".md") else "")
def test_python_block_is_python(page, block):
    ast.parse(block, filename=page)
