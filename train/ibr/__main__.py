"""``python -m train.ibr``: the command is ``train.ibr.cli.main``."""

from runtime.core.cli import run

from .cli import main

if __name__ == "__main__":
    raise SystemExit(run(main))
