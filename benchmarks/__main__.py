"""``python -m benchmarks``: see ``benchmarks.cli``."""

from train.cli import run

from .cli import main

raise SystemExit(run(main))
