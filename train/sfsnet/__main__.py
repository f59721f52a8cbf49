"""``python -m train.sfsnet``: the command is ``train.sfsnet.cli.main``."""

from runtime.core.cli import run

from .cli import main

if __name__ == "__main__":
    raise SystemExit(run(main))
