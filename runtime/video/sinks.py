"""Sinks: the :class:`Sink` base, the sinks, their registration and :func:`open_sink`.

Sinks write to a temporary name and rename it when closed with ``ok=True``, so a failed run never leaves
half a file. Kinds, in the order :func:`open_sink` tries them (:mod:`.registry`): ``none`` (:class:`NullSink`),
``video`` (:class:`VideoFileSink`, by suffix), ``folder`` (:class:`FolderSink`, any other path). ``show``
adds a :class:`WindowSink`, joined to the output by a :class:`TeeSink`. ``cv2.VideoWriter`` is in :mod:`.ffmpeg`.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ..core.errors import UserError
from ..core.io import free_bytes, publish, temp_dir, temp_file
from .ffmpeg import OTHER_VIDEO_SUFFIXES, VIDEO_SUFFIXES, encoder_takes, open_writer, quiet_opencv, written_frames
from .registry import SINK_KINDS, register_sink
from .sources import IMAGE_SUFFIXES

__all__ = ["Sink", "SinkOptions", "NullSink", "VideoFileSink", "FolderSink", "TeeSink", "open_sink"]

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
        self.overwrite = overwrite
        # Recognisable (runtime.core.io), with the real suffix last so that OpenCV picks the container from it.
        self.tmp_path = temp_file(self.path, suffix=self.path.suffix)
        self._writer: cv2.VideoWriter | None = None
        self._warned = False
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
        height, width = int(size[0]), int(size[1])
        if height % 2 or width % 2:
            self._fail()
            raise UserError(f"cannot write {self.path.name} at {height}x{width}: OpenCV's video writer makes even "
                            f"sizes only and would crop it to {height - height % 2}x{width - width % 2}; pass "
                            "--output-size with even sides, or write an image folder (which keeps every size)")
        writer = open_writer(self.tmp_path, self.codec, self.fps, (height, width))
        if writer is None:
            self._fail()
            if encoder_takes(self.codec, self.path.suffix, (64, 64), self.path.parent):
                raise UserError(f"cannot write {self.path.name}: the {self.codec} encoder refuses {height}x{width} "
                                "frames; pass --output-size with a smaller size")
            raise UserError(f"cannot write {self.path.name} with codec {self.codec!r}: this OpenCV has no such "
                            f"encoder for {self.path.suffix} files; try codec mp4v (.mp4) or MJPG (.avi)")
        self._writer = writer
        self.size = (height, width)

    def _fail(self) -> None:
        self.tmp_path.unlink(missing_ok=True)
        self.closed = True

    def _write(self, image: np.ndarray) -> None:
        if self._writer is None:
            self._open(image.shape[:2])
        if image.shape[:2] != self.size and not self._warned:
            log.warning("%s: frames of %dx%d are resized to the video's %dx%d (an image folder keeps every size)",
                        self.path.name, *image.shape[:2], *self.size)
            self._warned = True
        # VideoWriter silently drops frames of the wrong size; resize instead. Its own warnings (a full disk)
        # are silenced: the file is checked when it is closed, and that failure is reported in one line.
        with quiet_opencv():
            self._writer.write(_resize(image, self.size))

    def _close(self, ok: bool) -> None:
        if self._writer is not None:
            with quiet_opencv():
                self._writer.release()
        if not (ok and self.frames):
            if ok:
                log.warning("%s: no frames were written, so no file was made", self.path)
            self.tmp_path.unlink(missing_ok=True)
            return
        # A video is published only once a reader finds every frame in it: a full disk or a failing
        # encoder leaves a file without its index, which OpenCV's writer does not report.
        count, size = written_frames(self.tmp_path)
        if count != self.frames or size != self.size:
            self.tmp_path.unlink(missing_ok=True)
            free = free_bytes(self.path.parent)
            if free is not None and free < _LOW_SPACE:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self.path))
            found = f"{count} frames of {size[0]}x{size[1]}" if size else "no readable video"
            raise OSError(errno.EIO, f"the encoder wrote {found}, not the {self.frames} frames of "
                                     f"{self.size[0]}x{self.size[1]} given to it", str(self.path))
        publish(self.tmp_path, self.path, overwrite=self.overwrite)


_LOW_SPACE = 1 << 20
"""Bytes free below which a damaged output is put down to a full disk."""


_FRAME_NAME = re.compile(r"frame_\d+\.(png|jpg|jpeg|bmp|tif|tiff|webp)$", re.IGNORECASE)


class FolderSink(Sink):
    """Frames as numbered images (``frame_000000.png``...) in a folder, each at its own size.

    The frames are written into a recognisable temporary folder beside ``path`` and published when closed
    with ``ok=True``: a new folder (or an existing empty one) by a no-replace rename, so a second run to
    the same new folder fails instead of mixing its frames in; with ``overwrite`` a folder that holds only
    a previous run's frames is swapped out as a whole. A folder with other files in it is never replaced.

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
        self.target = temp_dir(self.path)

    @classmethod
    def matches(cls, path: Path | None) -> bool:
        return path is not None

    @classmethod
    def from_spec(cls, path: Path, options: SinkOptions) -> Sink:
        return cls(path, overwrite=options.overwrite)

    def _write(self, image: np.ndarray) -> None:
        ok, data = cv2.imencode(self.suffix, image)
        if not ok:
            raise UserError(f"cannot encode {image.shape[0]}x{image.shape[1]} {self.suffix} images")
        name = f"frame_{self.frames:06d}{self.suffix}"
        try:
            with open(self.target / name, "wb") as f:  # a plain write: a full disk is ENOSPC, with its errno
                f.write(data.tobytes())
        except OSError as exc:  # name the folder the user asked for, not the temporary one
            raise OSError(exc.errno, exc.strerror or str(exc), str(self.path / name)) from None

    def _close(self, ok: bool) -> None:
        if not ok:
            shutil.rmtree(self.target, ignore_errors=True)
            return
        if not self._replace and self.path.is_dir():
            try:
                self.path.rmdir()  # the empty folder the user gave; fails if another run wrote into it since
            except OSError:
                pass
        publish(self.target, self.path, overwrite=self._replace)


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
    from .window import WindowSink

    try:
        window = WindowSink()
    except UserError:
        sink.close(ok=False)
        raise
    # With no output the window alone; a NullSink would add nothing to it.
    return window if isinstance(sink, NullSink) else TeeSink([sink, window])
