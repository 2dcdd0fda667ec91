"""The pages a reader meets (README.md and docs/*.md) and the code blocks in them, for the tests that check them."""
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def blocks(language: str, pages=PAGES) -> list[tuple[str, str]]:
    """(page name, block text) of every fenced block in that language, fences nested in a list item included."""
    found = []
    for page in pages:
        for indent, block in re.findall(rf"^( *)```{language}\n(.*?)^\1```", page.read_text(), flags=re.S | re.M):
            text = "\n".join(line[len(indent):] for line in block.splitlines())
            found.append((page.name, text))
    return found


def commands(pages=PAGES) -> list[str]:
    """The words after `backbonekit` of every command line in the pages' bash blocks, each once."""
    found = []
    for _, block in blocks("bash", pages):
        text = block.replace("\\\n", " ")  # continued lines
        for line in text.splitlines():
            line = line.split("#", 1)[0].strip()
            # `srun backbonekit …`, `torchrun … -m backbonekit.cli …` run the same parser
            match = re.search(r"(?:^|\s)(?:backbonekit|-m backbonekit(?:\.cli)?)\s+(.*)$", line)
            if match and not line.startswith(("python3 -m venv", "pip")):
                found.append(" ".join(match[1].split()))
    return list(dict.fromkeys(found))  # a command shown on two pages is checked once
