"""Command-line plumbing shared by the training entry points."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence

from .errors import UserError

__all__ = ["ArgumentParser", "run", "positive_int", "nonnegative_int", "positive_float", "nonnegative_float", "image_size"]


class ArgumentParser(argparse.ArgumentParser):
    """argparse with one-line errors (exit 2) and defaults shown in --help."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("formatter_class", _HelpFormatter)
        super().__init__(*args, **kwargs)

    def _short_metavars(self) -> None:
        # N for counts, X for numbers (groups add to the same action list).
        for action in self._actions:
            if action.metavar is None and action.option_strings:
                if action.type in (positive_int, nonnegative_int):
                    action.metavar = "N"
                elif action.type in (positive_float, nonnegative_float):
                    action.metavar = "X"

    def format_usage(self) -> str:
        self._short_metavars()
        return super().format_usage()

    def format_help(self) -> str:
        self._short_metavars()
        return super().format_help()

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Appends the default to each option's help, unless there is none or the help already says it."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if (
            action.default in (None, False, argparse.SUPPRESS)
            or "default" in text
            or action.option_strings == []
        ):
            return text
        return f"{text} (default: %(default)s)"


def _number(kind: type, low: float, inclusive: bool, what: str) -> Callable[[str], float]:
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {'an integer' if kind is int else 'a number'}") from None
        if value < low or (value == low and not inclusive):
            raise argparse.ArgumentTypeError(f"{text} must be {what}")
        return value

    parse.__name__ = kind.__name__
    return parse


positive_int = _number(int, 1, True, ">= 1")
nonnegative_int = _number(int, 0, True, ">= 0")
positive_float = _number(float, 0.0, False, "> 0")
nonnegative_float = _number(float, 0.0, True, ">= 0")


def image_size(text: str) -> tuple[int, int]:
    """Parse ``N`` or ``HxW`` into (height, width)."""
    parts = text.lower().split("x")
    try:
        values = [int(p) for p in parts]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size like 256 or 360x640") from None
    if len(values) == 1:
        values = values * 2
    if len(values) != 2 or min(values) < 16:
        raise argparse.ArgumentTypeError(f"{text!r}: sizes are N or HxW with both sides >= 16")
    return values[0], values[1]


def run(main: Callable[[Sequence[str] | None], int | None], argv: Sequence[str] | None = None) -> int:
    """Run ``main``; user errors become one line on stderr and exit code 2."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    prog = getattr(main, "prog", None) or "edgelight"
    try:
        return int(main(argv) or 0)
    except UserError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
