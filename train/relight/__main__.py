"""``python -m train.relight``: the command is ``train.relight.cli.main``."""

from runtime.core.cli import run

from .cli import main

if __name__ == "__main__":
    raise SystemExit(run(main))
