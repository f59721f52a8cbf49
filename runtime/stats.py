"""Run statistics for the video pipeline: per-stage latency percentiles, end-to-end FPS, drops, a progress line.

::

    stats = Stats().start()
    with stats.time("infer"):
        outputs = runner.infer(inputs)
    stats.frame_done()
    stats.stop()
    print(stats.table())
    stats.write_json("run/stats.json")
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO

import numpy as np

__all__ = ["Stats", "Progress"]

_PERCENTILES = (50, 95, 99)


class Stats:
    """Collects per-stage latencies (thread-safe), counts frames and drops, and times the whole run.

    Attributes:
        frames: frames that went all the way through (:meth:`frame_done`).
        dropped: frames a live source discarded; the pipeline sets it from ``Source.dropped``.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._samples: dict[str, list[float]] = {}
        self.frames = 0
        self.dropped = 0
        self._started: float | None = None
        self._stopped: float | None = None

    def start(self) -> Stats:
        """Start (or restart) the wall clock. Returns the stats."""
        self._started = time.perf_counter()
        self._stopped = None
        return self

    def stop(self) -> None:
        """Stop the wall clock (the first call counts)."""
        if self._started is not None and self._stopped is None:
            self._stopped = time.perf_counter()

    @property
    def wall_seconds(self) -> float:
        """Seconds from :meth:`start` to :meth:`stop` (or to now while running); 0 before start."""
        if self._started is None:
            return 0.0
        return (self._stopped if self._stopped is not None else time.perf_counter()) - self._started

    def add(self, stage: str, seconds: float) -> None:
        """Record one latency sample of ``stage`` in seconds."""
        with self._lock:
            self._samples.setdefault(stage, []).append(float(seconds))

    @contextmanager
    def time(self, stage: str) -> Iterator[None]:
        """Time the body of a ``with`` block as one sample of ``stage``."""
        begin = time.perf_counter()
        try:
            yield
        finally:
            self.add(stage, time.perf_counter() - begin)

    def frame_done(self, count: int = 1) -> None:
        """Count frames that finished the pipeline."""
        with self._lock:
            self.frames += count

    def summary(self) -> dict:
        """A JSON-ready summary.

        Returns:
            ``frames``, ``dropped``, ``wall_s``, ``fps`` (frames / wall seconds; 0 when no time passed) and
            ``stages``: per stage in the order first seen, ``count``, ``mean_ms``, ``p50_ms``, ``p95_ms``,
            ``p99_ms`` (NumPy's linear-interpolation percentiles).
        """
        with self._lock:
            samples = {stage: np.asarray(values, dtype=np.float64) * 1000.0 for stage, values in self._samples.items()}
            frames, dropped = self.frames, self.dropped
        wall = self.wall_seconds
        stages = {}
        for stage, ms in samples.items():
            p50, p95, p99 = np.percentile(ms, _PERCENTILES) if ms.size else (0.0, 0.0, 0.0)
            stages[stage] = {"count": int(ms.size), "mean_ms": float(ms.mean()) if ms.size else 0.0,
                             "p50_ms": float(p50), "p95_ms": float(p95), "p99_ms": float(p99)}
        return {"frames": frames, "dropped": dropped, "wall_s": wall, "fps": frames / wall if wall > 0 else 0.0,
                "stages": stages}

    def table(self) -> str:
        """The summary as an aligned text table, one row per stage, then the totals."""
        summary = self.summary()
        header = ("stage", "count", "mean ms", "p50 ms", "p95 ms", "p99 ms")
        rows = [(stage, str(s["count"]), *(f"{s[key]:.2f}" for key in ("mean_ms", "p50_ms", "p95_ms", "p99_ms")))
                for stage, s in summary["stages"].items()]
        widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]

        def line(row: tuple[str, ...]) -> str:
            return "  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths)))

        out = [line(header), "  ".join("-" * w for w in widths), *(line(row) for row in rows)]
        out.append(f"{summary['frames']} frames in {summary['wall_s']:.2f} s: {summary['fps']:.1f} FPS end to end, "
                   f"{summary['dropped']} dropped")
        return "\n".join(out)

    def write_json(self, path: str | os.PathLike) -> None:
        """Write :meth:`summary` as JSON, atomically."""
        from .core.io import write_json  # standard library only

        write_json(path, self.summary())


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


class Progress:
    """A one-line progress display on stderr: frames done (of total), FPS and ETA.

    Redrawn at most every ``interval`` seconds; off when the stream is not a terminal unless ``enabled=True``.

    Args:
        total: frames expected (a file's frame count), or None when unknown (live sources).
        desc: a short label in front.
        stream: where to draw (default ``sys.stderr``).
        enabled: force on (True) or off (False); None: on when ``stream`` is a TTY.
        interval: seconds between redraws.
    """

    def __init__(self, total: int | None = None, *, desc: str = "", stream: TextIO | None = None,
                 enabled: bool | None = None, interval: float = 0.2) -> None:
        self.total = total if total and total > 0 else None
        self.desc = desc
        self.stream = stream if stream is not None else sys.stderr
        if enabled is None:
            isatty = getattr(self.stream, "isatty", None)
            enabled = bool(isatty and isatty())
        self.enabled = enabled
        self.interval = interval
        self.done = 0
        self._started = time.perf_counter()
        self._drawn_at = -float("inf")
        self._width = 0
        self._closed = False
        self._lock = threading.Lock()

    def update(self, count: int = 1) -> None:
        """Count ``count`` more frames done; redraws when ``interval`` has passed."""
        with self._lock:
            self.done += count
            now = time.perf_counter()
            if self.enabled and not self._closed and now - self._drawn_at >= self.interval:
                self._draw(now)

    def render(self, now: float | None = None) -> str:
        """The progress line as it would be drawn now."""
        elapsed = (time.perf_counter() if now is None else now) - self._started
        fps = self.done / elapsed if elapsed > 0 else 0.0
        head = f"{self.desc}: " if self.desc else ""
        if self.total is None:
            return f"{head}{self.done} frames  {fps:.1f} fps  {_clock(elapsed)}"
        done = min(self.done, self.total)
        eta = _clock((self.total - done) / fps) if fps > 0 else "?"
        return f"{head}{done}/{self.total} frames ({100 * done / self.total:.0f}%)  {fps:.1f} fps  ETA {eta}"

    def _draw(self, now: float) -> None:
        text = self.render(now)
        pad = max(0, self._width - len(text))
        self.stream.write("\r" + text + " " * pad)
        self.stream.flush()
        self._width = len(text)
        self._drawn_at = now

    def close(self) -> None:
        """Draw the final state and end the line. Safe to call more than once."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            if self.enabled:
                self._draw(time.perf_counter())
                self.stream.write("\n")
                self.stream.flush()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
