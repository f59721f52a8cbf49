"""``python -m export``: see ``export.cli``."""

from train.cli import run

from .cli import main

raise SystemExit(run(main))
