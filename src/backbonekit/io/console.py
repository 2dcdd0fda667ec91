"""One rich Console for printed tables: full width on a terminal, wide enough not to truncate when piped (CI, logs)."""
import sys

from rich.console import Console


def make_console() -> Console:
    return Console() if sys.stdout.isatty() else Console(width=160, soft_wrap=True)
