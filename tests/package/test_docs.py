"""The docs site builds (`mkdocs build --strict`: no broken link or anchor, no page left out of the nav, no API page
whose object is gone), the README stays a short front page, and the command-line page shows every command."""
import argparse
import os
import re
import subprocess
import sys

import yaml
from docs_pages import ROOT, commands

from backbonekit.cli import build_parser


def test_docs_build_strict(tmp_path):
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}  # Material's banner about MkDocs 2, not about these pages
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert (tmp_path / "site" / "api" / "index.html").read_text().count("create_model") > 1  # docstrings rendered


def test_readme_is_a_front_page():
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) <= 200
    first_block = lines[lines.index("```bash") + 1:lines.index("```bash") + 3]
    assert [line.split()[:2] for line in first_block] == [["make", "demo"], ["make", "test"]]
    # mkdocs checks the links between docs pages; the README's into them are checked here
    targets = re.findall(r"\]\((?!https?:)([^)#]+)", "\n".join(lines))
    assert targets and all((ROOT / target).exists() for target in targets), targets


def _nav_pages(nav) -> set[str]:
    if isinstance(nav, str):
        return {nav}
    items = nav.values() if isinstance(nav, dict) else nav
    return set().union(*(_nav_pages(item) for item in items))


def test_every_page_is_in_the_nav():
    class Loader(yaml.SafeLoader):  # mkdocs.yml may hold `!!python/name:` tags for extensions
        pass
    Loader.add_multi_constructor("", lambda loader, suffix, node: None)
    nav = yaml.load((ROOT / "mkdocs.yml").read_text(), Loader=Loader)["nav"]
    pages = {str(p.relative_to(ROOT / "docs")) for p in (ROOT / "docs").rglob("*.md")}
    assert pages == _nav_pages(nav)


def _leaf_commands(parser, words=()):
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        return [" ".join(words)]
    return [leaf for a in subs for name, sub in a.choices.items() for leaf in _leaf_commands(sub, (*words, name))]


def test_cli_page_shows_every_command():
    shown = commands([ROOT / "docs" / "cli.md"])
    missing = [leaf for leaf in _leaf_commands(build_parser())
               if not any(c == leaf or c.startswith(leaf + " ") for c in shown)]
    assert not missing, f"docs/cli.md has no example of: {', '.join(missing)}"
