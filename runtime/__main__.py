"""``python -m runtime``: see ``runtime.cli``."""

from train.cli import run

from .cli import main

raise SystemExit(run(main))
