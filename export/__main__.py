"""``python -m export``: see ``export.cli``."""

from runtime.core.cli import run

from .cli import main

raise SystemExit(run(main))
