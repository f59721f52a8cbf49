"""``python -m train.unet``: the command is ``train.unet.cli.main``."""

from runtime.core.cli import run

from .cli import main

if __name__ == "__main__":
    raise SystemExit(run(main))
