"""``python -m backbonekit``: the same as the ``backbonekit`` command."""
import sys

from backbonekit.cli import main

sys.exit(main())
