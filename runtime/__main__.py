"""``python -m runtime``: see ``runtime.cli``."""

from .core.cli import run

from .cli import main

raise SystemExit(run(main))
