"""Every `backbonekit …` command shown in README.md parses with the real command line: a documented flag that does not
exist, or a sub-command that was renamed, fails here. (Running them needs the users' files; the tests of each task
run the same commands on data they write.)"""
import re
import shlex
from pathlib import Path

import pytest

from backbonekit.cli import build_parser

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_commands() -> list[str]:
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", README.read_text(), flags=re.S):
        text = block.replace("\\\n", " ")  # continued lines
        for line in text.splitlines():
            line = line.split("#", 1)[0].strip()
            # `srun backbonekit …`, `torchrun … -m backbonekit.cli …` run the same parser
            match = re.search(r"(?:^|\s)(?:backbonekit|-m backbonekit(?:\.cli)?)\s+(.*)$", line)
            if match and not line.startswith(("python3 -m venv", "pip")):
                commands.append(match[1])
    return commands


def test_readme_shows_commands():
    words = {c.split()[0] for c in readme_commands()}
    assert {"train", "eval", "predict", "data", "export", "models", "summary", "bench"} <= words


@pytest.mark.parametrize("command", readme_commands())
def test_readme_command_parses(command):
    words = shlex.split(command)
    if {"--help", "--version"} & set(words):  # they print and exit 0 (any other exit is a parse error)
        with pytest.raises(SystemExit) as done:
            build_parser().parse_args(words)
        assert done.value.code == 0
    else:
        build_parser().parse_args(words)
