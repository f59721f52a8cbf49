"""Run statistics for the video pipeline: per-stage latency percentiles, end-to-end FPS, drops, a progress line.

Memory is constant however long the run: each stage keeps an exact count, sum, min and max and a fixed
log-spaced histogram (:class:`LatencyHistogram`, bins 1% wide from 1 µs to 1000 s, 2083 counters), so a
24-hour stream uses the same few tens of kilobytes as a 10-second clip. Percentiles are NumPy's
linear-interpolation ones over the samples as the histogram holds them (each at its bin's geometric
centre, the smallest and largest exact): within 0.5% of NumPy's on the raw samples.

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

import math
import os
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TextIO

import numpy as np

__all__ = ["LatencyHistogram", "Progress", "Stats"]

_PERCENTILES = (50, 95, 99)

_LOW = 1e-6
"""Seconds: the first bin starts here (and also takes everything shorter: zero, negatives)."""
_HIGH = 1e3
"""Seconds: the last bin ends at or above this (and takes everything above)."""
_GROWTH = 1.01
"""Each bin is 1% wider than the one before: a geometric centre is within 0.5% of anything in its bin."""
_BINS = math.ceil(math.log(_HIGH / _LOW) / math.log(_GROWTH))  # 2083
_SCALE = 1.0 / math.log(_GROWTH)
_OFFSET = -math.log(_LOW) * _SCALE
_log = math.log
_CENTRES = _LOW * _GROWTH ** (np.arange(_BINS) + 0.5)


class LatencyHistogram:
    """Durations in seconds in constant memory: exact count, sum, min and max, and a log-spaced histogram.

    Bin ``i`` holds ``[1 µs * 1.01**i, 1 µs * 1.01**(i+1))``; the first also takes shorter durations (zero,
    and negative ones from clock quirks, recorded as 0), the last longer ones. Not thread-safe on its own
    (:class:`Stats` locks around it).

    It also reads like the list of samples it replaces: ``append`` is ``add``, ``len()`` is the count, and
    iterating gives every sample, smallest first, as the histogram holds it (the smallest and largest exact,
    the others at their bin's geometric centre).
    """

    __slots__ = ("_counts", "count", "max", "min", "sum")

    def __init__(self, samples: Iterable[float] = ()) -> None:
        self._counts = [0] * _BINS
        self.count = 0
        self.sum = 0.0
        self.min = math.inf
        self.max = -math.inf
        for seconds in samples:
            self.add(seconds)

    def add(self, seconds: float) -> None:
        """Record one duration (seconds)."""
        x = float(seconds)
        if x > _LOW:
            if x < _HIGH:
                index = int(_log(x) * _SCALE + _OFFSET)
                if index >= _BINS:  # rounding at the very top
                    index = _BINS - 1
            else:
                if x == math.inf:
                    x = _HIGH
                index = _BINS - 1
        else:
            if not x > 0.0:  # zero, negative (clock quirks) and NaN
                x = 0.0
            index = 0
        self._counts[index] += 1
        self.count += 1
        self.sum += x
        if x < self.min:
            self.min = x
        if x > self.max:
            self.max = x

    append = add

    def merge(self, other: LatencyHistogram) -> None:
        """Add every sample of ``other``."""
        if not other.count:
            return
        self._counts = [a + b for a, b in zip(self._counts, other._counts)]
        self.count += other.count
        self.sum += other.sum
        self.min = min(self.min, other.min)
        self.max = max(self.max, other.max)

    def copy(self) -> LatencyHistogram:
        new = LatencyHistogram()
        new.merge(self)
        return new

    @property
    def mean(self) -> float:
        """The exact mean (seconds); 0 when empty."""
        return self.sum / self.count if self.count else 0.0

    def percentiles(self, qs: Iterable[float]) -> list[float]:
        """Percentiles ``qs`` (0..100) in seconds, as NumPy's linear interpolation on the held samples; 0s when empty."""
        qs = list(qs)
        n = self.count
        if not n:
            return [0.0] * len(qs)
        cumulative = np.cumsum(np.asarray(self._counts, dtype=np.int64))

        def sample(k: int) -> float:  # the k-th smallest sample as held
            if k <= 0:
                return self.min
            if k >= n - 1:
                return self.max
            centre = float(_CENTRES[int(np.searchsorted(cumulative, k, side="right"))])
            return min(max(centre, self.min), self.max)

        out = []
        for q in qs:
            rank = (n - 1) * min(max(float(q), 0.0), 100.0) / 100.0
            low = math.floor(rank)
            a = sample(low)
            out.append(a + (rank - low) * (sample(low + 1) - a) if rank > low else a)
        return out

    def percentile(self, q: float) -> float:
        """One percentile (0..100) in seconds."""
        return self.percentiles((q,))[0]

    def __len__(self) -> int:
        return self.count

    def __iter__(self) -> Iterator[float]:
        left = self.count
        if not left:
            return
        first = True
        for index, count in enumerate(self._counts):
            if not count:
                continue
            centre = min(max(float(_CENTRES[index]), self.min), self.max)
            for _ in range(count):
                left -= 1
                yield self.min if first else self.max if not left else centre
                first = False

    def __repr__(self) -> str:
        return (f"LatencyHistogram(count={self.count}, mean={self.mean:.6g}, min={self.min:.6g}, max={self.max:.6g})"
                if self.count else "LatencyHistogram(count=0)")


class Stats:
    """Collects per-stage latencies (thread-safe), counts frames and drops, and times the whole run.

    Each stage is a :class:`LatencyHistogram`: memory stays constant however many frames go through.

    Attributes:
        frames: frames that went all the way through (:meth:`frame_done`).
        dropped: frames a live source discarded; the pipeline sets it from ``Source.dropped``.
        waiting_max: the most frames that ever waited between the source and inference at once (at most 1
            for a live source); the pipeline sets it from ``Source.waiting_max``.

    The stage ``latency`` (the pipeline's capture-to-output time of each frame) is also summarised on its own
    as ``latency_ms``.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._stages: dict[str, LatencyHistogram] = {}
        self.frames = 0
        self.dropped = 0
        self.waiting_max = 0
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
        """Record one latency sample of ``stage`` in seconds (zero or negative ones count as 0)."""
        with self._lock:
            histogram = self._stages.get(stage)
            if histogram is None:
                histogram = self._stages[stage] = LatencyHistogram()
            histogram.add(seconds)

    def merge(self, stage: str, samples: LatencyHistogram | Iterable[float]) -> None:
        """Record many samples of ``stage`` at once: a :class:`LatencyHistogram` (merged bin by bin) or seconds."""
        if not isinstance(samples, LatencyHistogram):
            samples = LatencyHistogram(samples)
        with self._lock:
            self._stages.setdefault(stage, LatencyHistogram()).merge(samples)

    def histogram(self, stage: str) -> LatencyHistogram:
        """A copy of the samples of ``stage`` so far (empty when none)."""
        with self._lock:
            found = self._stages.get(stage)
            return found.copy() if found is not None else LatencyHistogram()

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
            ``frames``, ``dropped``, ``waiting_max``, ``wall_s``, ``fps`` (frames / wall seconds; 0 when no
            time passed), ``latency_ms``: ``count``, ``p50``, ``p95``, ``p99`` and ``max`` of the ``latency``
            stage (capture to output; zeros when there is none), and ``stages``: per stage in the order first
            seen, ``count``, ``mean_ms`` (exact), ``p50_ms``, ``p95_ms``, ``p99_ms`` (NumPy's
            linear-interpolation percentiles, within 0.5%), ``min_ms`` and ``max_ms`` (exact).
        """
        with self._lock:
            histograms = {stage: histogram.copy() for stage, histogram in self._stages.items()}
            frames, dropped, waiting = self.frames, self.dropped, self.waiting_max
        wall = self.wall_seconds
        stages = {}
        for stage, histogram in histograms.items():
            p50, p95, p99 = histogram.percentiles(_PERCENTILES)
            empty = not histogram.count
            stages[stage] = {"count": histogram.count, "mean_ms": histogram.mean * 1000.0,
                             "p50_ms": p50 * 1000.0, "p95_ms": p95 * 1000.0, "p99_ms": p99 * 1000.0,
                             "min_ms": 0.0 if empty else histogram.min * 1000.0,
                             "max_ms": 0.0 if empty else histogram.max * 1000.0}
        latency = stages.get("latency")
        latency_ms = {"count": latency["count"] if latency else 0,
                      **{key: latency[f"{key}_ms"] if latency else 0.0 for key in ("p50", "p95", "p99", "max")}}
        return {"frames": frames, "dropped": dropped, "waiting_max": waiting, "wall_s": wall,
                "fps": frames / wall if wall > 0 else 0.0, "latency_ms": latency_ms, "stages": stages}

    def table(self) -> str:
        """The summary as an aligned text table, one row per stage, then the totals."""
        summary = self.summary()
        header = ("stage", "count", "mean ms", "p50 ms", "p95 ms", "p99 ms", "max ms")
        rows = [(stage, str(s["count"]),
                 *(f"{s[key]:.2f}" for key in ("mean_ms", "p50_ms", "p95_ms", "p99_ms", "max_ms")))
                for stage, s in summary["stages"].items()]
        widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]

        def line(row: tuple[str, ...]) -> str:
            return "  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths)))

        out = [line(header), "  ".join("-" * w for w in widths), *(line(row) for row in rows)]
        latency = summary["latency_ms"]
        out.append(f"{summary['frames']} frames in {summary['wall_s']:.2f} s: {summary['fps']:.1f} FPS end to end, "
                   f"{summary['dropped']} dropped" + (f"; capture to output p50 {latency['p50']:.1f} ms, p95 "
                                                      f"{latency['p95']:.1f} ms, p99 {latency['p99']:.1f} ms"
                                                      if latency["count"] else ""))
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
