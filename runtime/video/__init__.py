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
leaves half a file. Importing this package sets ``OPENCV_FFMPEG_LOGLEVEL`` to quiet unless it is set
(see :mod:`.ffmpeg`): FFmpeg's errors reach the user as one line through ``error`` or
:class:`~runtime.core.errors.SourceError` instead.

What is where:

* :mod:`.sources`: :class:`Source` (decode thread, buffer, live mode, reconnects, stalls), :class:`Frame`,
  :func:`open_source`.
* :mod:`.source_kinds`: one class per source kind (camera, url, folder, image, file) and their registration.
* :mod:`.sinks`: :class:`Sink` and the sinks (video file, image folder, window, none, tee), :func:`open_sink`.
* :mod:`.ffmpeg`: OpenCV/FFmpeg details: the quiet-log guard, opening captures with timeouts, backend
  choice, the FourCC per suffix, URL schemes and password redaction, frame rate and count.
* :mod:`.registry`: the ordered kind registries behind ``open_source`` and ``open_sink``.

Adding a source kind: subclass :class:`Source` (or :class:`CaptureSource` for something
``cv2.VideoCapture`` opens) with two class methods, ``matches(spec: str) -> bool`` (cheap: the spec's
form, whether a path exists) and ``from_spec(spec, options: SourceOptions) -> Source`` (open it, read the
first frame, raise a one-line :class:`~runtime.core.errors.SourceError` when it cannot), then register it
once: ``register_source("name", MySource, before="folder")``. Kinds are tried in order
(``SOURCE_KINDS.names()``); give ``before`` when yours must win over a more general one (``url`` claims every
``scheme://``, ``file`` every existing file). Sink kinds work the same way (``register_sink``; ``matches``
gets a ``Path`` or None).
"""

from .ffmpeg import URL_SCHEMES, VIDEO_SUFFIXES
from .registry import SINK_KINDS, SOURCE_KINDS, register_sink, register_source
from .sinks import FolderSink, NullSink, Sink, SinkOptions, TeeSink, VideoFileSink, open_sink
from .source_kinds import CameraSource, CaptureSource, ImageFolderSource, ImageSource, UrlSource, VideoFileSource
from .sources import IMAGE_SUFFIXES, Frame, Source, SourceOptions, open_source
from .window import WindowSink

__all__ = [
    "Frame", "Source", "open_source", "Sink", "NullSink", "VideoFileSink", "FolderSink", "WindowSink", "TeeSink",
    "open_sink", "IMAGE_SUFFIXES", "VIDEO_SUFFIXES", "URL_SCHEMES",
    "SourceOptions", "SinkOptions", "register_source", "register_sink", "SOURCE_KINDS", "SINK_KINDS",
    "CaptureSource", "CameraSource", "UrlSource", "ImageFolderSource", "ImageSource", "VideoFileSource",
]
