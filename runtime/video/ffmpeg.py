"""FFmpeg and OpenCV details behind the sources and sinks; nothing here knows about threads or queues.

* The quiet-OpenCV guard (:data:`quiet_opencv`) and FFmpeg's own log level (below).
* Opening a ``cv2.VideoCapture`` for a video file, a camera or a URL (with FFmpeg open and read
  timeouts), reading its first frame, and the one-line :class:`~runtime.core.errors.SourceError` when that
  fails; :class:`CaptureReader` and :func:`capture_info` (frame rate and frame count).
* Backend choice (:func:`file_backend`) and the FourCC per written suffix (:data:`VIDEO_SUFFIXES`);
  :func:`open_writer` for ``cv2.VideoWriter``.
* URLs: the schemes read (:data:`URL_SCHEMES`), which are live (:func:`url_is_live`), and :func:`redact`.

Latency of live URLs. OpenCV gives FFmpeg's decoder one thread per core (up to 16), and FFmpeg then
decodes several frames at once: each frame comes out ``threads - 1`` frames late (on a 16-core machine,
half a second at 30 FPS). :func:`open_url` therefore decodes a live URL on one thread (an H.264 1080p
frame takes about 7 ms on one core, BGR conversion included); ``OPENCV_FFMPEG_THREADS=N`` restores
N threads, trading ``N - 1`` frames of latency for decoding speed. Two delays are the stream's own and
no reader option removes them: an MPEG-TS sender that leaves out video PES lengths (FFmpeg's default)
makes the demuxer wait for the next frame's first packet, and FFmpeg's H.264 parser needs the start of
the next access unit to end the current one; each costs one frame interval, unless the sender writes PES
lengths (``omit_video_pes_length=0``) and ends each frame with an access unit delimiter, as the live
benchmark's sender does (``benchmarks/live.py``). FFmpeg's probing at open (``probesize``,
``analyzeduration``) only delays the start, and frames read while probing are delivered late once, then
dropped by the live source; ``OPENCV_FFMPEG_CAPTURE_OPTIONS="fflags;nobuffer|probesize;32|analyzeduration;0"``
discards them and opens in about 0.1 s instead of 0.7 s (the variable replaces OpenCV's default
``rtsp_flags;prefer_tcp``; add it back for RTSP over TCP). The runtime does not set that variable
itself, since it is global to the process and would also apply to files.

FFmpeg (inside OpenCV) prints its own decoder errors to stderr, apart from OpenCV's logging. OpenCV
reads ``OPENCV_FFMPEG_LOGLEVEL`` once, at the first FFmpeg call in a process, so importing this module
(which importing :mod:`runtime.video` does) sets it to quiet (-8) unless it is already set: errors reach
the user as one line through ``Source.error`` or :class:`~runtime.core.errors.SourceError` instead. Set
``OPENCV_FFMPEG_LOGLEVEL=16`` to see them.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import cv2
import numpy as np

from ..core.errors import SourceError

__all__ = [
    "VIDEO_SUFFIXES", "OTHER_VIDEO_SUFFIXES", "URL_SCHEMES", "quiet_opencv", "CaptureReader", "capture_info",
    "file_backend", "open_file", "open_camera", "open_url", "open_writer", "url_is_live", "redact",
]

# Before OpenCV's first FFmpeg call (see the module docstring); a value the user set wins.
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")

VIDEO_SUFFIXES = {".mp4": "mp4v", ".mov": "mp4v", ".m4v": "mp4v", ".mkv": "mp4v", ".avi": "MJPG", ".webm": "VP80"}
"""Video files a sink writes, with the FourCC used unless ``codec`` names another."""

OTHER_VIDEO_SUFFIXES = (".flv", ".wmv", ".mpg", ".mpeg", ".ts", ".m2ts", ".3gp", ".ogv")
"""Video containers FFmpeg may read but a sink does not write (a sink refuses them rather than make a folder)."""

URL_SCHEMES = ("rtsp", "rtsps", "http", "https", "udp", "tcp", "rtmp", "rtmps")
"""Network sources, opened with OpenCV's FFmpeg backend."""

_LIVE_SCHEMES = ("rtsp", "rtsps", "udp", "tcp", "rtmp", "rtmps")
_HTTP_FILE_SUFFIXES = (".mp4", ".avi", ".mkv", ".mov", ".webm")


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


quiet_opencv = _QuietOpenCV()
"""``with quiet_opencv(): ...`` silences OpenCV's log lines (re-entrant, shared by all threads)."""


# ------------------------------------------------------------------------------------------------ capture


class CaptureReader:
    """Frames from a ``cv2.VideoCapture``: ``read()`` gives an image or None, ``release()`` frees it."""

    def __init__(self, capture: cv2.VideoCapture) -> None:
        self.capture = capture

    def read(self) -> np.ndarray | None:
        ok, image = self.capture.read()
        return image if ok and image is not None else None

    def release(self) -> None:
        self.capture.release()


def capture_info(capture: cv2.VideoCapture, default_fps: float) -> tuple[float, int | None]:
    """(frame rate, frame count) as the container reports them; ``default_fps`` and None when it does not."""
    fps = capture.get(cv2.CAP_PROP_FPS)
    fps = float(fps) if np.isfinite(fps) and 0 < fps < 1000 else default_fps
    count = capture.get(cv2.CAP_PROP_FRAME_COUNT)
    count = int(count) if np.isfinite(count) and count > 0 else None
    return fps, count


def file_backend() -> int:
    """OpenCV's FFmpeg backend where this build has it, else whatever OpenCV picks."""
    return cv2.CAP_FFMPEG if cv2.videoio_registry.hasBackend(cv2.CAP_FFMPEG) else cv2.CAP_ANY


def _first_frame(capture: cv2.VideoCapture, failure: str) -> tuple[CaptureReader, np.ndarray]:
    """The capture and its first frame, or release it and raise SourceError(failure)."""
    first = None
    if capture.isOpened():
        ok, first = capture.read()
        first = first if ok else None
    if first is None:
        capture.release()
        raise SourceError(failure)
    return CaptureReader(capture), first


def open_file(path: str, display: str) -> tuple[CaptureReader, np.ndarray]:
    """Open a video file and read its first frame, or raise SourceError saying what to give instead."""
    return _first_frame(cv2.VideoCapture(path, file_backend()),
                        f"cannot read {display} as a video: it is not a video file OpenCV can decode, or it is "
                        f"empty or damaged; give a video (.mp4, .avi, .mkv, .mov) or a folder of images")


def open_camera(index: str) -> tuple[CaptureReader, np.ndarray]:
    """Open camera ``index`` (digits) and read its first frame, or raise SourceError."""
    return _first_frame(cv2.VideoCapture(int(index)),
                        f"cannot open camera {index}: there is no such camera or another program holds it; "
                        f"check the index (0 is the first camera)")


def open_url(url: str, display: str, timeout: float, *, live: bool = False) -> tuple[CaptureReader, np.ndarray]:
    """Open a URL with FFmpeg, ``timeout`` seconds to open and per read, and read its first frame, or raise.

    A ``live`` URL is decoded on one thread, so that no frame waits inside the decoder for the next ones
    (see the module docstring), unless ``OPENCV_FFMPEG_THREADS`` is set.
    """
    ms = max(1, round(timeout * 1000))
    params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, ms]
    if live and not os.environ.get("OPENCV_FFMPEG_THREADS"):
        params += [cv2.CAP_PROP_N_THREADS, 1]
    capture = cv2.VideoCapture(url, cv2.CAP_FFMPEG, params)
    return _first_frame(capture, f"cannot read {display} within {timeout:g} s: check the address and that the "
                                 f"stream is running and reachable, or allow a longer timeout")


# -------------------------------------------------------------------------------------------------- writer


def open_writer(path: Path, codec: str, fps: float, size: tuple[int, int]) -> cv2.VideoWriter | None:
    """A ``cv2.VideoWriter`` for ``path`` (container from its suffix) of (height, width) ``size``; None if it cannot."""
    with quiet_opencv():
        writer = cv2.VideoWriter(str(path), file_backend(), cv2.VideoWriter_fourcc(*codec), fps,
                                 (int(size[1]), int(size[0])))
    if not writer.isOpened():
        writer.release()
        return None
    return writer


def written_frames(path: Path) -> tuple[int, tuple[int, int] | None]:
    """(frames, (height, width)) of a video file as a reader sees it: (0, None) when it does not open.

    The container's frame count is used where it has one; otherwise the frames are counted.
    """
    with quiet_opencv():
        capture = cv2.VideoCapture(str(path), file_backend())
        try:
            if not capture.isOpened():
                return 0, None
            ok, frame = capture.read()
            if not ok:
                return 0, None
            size = (int(frame.shape[0]), int(frame.shape[1]))
            count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
            if count <= 0:
                count = 1
                while capture.grab():
                    count += 1
            return count, size
        finally:
            capture.release()


def encoder_takes(codec: str, suffix: str, size: tuple[int, int], folder: Path) -> bool:
    """Whether this OpenCV can write ``codec`` into ``suffix`` files at (height, width) ``size`` (probed in
    ``folder`` with a throwaway file)."""
    import tempfile

    fd, probe = tempfile.mkstemp(prefix=".edgelight-probe-", suffix=suffix, dir=folder)
    os.close(fd)
    try:
        writer = open_writer(Path(probe), codec, 10.0, size)
        if writer is None:
            return False
        writer.release()
        return True
    finally:
        Path(probe).unlink(missing_ok=True)


# ---------------------------------------------------------------------------------------------------- URLs


def url_is_live(url: str) -> bool:
    """rtsp/udp/tcp/rtmp streams are live; http(s) too unless the path ends in a video file suffix."""
    parts = urlsplit(url)
    return parts.scheme.lower() in _LIVE_SCHEMES or not parts.path.lower().endswith(_HTTP_FILE_SUFFIXES)


def redact(url: str) -> str:
    """The URL without its password."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    host = f"[{host}]" if ":" in host else host
    netloc = f"{parts.username}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))
