"""Video sources and sinks: files, image folders, cameras and network streams in; files, folders, a window out.

A :class:`Source` decodes in a thread into a small buffer. File sources deliver every frame in order
(the decoder waits when the buffer is full); live sources (cameras, streams) keep only the newest
frame and count the ones a slow consumer missed. Nothing here waits forever: network reads carry
FFmpeg open and read timeouts, a live source that drops reconnects a few times and then ends, and
``read`` gives up on a source that makes no progress. Either way the source ends with ``error``
saying why::

    with open_source("clip.mp4") as source, open_sink("out.mp4", fps=source.fps) as sink:
        while (frame := source.read()) is not None:
            sink.write(frame.image)
    if source.error:
        print(source.error)

Sinks write to a temporary name and rename it when closed with ``ok=True``, so a failed run never
leaves half a file.

FFmpeg (inside OpenCV) prints its own decoder errors to stderr, apart from OpenCV's logging. OpenCV
reads ``OPENCV_FFMPEG_LOGLEVEL`` once, at the first FFmpeg call in a process, so importing this module
sets it to quiet (-8) unless it is already set: errors reach the user as one line through ``error``
or :class:`~runtime.errors.SourceError` instead. Set ``OPENCV_FFMPEG_LOGLEVEL=16`` to see them.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import cv2
import numpy as np

from train.io import DIR_MODE, FILE_MODE

from .errors import SourceError, UserError

__all__ = [
    "Frame", "Source", "open_source", "Sink", "NullSink", "VideoFileSink", "FolderSink", "WindowSink", "TeeSink",
    "open_sink", "IMAGE_SUFFIXES", "VIDEO_SUFFIXES", "URL_SCHEMES",
]

log = logging.getLogger(__name__)

# Before OpenCV's first FFmpeg call (see the module docstring); a value the user set wins.
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
"""Image files an image-folder source reads (case-insensitive)."""

VIDEO_SUFFIXES = {".mp4": "mp4v", ".mov": "mp4v", ".m4v": "mp4v", ".mkv": "mp4v", ".avi": "MJPG", ".webm": "VP80"}
"""Video files a sink writes, with the FourCC used unless ``codec`` names another."""

URL_SCHEMES = ("rtsp", "rtsps", "http", "https", "udp", "tcp", "rtmp", "rtmps")
"""Network sources, opened with OpenCV's FFmpeg backend."""

_LIVE_SCHEMES = ("rtsp", "rtsps", "udp", "tcp", "rtmp", "rtmps")
_HTTP_FILE_SUFFIXES = (".mp4", ".avi", ".mkv", ".mov", ".webm")
_OTHER_VIDEO_SUFFIXES = (".flv", ".wmv", ".mpg", ".mpeg", ".ts", ".m2ts", ".3gp", ".ogv")
_DEFAULT_FPS = 30.0


class _QuietOpenCV:
    """Silences OpenCV's own log lines while any holder is inside; the level is restored when the last one leaves."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._depth = 0
        self._saved = 0

    @contextmanager
    def __call__(self) -> Iterator[None]:
        with self._lock:
            if self._depth == 0:
                self._saved = cv2.utils.logging.getLogLevel()
                cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
            self._depth += 1
        try:
            yield
        finally:
            with self._lock:
                self._depth -= 1
                if self._depth == 0:
                    cv2.utils.logging.setLogLevel(self._saved)


_quiet_opencv = _QuietOpenCV()


# ----------------------------------------------------------------------------------------------------- sources


@dataclass
class Frame:
    """One decoded frame.

    Args:
        index: position in the stream, from 0; a live source's gaps are the frames it dropped.
        image: uint8 (H, W, 3) BGR, as OpenCV decodes it.
        timestamp: ``time.monotonic()`` when it was decoded.
    """

    index: int
    image: np.ndarray
    timestamp: float


class _CaptureReader:
    """Frames from a ``cv2.VideoCapture``."""

    def __init__(self, capture: cv2.VideoCapture) -> None:
        self.capture = capture

    def read(self) -> np.ndarray | None:
        ok, image = self.capture.read()
        return image if ok and image is not None else None

    def release(self) -> None:
        self.capture.release()


class _FolderReader:
    """Frames from a sorted list of image files; all are resized to the first one's size."""

    def __init__(self, files: list[Path]) -> None:
        self.files = files
        self.position = 0
        self.size: tuple[int, int] | None = None

    def read(self) -> np.ndarray | None:
        if self.position >= len(self.files):
            return None
        path = self.files[self.position]
        self.position += 1
        image = _read_image(path)
        if image is None:
            raise SourceError(f"cannot read image {path.name}")
        if self.size is None:
            self.size = image.shape[:2]
        elif image.shape[:2] != self.size:
            image = cv2.resize(image, (self.size[1], self.size[0]), interpolation=cv2.INTER_AREA)
        return image

    def release(self) -> None:
        self.position = len(self.files)


def _read_image(path: Path) -> np.ndarray | None:
    # np.fromfile + imdecode: no OpenCV warnings for unreadable files, and non-ASCII paths work everywhere.
    try:
        data = np.fromfile(str(path), dtype=np.uint8)
    except OSError:
        return None
    return cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None


class Source:
    """A video source decoded in a background thread. Use :func:`open_source` to make one.

    Attributes:
        name: what was opened (a path, ``camera 0``, a URL without its password).
        fps: the container's frame rate; 30 (or the ``fps`` given to :func:`open_source`) when unknown.
        size: (height, width) of the frames.
        live: keep only the newest frame and count the ones dropped (cameras, streams).
        frame_count: frames in the file as the container reports them; None for live or unknown.
        dropped: frames a live source discarded because the consumer was slower than the source.
        error: why reading stopped early (damage in a file, a lost stream, a stall); None after a clean end.
    """

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
        self.error: str | None = None
        self._reader = reader
        self._first: np.ndarray | None = first
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
        with _quiet_opencv():
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
            else:
                image = self._reader.read()
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
            self._push(Frame(self._index, image, self._progress_at))
            self._index += 1

    def _check_complete(self, index: int) -> None:
        """Set ``error`` when a file ended well before the frame count its container gave."""
        if self.frame_count is None or self.live:
            return
        if index < self.frame_count - max(2, round(0.01 * self.frame_count)):
            what = "the stream was cut or stalled" if "://" in self.name else "the file is truncated or damaged"
            self._fail(f"stopped at frame {index} of {self.frame_count}: {what}")

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
            return failures
        attempts = self._reconnects
        tried = f", and {attempts} reconnect attempt{'s' if attempts != 1 else ''} failed" if attempts else ""
        self._fail(f"stopped at frame {index}: the source disconnected or stalled{tried}")
        return -1

    def _push(self, frame: Frame) -> None:
        with self._cond:
            if self._stop.is_set():
                return
            if self.live:
                while len(self._buffer) >= self._capacity:
                    self._buffer.popleft()
                    self.dropped += 1
            else:
                while len(self._buffer) >= self._capacity and not self._stop.is_set():
                    self._cond.wait()
                if self._stop.is_set():
                    return
            self._buffer.append(frame)
            self._cond.notify_all()


def _natural_key(path: Path) -> list:
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", path.name)]


def _redact(url: str) -> str:
    """The URL without its password."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    host = f"[{host}]" if ":" in host else host
    netloc = f"{parts.username}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def _capture_info(capture: cv2.VideoCapture, default_fps: float) -> tuple[float, int | None]:
    fps = capture.get(cv2.CAP_PROP_FPS)
    fps = float(fps) if np.isfinite(fps) and 0 < fps < 1000 else default_fps
    count = capture.get(cv2.CAP_PROP_FRAME_COUNT)
    count = int(count) if np.isfinite(count) and count > 0 else None
    return fps, count


def _file_backend() -> int:
    return cv2.CAP_FFMPEG if cv2.videoio_registry.hasBackend(cv2.CAP_FFMPEG) else cv2.CAP_ANY


def _open_capture(kind: str, target: str, display: str, timeout: float) -> tuple[_CaptureReader, np.ndarray]:
    """Open a capture and read its first frame, or raise SourceError saying what to check."""
    if kind == "camera":
        capture = cv2.VideoCapture(int(target))
        failure = (f"cannot open camera {target}: there is no such camera or another program holds it; "
                   f"check the index (0 is the first camera)")
    elif kind == "url":
        ms = max(1, round(timeout * 1000))
        capture = cv2.VideoCapture(target, cv2.CAP_FFMPEG,
                                   [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, ms])
        failure = (f"cannot read {display} within {timeout:g} s: check the address and that the stream is "
                   f"running and reachable, or allow a longer timeout")
    else:
        capture = cv2.VideoCapture(target, _file_backend())
        failure = (f"cannot read {display} as a video: it is not a video file OpenCV can decode, or it is "
                   f"empty or damaged; give a video (.mp4, .avi, .mkv, .mov) or a folder of images")
    first = None
    if capture.isOpened():
        ok, first = capture.read()
        first = first if ok else None
    if first is None:
        capture.release()
        raise SourceError(failure)
    return _CaptureReader(capture), first


def _classify(spec: str) -> tuple[str, str]:
    """(kind, target): kind is camera, url, folder, image or file."""
    if spec.isdigit():
        return "camera", spec
    device = re.fullmatch(r"/dev/video(\d+)", spec)
    if device and os.name == "posix":
        return "camera", device.group(1)
    scheme = re.match(r"^([A-Za-z][A-Za-z0-9+.-]*)://", spec)
    if scheme:
        name = scheme.group(1).lower()
        if name not in URL_SCHEMES:
            raise SourceError(f"cannot open {name}:// sources; use a file, a folder of images, a camera index or "
                              f"a {', '.join(s + '://' for s in URL_SCHEMES)} URL")
        return "url", spec
    path = Path(spec).expanduser()
    if not path.exists():
        raise SourceError(f"no such file or folder: {spec}")
    if path.is_dir():
        return "folder", str(path)
    if path.suffix.lower() in IMAGE_SUFFIXES:
        return "image", str(path)
    return "file", str(path)


def open_source(spec: str | os.PathLike, *, live: bool | None = None, queue_size: int = 8, reconnects: int = 3,
                timeout: float = 5.0, fps: float | None = None) -> Source:
    """Open a video source; it is not started (call ``start()`` or use it in a ``with`` block).

    Args:
        spec: a video file; a folder of images (read in natural name order: ``2.png`` before ``10.png``;
            .png .jpg .jpeg .bmp .tif .tiff .webp; images of another size are resized to the first's);
            a single image (one frame); a camera index (``"0"``); or a URL (rtsp, rtsps, http, https, udp,
            tcp, rtmp, rtmps) read through OpenCV's FFmpeg backend with open and read timeouts. ``/dev/videoN``
            is camera N.
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
    default_fps = float(fps) if fps else _DEFAULT_FPS
    kind, target = _classify(spec)
    if live is None:
        if kind == "camera":
            live = True
        elif kind == "url":
            parts = urlsplit(target)
            live = parts.scheme.lower() in _LIVE_SCHEMES or not parts.path.lower().endswith(_HTTP_FILE_SUFFIXES)
        else:
            live = False
    display = _redact(target) if kind == "url" else (f"camera {target}" if kind == "camera" else target)
    common = dict(live=live, queue_size=queue_size, timeout=timeout)

    with _quiet_opencv():
        if kind in ("folder", "image"):
            path = Path(target)
            if kind == "folder":
                files = sorted((p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES),
                               key=_natural_key)
                if not files:
                    raise SourceError(f"{display} holds no images ({' '.join(IMAGE_SUFFIXES)}); "
                                      f"give a folder of frames or a video file")
            else:
                files = [path]
            reader = _FolderReader(files)
            first = reader.read()  # raises SourceError naming an unreadable first image
            return Source(display, reader, first, fps=default_fps, frame_count=None if live else len(files),
                          **common)

        def reopen() -> tuple[_CaptureReader, np.ndarray]:
            with _quiet_opencv():
                return _open_capture(kind, target, display, timeout)

        reader, first = reopen()
        native_fps, count = _capture_info(reader.capture, default_fps)
        return Source(display, reader, first, fps=native_fps, frame_count=None if live else count,
                      reopen=reopen if kind in ("camera", "url") else None, reconnects=reconnects, **common)


# ------------------------------------------------------------------------------------------------------- sinks


def _check_image(image: np.ndarray) -> np.ndarray:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8:
        raise ValueError(f"sinks take uint8 images, got {getattr(image, 'dtype', type(image).__name__)}")
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"sinks take (H, W, 3) BGR images, got shape {image.shape}")
    return image


def _resize(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    if image.shape[:2] == tuple(size):
        return image
    shrink = size[0] * size[1] < image.shape[0] * image.shape[1]
    return cv2.resize(image, (size[1], size[0]), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


class Sink:
    """Where processed frames go. A context manager: leaving the block on an exception closes with ``ok=False``.

    Attributes:
        frames: frames written so far.
        stop_requested: the user asked to stop (pressed q or Esc in a preview window).
    """

    def __init__(self) -> None:
        self.frames = 0
        self.stop_requested = False
        self.closed = False

    def write(self, image: np.ndarray) -> None:
        """Write one uint8 (H, W, 3) BGR frame (a (H, W) grey frame is converted)."""
        if self.closed:
            raise ValueError("write to a closed sink")
        self._write(_check_image(image))
        self.frames += 1

    def close(self, ok: bool = True) -> None:
        """Finish the output (``ok=True``) or discard it (``ok=False``). Safe to call more than once."""
        if self.closed:
            return
        self.closed = True
        self._close(ok)

    def _write(self, image: np.ndarray) -> None:
        """Backend write; ``image`` is checked."""

    def _close(self, ok: bool) -> None:
        """Backend close."""

    def pump(self) -> None:
        """Do the work that must run on the main thread (drawing a preview window); call it from there."""

    def __enter__(self) -> Sink:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close(ok=exc_type is None)


class NullSink(Sink):
    """Counts frames and writes nothing (for benchmarks and dry runs)."""


class VideoFileSink(Sink):
    """A video file written with ``cv2.VideoWriter`` under a temporary name, renamed when closed with ``ok=True``.

    Args:
        path: the output; the container comes from its suffix (.mp4 .mov .m4v .mkv .avi .webm).
        fps: frame rate written in the container.
        size: (height, width) of the video; frames of another size are resized. Default: the first frame's.
        codec: FourCC (``mp4v``, ``MJPG``, ``XVID``, ``VP80``...); default by suffix (:data:`VIDEO_SUFFIXES`).
        overwrite: replace an existing file instead of refusing.

    Raises:
        UserError: the output exists (without ``overwrite``), is a folder, or OpenCV cannot write it.
    """

    def __init__(self, path: str | os.PathLike, *, fps: float, size: tuple[int, int] | None = None,
                 codec: str | None = None, overwrite: bool = False) -> None:
        super().__init__()
        self.path = Path(path)
        suffix = self.path.suffix.lower()
        if suffix not in VIDEO_SUFFIXES:
            raise UserError(f"cannot write {self.path.name}: use one of {' '.join(VIDEO_SUFFIXES)}")
        if self.path.is_dir():
            raise UserError(f"{self.path} is a folder; give a video file name")
        if self.path.exists() and not overwrite:
            raise UserError(f"{self.path} already exists; pass --overwrite to replace it or choose another name")
        if not fps or fps <= 0 or not np.isfinite(fps):
            raise ValueError(f"fps must be > 0, got {fps}")
        self.fps = float(fps)
        self.codec = codec or VIDEO_SUFFIXES[suffix]
        if len(self.codec) != 4:
            raise UserError(f"codec {self.codec!r} is not a four-character code (mp4v, MJPG, XVID, VP80)")
        self.size = tuple(size) if size is not None else None
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Keep the real suffix last so that OpenCV picks the container from it.
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.stem}.", suffix=f".tmp{self.path.suffix}",
                                   dir=self.path.parent)
        os.close(fd)
        self.tmp_path = Path(tmp)
        self._writer: cv2.VideoWriter | None = None
        if self.size is not None:
            self._open(self.size)

    def _open(self, size: tuple[int, int]) -> None:
        with _quiet_opencv():
            writer = cv2.VideoWriter(str(self.tmp_path), _file_backend(), cv2.VideoWriter_fourcc(*self.codec),
                                     self.fps, (int(size[1]), int(size[0])))
        if not writer.isOpened():
            writer.release()
            self.tmp_path.unlink(missing_ok=True)
            self.closed = True
            raise UserError(f"cannot write {self.path.name} with codec {self.codec!r}: this OpenCV has no such "
                            f"encoder for {self.path.suffix} files; try codec mp4v (.mp4) or MJPG (.avi)")
        self._writer = writer
        self.size = (int(size[0]), int(size[1]))

    def _write(self, image: np.ndarray) -> None:
        if self._writer is None:
            self._open(image.shape[:2])
        # VideoWriter silently drops frames of the wrong size; resize instead.
        self._writer.write(_resize(image, self.size))

    def _close(self, ok: bool) -> None:
        if self._writer is not None:
            self._writer.release()
        if ok and self.frames:
            os.chmod(self.tmp_path, FILE_MODE)
            os.replace(self.tmp_path, self.path)
            return
        if ok:
            log.warning("%s: no frames were written, so no file was made", self.path)
        self.tmp_path.unlink(missing_ok=True)


_FRAME_NAME = re.compile(r"frame_\d+\.(png|jpg|jpeg|bmp|tif|tiff|webp)$", re.IGNORECASE)


class FolderSink(Sink):
    """Frames as numbered images (``frame_000000.png``...) in a folder.

    A new folder is written under a temporary name and renamed when closed with ``ok=True``; an existing
    empty folder is written in place (and emptied again on ``ok=False``). With ``overwrite`` a folder that
    holds only a previous run's frames is replaced as a whole when the new one is complete; a folder with
    other files in it is never replaced.

    Args:
        path: the folder.
        suffix: image format of the frames (``.png`` lossless, ``.jpg`` smaller).
        overwrite: replace a folder that holds earlier frames.

    Raises:
        UserError: ``path`` is a file, or a folder that is not empty (and not only frames with ``overwrite``).
    """

    def __init__(self, path: str | os.PathLike, *, suffix: str = ".png", overwrite: bool = False) -> None:
        super().__init__()
        self.path = Path(path)
        self.suffix = suffix if suffix.startswith(".") else f".{suffix}"
        if self.suffix.lower() not in IMAGE_SUFFIXES:
            raise UserError(f"cannot write {self.suffix} frames; use one of {' '.join(IMAGE_SUFFIXES)}")
        if self.path.exists() and not self.path.is_dir():
            raise UserError(f"{self.path} is a file; give a folder for the frames, or a video file name "
                            f"ending in {', '.join(VIDEO_SUFFIXES)}")
        self._replace = False
        if self.path.is_dir():
            entries = sorted(p.name for p in self.path.iterdir())
            if entries and not overwrite:
                raise UserError(f"{self.path} is not empty; pass --overwrite to replace its frames or choose "
                                f"another folder")
            others = [name for name in entries if not _FRAME_NAME.match(name)]
            if others:
                shown = ", ".join(others[:3]) + (f" and {len(others) - 3} more" if len(others) > 3 else "")
                raise UserError(f"{self.path} holds files that are not frames ({shown}); choose an empty or new "
                                f"folder")
            self._replace = bool(entries)
        if self.path.is_dir() and not self._replace:
            self.target = self.path
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.target = Path(tempfile.mkdtemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent))
        self._written: list[Path] = []

    def _write(self, image: np.ndarray) -> None:
        ok, data = cv2.imencode(self.suffix, image)
        if not ok:
            raise UserError(f"cannot encode {self.suffix} images")
        name = self.target / f"frame_{self.frames:06d}{self.suffix}"
        data.tofile(str(name))
        self._written.append(name)

    def _close(self, ok: bool) -> None:
        in_place = self.target == self.path
        if not ok:
            if in_place:
                for name in self._written:
                    name.unlink(missing_ok=True)
            else:
                shutil.rmtree(self.target, ignore_errors=True)
            return
        if in_place:
            return
        os.chmod(self.target, DIR_MODE)
        if self._replace:
            old = Path(tempfile.mkdtemp(prefix=f".{self.path.name}.old.", dir=self.path.parent))
            os.rename(self.path, old / self.path.name)
            os.rename(self.target, self.path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(self.target, self.path)


class WindowSink(Sink):
    """Shows frames in a window; q or Esc (or closing the window) sets ``stop_requested``.

    Raises:
        UserError: this OpenCV has no GUI (``opencv-python-headless``) or there is no display.
    """

    def __init__(self, title: str = "edgelight") -> None:
        super().__init__()
        self.title = title
        if os.name == "posix" and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")) \
                and not _is_macos():
            raise UserError("cannot show a window: no display (DISPLAY is not set); drop --show or write a file")
        try:
            cv2.namedWindow(title, cv2.WINDOW_NORMAL)
        except cv2.error:
            raise UserError("cannot show a window: this OpenCV has no GUI support (opencv-python-headless); "
                            "install opencv-python or drop --show") from None

    _latest: np.ndarray | None = None
    _lock = threading.Lock()

    def _write(self, image: np.ndarray) -> None:
        # Writers may run in a worker thread; HighGUI must be driven from the main thread (``pump``).
        with self._lock:
            self._latest = image
        if threading.current_thread() is threading.main_thread():
            self.pump()

    def pump(self) -> None:
        with self._lock:
            image, self._latest = self._latest, None
        if image is not None:
            cv2.imshow(self.title, image)
        key = cv2.waitKey(1) & 0xFF
        if key in (ord("q"), ord("Q"), 27):
            self.stop_requested = True
        elif cv2.getWindowProperty(self.title, cv2.WND_PROP_VISIBLE) < 1:
            self.stop_requested = True

    def _close(self, ok: bool) -> None:
        try:
            cv2.destroyWindow(self.title)
            cv2.waitKey(1)
        except cv2.error:
            pass


def _is_macos() -> bool:
    return os.uname().sysname == "Darwin"


class TeeSink(Sink):
    """Writes every frame to several sinks; ``stop_requested`` when any of them asks."""

    def __init__(self, sinks: list[Sink]) -> None:
        self.sinks = list(sinks)
        super().__init__()

    @property
    def stop_requested(self) -> bool:
        return any(sink.stop_requested for sink in self.sinks)

    @stop_requested.setter
    def stop_requested(self, value: bool) -> None:
        for sink in self.sinks:
            sink.stop_requested = value

    def _write(self, image: np.ndarray) -> None:
        for sink in self.sinks:
            sink.write(image)

    def pump(self) -> None:
        for sink in self.sinks:
            sink.pump()

    def _close(self, ok: bool) -> None:
        failure: BaseException | None = None
        for sink in self.sinks:
            try:
                sink.close(ok)
            except Exception as exc:  # noqa: BLE001 - close the others, then report the first failure
                failure = failure or exc
        if failure is not None:
            raise failure


def open_sink(spec: str | os.PathLike | None, *, fps: float, size: tuple[int, int] | None = None, show: bool = False,
              codec: str | None = None, overwrite: bool = False) -> Sink:
    """Open where frames go.

    Args:
        spec: None: no output (a :class:`NullSink` that counts frames); a path ending in a video suffix
            (.mp4 .mov .m4v .mkv .avi .webm): a :class:`VideoFileSink`; anything else: a :class:`FolderSink`
            of PNG frames.
        fps: frame rate of a video file.
        size: (height, width) of a video file; frames are resized to it. Default: the first frame's size.
        show: also show the frames in a window (q or Esc sets ``stop_requested``).
        codec: FourCC for a video file; default by suffix.
        overwrite: replace an existing output instead of refusing.

    Raises:
        UserError: the output exists (without ``overwrite``), cannot be written, or a window cannot be shown.
    """
    sink: Sink | None = None
    if spec is not None:
        path = Path(os.fspath(spec)).expanduser()
        suffix = path.suffix.lower()
        if suffix in VIDEO_SUFFIXES:
            sink = VideoFileSink(path, fps=fps, size=size, codec=codec, overwrite=overwrite)
        elif suffix in _OTHER_VIDEO_SUFFIXES:
            raise UserError(f"cannot write {suffix} files; use one of {' '.join(VIDEO_SUFFIXES)}")
        else:
            sink = FolderSink(path, overwrite=overwrite)
    if not show:
        return sink if sink is not None else NullSink()
    try:
        window = WindowSink()
    except UserError:
        if sink is not None:
            sink.close(ok=False)
        raise
    return window if sink is None else TeeSink([sink, window])
