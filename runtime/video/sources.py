"""The generic source: :class:`Source` (decode thread, bounded buffer, live newest-frame-only, reconnects,
stalls), :class:`Frame`, :class:`SourceOptions`, and :func:`open_source`, which hands a spec to the first
registered kind that matches it (:mod:`.registry`).

The kinds themselves (camera, URL, image folder, single image, video file) are in :mod:`.source_kinds`;
how a capture is opened (backends, timeouts, URL passwords) is in :mod:`.ffmpeg`. Nothing here depends
on what kind a source is: a kind gives the base a reader (``read() -> image | None``, ``release()``), the
first frame, and optionally a ``reopen`` callable for reconnects.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from ..core.errors import SourceError
from .ffmpeg import quiet_opencv
from .registry import SOURCE_KINDS

__all__ = ["Frame", "Source", "SourceOptions", "open_source", "IMAGE_SUFFIXES"]

log = logging.getLogger("runtime.video")

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
"""Image files an image-folder source reads and a folder sink writes (case-insensitive)."""

_DEFAULT_FPS = 30.0


@dataclass
class Frame:
    """One decoded frame.

    Args:
        index: position in the stream, from 0; a live source's gaps are the frames it dropped.
        image: uint8 (H, W, 3) BGR, as OpenCV decodes it.
        timestamp: its capture time: ``time.monotonic()`` when the decoder handed it over (for the first
            frame, which is read while the source opens, when it was read). The pipeline's capture-to-output
            latency counts from here, so it includes the time a frame waits for the pipeline but not the
            network and decoder delays in front of it.
    """

    index: int
    image: np.ndarray
    timestamp: float


@dataclass(frozen=True)
class SourceOptions:
    """What :func:`open_source` was asked for, handed to a kind's ``from_spec`` (see there for each)."""

    live: bool | None = None
    queue_size: int = 8
    reconnects: int = 3
    timeout: float = 5.0
    fps: float | None = None

    @property
    def default_fps(self) -> float:
        """The frame rate of a source whose container gives none."""
        return float(self.fps) if self.fps else _DEFAULT_FPS


class Source:
    """A video source decoded in a background thread. Use :func:`open_source` to make one.

    Attributes:
        name: what was opened (a path, ``camera 0``, a URL without its password).
        fps: the container's frame rate; 30 (or the ``fps`` given to :func:`open_source`) when unknown.
        size: (height, width) of the frames.
        live: keep only the newest frame and count the ones dropped (cameras, streams): at most one frame
            waits for the consumer, and a newer one replaces it ("latest wins"), so a slow consumer sees fresh
            frames rather than a growing queue.
        frame_count: frames in the file as the container reports them; None for live or unknown.
        dropped: frames a live source discarded because the consumer was slower than the source.
        waiting_max: the most frames that ever waited for the consumer at once (at most 1 for a live source;
            up to ``queue_size`` for a file, which never drops one).
        error: why reading stopped early (damage in a file, a lost stream, a stall); None after a clean end.

    A source kind subclasses it with the class methods ``matches(spec)`` and ``from_spec(spec, options)``
    (see :mod:`runtime.video.registry`); ``reader`` is anything with ``read() -> image | None`` and ``release()``;
    ``reopen`` returns a new (reader, first frame) or raises SourceError.
    """

    cut_reason = "the file is truncated or damaged"
    """What ``error`` blames when a non-live source ends well before its frame count."""

    def __init__(self, name: str, reader, first: np.ndarray, *, fps: float, live: bool, frame_count: int | None,
                 queue_size: int = 8, reopen: Callable[[], tuple[object, np.ndarray]] | None = None,
                 reconnects: int = 0, timeout: float = 5.0) -> None:
        if queue_size < 1:
            raise ValueError("queue_size must be >= 1")
        self.name = name
        self.fps = fps
        self.size: tuple[int, int] = (int(first.shape[0]), int(first.shape[1]))
        self.live = live
        self.frame_count = frame_count
        self.dropped = 0
        self.waiting_max = 0
        self.error: str | None = None
        self._reader = reader
        self._first: np.ndarray | None = first
        self._first_at = time.monotonic()  # the first frame was read just now, while the source opened
        self._capacity = 1 if live else queue_size
        self._reopen = reopen
        self._reconnects = reconnects if reopen is not None else 0
        self._timeout = timeout
        # A stream that stayed up this long has recovered: its next outage gets the full reconnect budget.
        self._healthy_after = max(10.0, 4 * timeout)
        # read(None) gives up after this long without progress (an open attempt can take two timeouts).
        self._stall_after = 2 * timeout + 2.0
        self._buffer: deque[Frame] = deque()
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._finished = False
        self._released = False
        self._progress_at = time.monotonic()
        self._thread: threading.Thread | None = None
        self._index = 0  # the next frame's index

    # -- public API

    def start(self) -> Source:
        """Start the decode thread (once; later calls do nothing). Returns the source."""
        with self._cond:
            if self._thread is not None or self._stop.is_set():
                return self
            self._progress_at = time.monotonic()
            self._thread = threading.Thread(target=self._run, name=f"decode {self.name}", daemon=True)
            self._thread.start()
        return self

    def read(self, timeout: float | None = None) -> Frame | None:
        """The next frame, or None at the end of the stream (then ``error`` says whether it ended early).

        Starts the decode thread if :meth:`start` was not called.

        Args:
            timeout: longest wait in seconds for a frame. When it passes the source is declared stalled:
                it stops, ``error`` says so and None is returned. None waits until the source makes no
                progress for twice its open timeout plus two seconds.
        """
        if self._thread is None:
            self.start()
        called_at = time.monotonic()
        with self._cond:
            while not self._buffer:
                if self._finished or self._stop.is_set():
                    return None
                now = time.monotonic()
                if timeout is None:
                    limit = self._stall_after
                    remaining = max(self._progress_at, called_at) + limit - now
                else:
                    limit = timeout
                    remaining = called_at + limit - now
                if remaining <= 0:
                    self._fail(f"no frame for {limit:.1f} s: the source stalled")
                    self._stop.set()
                    self._cond.notify_all()
                    return None
                self._cond.wait(remaining)
            frame = self._buffer.popleft()
            self._cond.notify_all()
            return frame

    @property
    def waiting(self) -> int:
        """Frames decoded and not yet read (0 or 1 for a live source)."""
        with self._cond:
            return len(self._buffer)

    def stop(self) -> None:
        """Stop decoding, wait for the thread and release the capture. Safe to call more than once."""
        with self._cond:
            self._stop.set()
            self._buffer.clear()
            self._cond.notify_all()
            thread = self._thread
        if thread is None:
            self._release()
            return
        if thread is not threading.current_thread():
            # A network read or reopen returns within its timeouts; a hung camera driver is left to the daemon
            # thread, which releases the capture itself if it ever returns.
            limit = 2 * self._timeout + 1.0
            thread.join(limit)
            if thread.is_alive():
                log.warning("%s: the decoder did not stop within %.1f s; leaving it behind", self.name, limit)

    def __enter__(self) -> Source:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def __iter__(self) -> Iterator[Frame]:
        while (frame := self.read()) is not None:
            yield frame

    def __repr__(self) -> str:
        kind = "live" if self.live else "file"
        return f"Source({self.name!r}, {kind}, {self.size[1]}x{self.size[0]} @ {self.fps:g} fps)"

    # -- the decode thread

    def _fail(self, reason: str) -> None:
        if self.error is None:
            self.error = reason

    def _release(self) -> None:
        with self._cond:
            if self._released:
                return
            self._released = True
        self._reader.release()

    def _run(self) -> None:
        with quiet_opencv():
            try:
                self._decode()
            except Exception as exc:  # noqa: BLE001 - a decoder failure ends the stream with a reason
                self._fail(f"stopped at frame {self._index}: {exc}")
            finally:
                self._release()
                with self._cond:
                    self._finished = True
                    self._cond.notify_all()

    def _decode(self) -> None:
        connected_at = time.monotonic()
        failures = 0
        while not self._stop.is_set():
            if self._first is not None:
                image, self._first = self._first, None
                decoded_at = self._first_at
            else:
                image = self._reader.read()
                decoded_at = time.monotonic()
            if self._stop.is_set():
                break
            if image is None:
                if self._reopen is not None and self.live:
                    if time.monotonic() - connected_at >= self._healthy_after:
                        failures = 0
                    failures = self._reconnect(self._index, failures)
                    if failures < 0:
                        break
                    connected_at = time.monotonic()
                    continue
                self._check_complete(self._index)
                break
            self._progress_at = time.monotonic()
            self._push(Frame(self._index, image, decoded_at))
            self._index += 1

    def _check_complete(self, index: int) -> None:
        """Set ``error`` when a file ended well before the frame count its container gave."""
        if self.frame_count is None or self.live:
            return
        if index < self.frame_count - max(2, round(0.01 * self.frame_count)):
            self._fail(f"stopped at frame {index} of {self.frame_count}: {self.cut_reason}")

    def _reconnect(self, index: int, failures: int) -> int:
        """Reopen a lost live source; the failures so far, or -1 when the attempts ran out or stop was asked."""
        while failures < self._reconnects:
            failures += 1
            self._progress_at = time.monotonic()
            log.warning("%s: no frames after frame %d; reconnecting (attempt %d of %d)", self.name, index, failures,
                        self._reconnects)
            if self._stop.wait(min(0.25 * 2 ** (failures - 1), 2.0)):
                return -1
            self._reader.release()
            self._progress_at = time.monotonic()
            try:
                self._reader, self._first = self._reopen()
            except SourceError:
                continue
            self._first_at = time.monotonic()
            return failures
        attempts = self._reconnects
        tried = f", and {attempts} reconnect attempt{'s' if attempts != 1 else ''} failed" if attempts else ""
        self._fail(f"stopped at frame {index}: the source disconnected or stalled{tried}")
        return -1

    def _push(self, frame: Frame) -> None:
        with self._cond:
            if self._stop.is_set():
                return
            if self.live:  # latest wins: the waiting frame (the oldest) makes way for this one
                while len(self._buffer) >= self._capacity:
                    self._buffer.popleft()
                    self.dropped += 1
            else:
                while len(self._buffer) >= self._capacity and not self._stop.is_set():
                    self._cond.wait()
                if self._stop.is_set():
                    return
            self._buffer.append(frame)
            self.waiting_max = max(self.waiting_max, len(self._buffer))
            self._cond.notify_all()




def open_source(spec: str | os.PathLike, *, live: bool | None = None, queue_size: int = 8, reconnects: int = 3,
                timeout: float = 5.0, fps: float | None = None) -> Source:
    """Open a video source; it is not started (call ``start()`` or use it in a ``with`` block).

    Args:
        spec: a video file; a folder of images (read in natural name order: ``2.png`` before ``10.png``;
            .png .jpg .jpeg .bmp .tif .tiff .webp; each frame at its own size);
            a single image (one frame); a camera index (``"0"``); or a URL (rtsp, rtsps, http, https, udp,
            tcp, rtmp, rtmps) read through OpenCV's FFmpeg backend with open and read timeouts. ``/dev/videoN``
            is camera N. The registered kinds (:func:`~runtime.video.register_source`) decide, in order.
        live: keep only the newest frame and count drops. Default: True for cameras and rtsp/udp/tcp/rtmp
            URLs, and for http(s) URLs unless they end in a video file suffix (.mp4 .avi .mkv .mov .webm).
        queue_size: frames a non-live source decodes ahead of the consumer (a live one keeps one).
        reconnects: attempts to reopen a live camera or URL after it stops giving frames (per outage, with
            a short backoff); then the source ends with ``error`` set.
        timeout: seconds FFmpeg may take to open a URL, and to wait for data while reading one. ``read()``
            declares any source stalled after ``2 * timeout + 2`` seconds without a frame or a reconnect attempt.
        fps: frame rate of an image folder, and of any source whose container gives none (default 30).

    Raises:
        SourceError: one line saying what is wrong (missing file, not a video, no such camera, URL not
            reachable within ``timeout``, folder without images) and what to check.
    """
    spec = os.fspath(spec)
    if timeout <= 0:
        raise ValueError("timeout must be > 0")
    if reconnects < 0:
        raise ValueError("reconnects must be >= 0")
    if queue_size < 1:
        raise ValueError("queue_size must be >= 1")
    found = SOURCE_KINDS.match(spec)
    if found is None:
        raise SourceError(f"no such file or folder: {spec}")
    options = SourceOptions(live=live, queue_size=queue_size, reconnects=reconnects, timeout=timeout, fps=fps)
    with quiet_opencv():
        return found[1].from_spec(spec, options)
