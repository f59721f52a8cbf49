"""Sinks: the :class:`Sink` base, the sinks, their registration and :func:`open_sink`.

Sinks write to a temporary name and rename it when closed with ``ok=True``, so a failed run never leaves
half a file. Kinds, in the order :func:`open_sink` tries them (:mod:`.registry`): ``none`` (:class:`NullSink`),
``video`` (:class:`VideoFileSink`, by suffix), ``folder`` (:class:`FolderSink`, any other path). ``show``
adds a :class:`WindowSink`, joined to the output by a :class:`TeeSink`. ``cv2.VideoWriter`` is in :mod:`.ffmpeg`.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ..core.errors import UserError
from ..core.io import DIR_MODE, FILE_MODE
from .ffmpeg import OTHER_VIDEO_SUFFIXES, VIDEO_SUFFIXES, open_writer
from .registry import SINK_KINDS, register_sink
from .sources import IMAGE_SUFFIXES

__all__ = ["Sink", "SinkOptions", "NullSink", "VideoFileSink", "FolderSink", "WindowSink", "TeeSink", "open_sink"]

log = logging.getLogger("runtime.video")


@dataclass(frozen=True)
class SinkOptions:
    """What :func:`open_sink` was asked for, handed to a sink kind's ``from_spec`` (see there for each)."""

    fps: float
    size: tuple[int, int] | None = None
    codec: str | None = None
    overwrite: bool = False


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
    """Counts frames and writes nothing (for benchmarks and dry runs); the ``none`` kind (no output given)."""

    @classmethod
    def matches(cls, path: Path | None) -> bool:
        return path is None

    @classmethod
    def from_spec(cls, path: Path | None, options: SinkOptions) -> Sink:
        return cls()


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

    @classmethod
    def matches(cls, path: Path | None) -> bool:
        return path is not None and path.suffix.lower() in (*VIDEO_SUFFIXES, *OTHER_VIDEO_SUFFIXES)

    @classmethod
    def from_spec(cls, path: Path, options: SinkOptions) -> Sink:
        suffix = path.suffix.lower()
        if suffix not in VIDEO_SUFFIXES:
            raise UserError(f"cannot write {suffix} files; use one of {' '.join(VIDEO_SUFFIXES)}")
        return cls(path, fps=options.fps, size=options.size, codec=options.codec, overwrite=options.overwrite)

    def _open(self, size: tuple[int, int]) -> None:
        writer = open_writer(self.tmp_path, self.codec, self.fps, size)
        if writer is None:
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

    @classmethod
    def matches(cls, path: Path | None) -> bool:
        return path is not None

    @classmethod
    def from_spec(cls, path: Path, options: SinkOptions) -> Sink:
        return cls(path, overwrite=options.overwrite)

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


# Tried in this order: the first kind whose matches(path) is true writes the output.
register_sink("none", NullSink)
register_sink("video", VideoFileSink)
register_sink("folder", FolderSink)


def open_sink(spec: str | os.PathLike | None, *, fps: float, size: tuple[int, int] | None = None, show: bool = False,
              codec: str | None = None, overwrite: bool = False) -> Sink:
    """Open where frames go.

    Args:
        spec: None: no output (a :class:`NullSink` that counts frames); a path ending in a video suffix
            (.mp4 .mov .m4v .mkv .avi .webm): a :class:`VideoFileSink`; anything else: a :class:`FolderSink`
            of PNG frames. The registered kinds (:func:`~runtime.video.register_sink`) decide, in order.
        fps: frame rate of a video file.
        size: (height, width) of a video file; frames are resized to it. Default: the first frame's size.
        show: also show the frames in a window (q or Esc sets ``stop_requested``).
        codec: FourCC for a video file; default by suffix.
        overwrite: replace an existing output instead of refusing.

    Raises:
        UserError: the output exists (without ``overwrite``), cannot be written, or a window cannot be shown.
    """
    path = None if spec is None else Path(os.fspath(spec)).expanduser()
    found = SINK_KINDS.match(path)
    if found is None:
        raise UserError(f"cannot write {spec}: no sink kind takes it (kinds: {', '.join(SINK_KINDS.names())})")
    sink = found[1].from_spec(path, SinkOptions(fps=fps, size=size, codec=codec, overwrite=overwrite))
    if not show:
        return sink
    try:
        window = WindowSink()
    except UserError:
        sink.close(ok=False)
        raise
    # With no output the window alone; a NullSink would add nothing to it.
    return window if isinstance(sink, NullSink) else TeeSink([sink, window])
