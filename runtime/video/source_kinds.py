"""The source kinds, one class each, and their registration (the order :func:`~runtime.video.open_source` tries).

``camera`` (:class:`CameraSource`): ``"0"``, ``/dev/video0``; live, reconnects.
``url`` (:class:`UrlSource`): ``rtsp://``, ``http://``... through FFmpeg with timeouts; refuses other schemes.
``folder`` (:class:`ImageFolderSource`): the images in a folder, in natural name order.
``image`` (:class:`ImageSource`): one image file, one frame.
``file`` (:class:`VideoFileSource`): any other existing file, decoded as a video.

Each kind is a :class:`~runtime.video.sources.Source` with the class methods ``matches(spec)`` and
``from_spec(spec, options)``; the capture-based ones share :class:`CaptureSource` and leave the OpenCV
and FFmpeg calls to :mod:`.ffmpeg`.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import cv2
import numpy as np

from ..core.errors import SourceError
from . import ffmpeg
from .ffmpeg import URL_SCHEMES, quiet_opencv
from .registry import register_source
from .sources import IMAGE_SUFFIXES, Source, SourceOptions

__all__ = ["CaptureSource", "CameraSource", "UrlSource", "ImageFolderSource", "ImageSource", "VideoFileSource"]


class CaptureSource(Source):
    """A kind read through a ``cv2.VideoCapture``: a subclass gives ``matches`` and ``locate``, ``open_capture``
    (a call into :mod:`.ffmpeg`; ``live`` says whether the source will be read live, which may change how it
    is opened) and, when not False, ``default_live``."""

    reconnectable = False
    """Reopen it when a live source stops giving frames."""

    @classmethod
    def locate(cls, spec: str) -> tuple[str, str]:
        """(target to open, name to show)."""
        raise NotImplementedError

    @classmethod
    def open_capture(cls, target: str, name: str, timeout: float, *,
                     live: bool = False) -> tuple[ffmpeg.CaptureReader, np.ndarray]:
        """The reader and its first frame, or SourceError; called again for each reconnect."""
        raise NotImplementedError

    @classmethod
    def default_live(cls, target: str) -> bool:
        """Whether it is live when ``open_source`` is not told."""
        return False

    @classmethod
    def from_spec(cls, spec: str, options: SourceOptions) -> Source:
        target, name = cls.locate(spec)
        live = cls.default_live(target) if options.live is None else options.live

        def reopen() -> tuple[ffmpeg.CaptureReader, np.ndarray]:
            with quiet_opencv():
                return cls.open_capture(target, name, options.timeout, live=live)

        reader, first = reopen()
        fps, count = ffmpeg.capture_info(reader.capture, options.default_fps)
        return cls(name, reader, first, fps=fps, live=live, frame_count=None if live else count,
                   queue_size=options.queue_size, reopen=reopen if cls.reconnectable else None,
                   reconnects=options.reconnects, timeout=options.timeout)


class CameraSource(CaptureSource):
    """A camera by index (``"0"``), or ``/dev/videoN`` on POSIX systems; live, reconnects."""

    reconnectable = True

    @classmethod
    def matches(cls, spec: str) -> bool:
        return spec.isdigit() or (os.name == "posix" and re.fullmatch(r"/dev/video\d+", spec) is not None)

    @classmethod
    def locate(cls, spec: str) -> tuple[str, str]:
        index = spec if spec.isdigit() else spec[len("/dev/video"):]
        return index, f"camera {index}"

    @classmethod
    def open_capture(cls, target: str, name: str, timeout: float, *,
                     live: bool = False) -> tuple[ffmpeg.CaptureReader, np.ndarray]:
        return ffmpeg.open_camera(target)

    @classmethod
    def default_live(cls, target: str) -> bool:
        return True


_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")


class UrlSource(CaptureSource):
    """A network stream or file (:data:`URL_SCHEMES`) read by FFmpeg with timeouts; live ones reconnect.

    It claims every ``scheme://`` spec and refuses the schemes it cannot read, so register a kind for
    another scheme before it (``register_source(name, cls, before="url")``).
    """

    reconnectable = True
    cut_reason = "the stream was cut or stalled"

    @classmethod
    def matches(cls, spec: str) -> bool:
        return _SCHEME.match(spec) is not None

    @classmethod
    def locate(cls, spec: str) -> tuple[str, str]:
        scheme = _SCHEME.match(spec).group(1).lower()
        if scheme not in URL_SCHEMES:
            raise SourceError(f"cannot open {scheme}:// sources; use a file, a folder of images, a camera index "
                              f"or a {', '.join(s + '://' for s in URL_SCHEMES)} URL")
        return spec, ffmpeg.redact(spec)

    @classmethod
    def open_capture(cls, target: str, name: str, timeout: float, *,
                     live: bool = False) -> tuple[ffmpeg.CaptureReader, np.ndarray]:
        return ffmpeg.open_url(target, name, timeout, live=live)

    @classmethod
    def default_live(cls, target: str) -> bool:
        return ffmpeg.url_is_live(target)


class VideoFileSource(CaptureSource):
    """A video file (anything that exists and is not a folder or an image); every frame, in order."""

    @classmethod
    def matches(cls, spec: str) -> bool:
        path = Path(spec).expanduser()
        return path.exists() and not path.is_dir()

    @classmethod
    def locate(cls, spec: str) -> tuple[str, str]:
        path = str(Path(spec).expanduser())
        return path, path

    @classmethod
    def open_capture(cls, target: str, name: str, timeout: float, *,
                     live: bool = False) -> tuple[ffmpeg.CaptureReader, np.ndarray]:
        return ffmpeg.open_file(target, name)


class _FolderReader:
    """Frames from a sorted list of image files, each at its own size (a video sink resizes, an image folder
    sink keeps every size)."""

    def __init__(self, files: list[Path]) -> None:
        self.files = files
        self.position = 0

    def read(self) -> np.ndarray | None:
        if self.position >= len(self.files):
            return None
        path = self.files[self.position]
        self.position += 1
        image = _read_image(path)
        if image is None:
            raise SourceError(f"cannot read image {path.name}")
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


def _natural_key(path: Path) -> list:
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", path.name)]


class ImageFolderSource(Source):
    """The images in a folder (:data:`IMAGE_SUFFIXES`) in natural name order, at ``fps``, each at its own size."""

    @classmethod
    def matches(cls, spec: str) -> bool:
        return Path(spec).expanduser().is_dir()

    @classmethod
    def _files(cls, path: Path) -> list[Path]:
        files = sorted((p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES),
                       key=_natural_key)
        if not files:
            raise SourceError(f"{path} holds no images ({' '.join(IMAGE_SUFFIXES)}); "
                              f"give a folder of frames or a video file")
        return files

    @classmethod
    def from_spec(cls, spec: str, options: SourceOptions) -> Source:
        path = Path(spec).expanduser()
        live = False if options.live is None else options.live
        files = cls._files(path)
        reader = _FolderReader(files)
        first = reader.read()  # raises SourceError naming an unreadable first image
        return cls(str(path), reader, first, fps=options.default_fps, live=live,
                   frame_count=None if live else len(files), queue_size=options.queue_size, timeout=options.timeout)


class ImageSource(ImageFolderSource):
    """A single image file: one frame."""

    @classmethod
    def matches(cls, spec: str) -> bool:
        path = Path(spec).expanduser()
        return path.suffix.lower() in IMAGE_SUFFIXES and path.exists() and not path.is_dir()

    @classmethod
    def _files(cls, path: Path) -> list[Path]:
        return [path]


# Tried in this order: the first kind whose matches(spec) is true opens it.
register_source("camera", CameraSource)
register_source("url", UrlSource)
register_source("folder", ImageFolderSource)
register_source("image", ImageSource)
register_source("file", VideoFileSource)
