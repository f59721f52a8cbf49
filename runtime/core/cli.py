"""Command-line plumbing shared by every ``python -m`` entry point: the parser, number checks, signals and ``run``."""

from __future__ import annotations

import argparse
import logging
import math
import signal
import sys
import threading
from collections.abc import Callable, Sequence

from .errors import UserError
from .sidecar import MAX_SIDE, MIN_SIDE

__all__ = ["ArgumentParser", "run", "positive_int", "nonnegative_int", "positive_float", "nonnegative_float", "image_size",
           "number", "bounded_int", "bounded_float", "frame_rate", "timeout_seconds", "budget_minutes", "learning_rate",
           "open_fraction", "loss_weight", "thread_count", "batch_samples", "worker_count", "random_seed", "image_side",
           "INT_MAX", "FLOAT_MAX",
           "Interrupted", "exit_code", "handle_signals", "io_error_message"]


class ArgumentParser(argparse.ArgumentParser):
    """argparse with one-line errors (exit 2) and defaults shown in --help."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("formatter_class", _HelpFormatter)
        super().__init__(*args, **kwargs)

    def _short_metavars(self) -> None:
        # N for counts, X for numbers (groups add to the same action list).
        for action in self._actions:
            if action.metavar is None and action.option_strings:
                kind = getattr(action.type, "kind", None)
                if kind is int:
                    action.metavar = "N"
                elif kind is float:
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


INT_MAX = 1_000_000_000
"""Cap of the generic integer parsers: far above any real count, far below where int32 arithmetic overflows."""
FLOAT_MAX = 1e9
"""Cap of the generic float parsers: below where thread timeouts (about 9.2e9 s) and int32 conversions overflow."""


def _fmt(value: float) -> str:
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e16:
        return str(int(value))
    return f"{value:g}" if isinstance(value, float) else str(value)


def _range_text(low, high, low_open: bool, high_open: bool) -> str:
    parts = []
    if low is not None:
        parts.append(f"{'>' if low_open else '>='} {_fmt(low)}")
    if high is not None:
        parts.append(f"{'<' if high_open else '<='} {_fmt(high)}")
    return " and ".join(parts)


def number(kind: type, low: float | None = None, high: float | None = None, *, low_open: bool = False,
           high_open: bool = False) -> Callable[[str], float]:
    """An argparse ``type``: ``kind`` (int or float) parsed from the text, finite and within ``low``..``high``
    (``low_open`` / ``high_open`` exclude that end; None leaves it open). Anything else is an
    ``ArgumentTypeError`` stating the allowed range, which argparse reports as one line naming the option."""
    if kind not in (int, float):
        raise TypeError(f"number() parses int or float, not {kind!r}")
    what = _range_text(low, high, low_open, high_open)

    def parse(text: str):
        try:
            value = kind(text)
        except (TypeError, ValueError):
            raise argparse.ArgumentTypeError(f"{text!r} is not {'an integer' if kind is int else 'a number'}") from None
        shown = str(text).strip()
        if kind is float and not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"{shown} must be a finite number{' ' + what if what else ''}")
        if (low is not None and (value < low or (low_open and value == low))) or \
                (high is not None and (value > high or (high_open and value == high))):
            raise argparse.ArgumentTypeError(f"{shown} must be {what}")
        return value

    parse.__name__ = kind.__name__
    parse.kind, parse.low, parse.high = kind, low, high  # type: ignore[attr-defined]
    parse.low_open, parse.high_open, parse.numeric = low_open, high_open, True  # type: ignore[attr-defined]
    return parse


def bounded_int(low: int | None, high: int | None) -> Callable[[str], int]:
    """An integer in ``low``..``high`` (both included)."""
    return number(int, low, high)


def bounded_float(low: float | None, high: float | None, *, low_open: bool = False,
                  high_open: bool = False) -> Callable[[str], float]:
    """A finite float in ``low``..``high`` (included unless ``low_open`` / ``high_open``)."""
    return number(float, low, high, low_open=low_open, high_open=high_open)


# Generic parsers: finite and capped, so no value can reach code that overflows.
positive_int = number(int, 1, INT_MAX)
nonnegative_int = number(int, 0, INT_MAX)
positive_float = number(float, 0.0, FLOAT_MAX, low_open=True)
nonnegative_float = number(float, 0.0, FLOAT_MAX)
# Ranges shared by several commands.
frame_rate = number(float, 0.0, 1000.0, low_open=True)
"""Frames per second: (0, 1000]."""
timeout_seconds = number(float, 0.0, 86400.0, low_open=True)
"""A timeout in seconds: (0, 86400] (a day)."""
budget_minutes = number(float, 0.0, 525_600.0, low_open=True)
"""A time budget in minutes: (0, 525600] (a year)."""
learning_rate = number(float, 0.0, 10.0, low_open=True)
"""A learning rate: (0, 10]."""
open_fraction = number(float, 0.0, 1.0, low_open=True, high_open=True)
"""A fraction or factor strictly between 0 and 1."""
loss_weight = number(float, 0.0, 1e6)
"""A loss weight or decay: [0, 1e6]."""
thread_count = number(int, 1, 1024)
"""CPU threads: 1..1024."""
batch_samples = number(int, 1, 65536)
"""Samples per batch: 1..65536."""
worker_count = number(int, 0, 1024)
"""Worker processes: 0..1024."""
random_seed = number(int, 0, 2**32 - 1)
"""A random seed: 0..2**32-1 (what NumPy and Lightning accept)."""
image_side = number(int, MIN_SIDE, MAX_SIDE)
"""One image side in pixels: 16..8192."""


def image_size(text: str) -> tuple[int, int]:
    """Parse ``N`` or ``HxW`` into (height, width), each side within 16..8192."""
    parts = text.lower().split("x")
    try:
        values = [int(p) for p in parts]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size like 256 or 360x640") from None
    if len(values) == 1:
        values = values * 2
    if len(values) != 2 or min(values) < MIN_SIDE or max(values) > MAX_SIDE:
        raise argparse.ArgumentTypeError(f"{text!r}: sizes are N or HxW with both sides >= {MIN_SIDE} and "
                                         f"<= {MAX_SIDE}")
    return values[0], values[1]


image_size.numeric = True  # type: ignore[attr-defined]


class Interrupted(KeyboardInterrupt):
    """A stop asked for by a signal: Ctrl-C (SIGINT), SIGTERM or SIGHUP. Handled like Ctrl-C everywhere; the
    exit code is 128 + the signal's number (130, 143, 129)."""

    def __init__(self, signum: int = signal.SIGINT) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = int(signum)


def exit_code(exc: BaseException) -> int:
    """128 + the signal that stopped the run (130 for a plain KeyboardInterrupt)."""
    return 128 + getattr(exc, "signum", signal.SIGINT)


_stopping = threading.Event()


def _raise_interrupted(signum, frame) -> None:
    # The first signal stops the run; later ones are ignored so that finalising what was done (closing a
    # video, renaming it into place) is not itself interrupted. SIGKILL still ends a run that hangs.
    if not _stopping.is_set():
        _stopping.set()
        raise Interrupted(signum)


def handle_signals() -> None:
    """SIGTERM and SIGHUP stop the run like Ctrl-C (raising ``Interrupted`` in the main thread), so what is
    finished is finalised and nothing is left half-written. Called by ``run``; harmless outside the main thread."""
    if threading.current_thread() is not threading.main_thread():
        return
    _stopping.clear()
    for name in ("SIGTERM", "SIGHUP", "SIGINT"):
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), _raise_interrupted)


def io_error_message(exc: OSError) -> str:
    """One line for a failed read or write: the path and the cause (``no space left on device``)."""
    cause = exc.strerror or str(exc) or type(exc).__name__
    cause = cause[:1].lower() + cause[1:]
    return f"{exc.filename}: {cause}" if exc.filename else cause


def run(main: Callable[[Sequence[str] | None], int | None], argv: Sequence[str] | None = None) -> int:
    """Run ``main`` as a command: user errors are one line on stderr and exit code 2; a failed read or write
    (a full disk, an I/O error) is one line naming the path and the cause, exit code 1; Ctrl-C, SIGTERM and
    SIGHUP stop it cleanly with one line and exit code 130, 143 or 129."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    prog = getattr(main, "prog", None) or "edgelight"
    handle_signals()
    try:
        return int(main(argv) or 0)
    except UserError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"{prog}: error: {io_error_message(exc)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as exc:
        print(f"{prog}: interrupted ({signal.Signals(exit_code(exc) - 128).name})", file=sys.stderr)
        return exit_code(exc)
