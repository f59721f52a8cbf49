"""runtime.video on generated clips: file, folder, live and HTTP sources, damage and stalls, sinks, the kind
registries; runtime.democlip.

One file for the video package, near 480 lines: its sections share the generated clips, the frame-number
stamps and the reader helpers at the top, which splitting would have to copy or move into another module.
"""

from __future__ import annotations

import functools
import socket
import sys
import threading
import time
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import cv2
import numpy as np
import pytest

from runtime.democlip import make_demo_clip
from runtime.core.errors import SourceError, UserError
from runtime.video import (
    SINK_KINDS, SOURCE_KINDS, FolderSink, NullSink, Source, TeeSink, VideoFileSink, open_sink, open_source,
    register_source,
)

FRAMES, HEIGHT, WIDTH, FPS = 48, 96, 128, 25.0
BITS, BLOCK = 8, 16  # each frame carries its number as 8 black/white 16x16 blocks along the top


def _frame(i: int, height: int = HEIGHT, width: int = WIDTH) -> np.ndarray:
    image = np.full((height, width, 3), 100, np.uint8)
    for bit in range(BITS):
        image[:BLOCK, bit * BLOCK:(bit + 1) * BLOCK] = 255 if i >> bit & 1 else 0
    x = (7 * i) % (width - 16)
    image[height // 2:height // 2 + 16, x:x + 16] = 255  # a moving square
    return image


def _number(image: np.ndarray) -> int:
    """The frame number written by ``_frame``; survives lossy codecs."""
    blocks = image[2:BLOCK - 2, : BITS * BLOCK].reshape(BLOCK - 4, BITS, BLOCK, 3)[:, :, 2:-2].mean(axis=(0, 2, 3))
    return int(sum(1 << bit for bit, level in enumerate(blocks) if level > 128))


def _write_clip(path: Path, frames: int = FRAMES, height: int = HEIGHT, width: int = WIDTH, fps: float = FPS) -> Path:
    fourcc = "MJPG" if path.suffix == ".avi" else "mp4v"
    writer = cv2.VideoWriter(str(path), cv2.CAP_FFMPEG, cv2.VideoWriter_fourcc(*fourcc), fps, (width, height))
    assert writer.isOpened()
    for i in range(frames):
        writer.write(_frame(i, height, width))
    writer.release()
    return path


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("clips")
    return {suffix: _write_clip(folder / f"clip{suffix}") for suffix in (".mp4", ".avi")}


def _read_all(source, most: int = 10_000) -> list:
    """Frames until the end; bounded, so a source that never ends fails the test instead of hanging it."""
    frames = []
    for _ in range(most):
        frame = source.read()
        if frame is None:
            return frames
        frames.append(frame)
    raise AssertionError(f"{source.name} gave more than {most} frames")


# ----------------------------------------------------------------------------------------------- sources


@pytest.mark.parametrize("suffix", [".mp4", ".avi"])
@pytest.mark.parametrize("queue_size", [1, 8])
def test_file_source_delivers_every_frame_in_order(clips, suffix, queue_size):
    source = open_source(clips[suffix], queue_size=queue_size)
    assert (source.size, source.fps, source.frame_count, source.live) == ((HEIGHT, WIDTH), FPS, FRAMES, False)
    with source:
        frames = []
        for frame in source:
            frames.append(frame)
            if len(frames) % 8 == 0:
                time.sleep(0.01)  # a consumer slower than the decoder: the decoder must wait, not drop
    assert [f.index for f in frames] == list(range(FRAMES))
    assert all(f.image.shape == (HEIGHT, WIDTH, 3) and f.image.dtype == np.uint8 for f in frames)
    assert [_number(f.image) for f in frames] == list(range(FRAMES))
    assert all(a.timestamp <= b.timestamp for a, b in zip(frames, frames[1:]))
    assert source.dropped == 0 and source.error is None
    assert source.read() is None  # still the end, not a hang
    source.stop()  # idempotent


def test_image_folder_source(tmp_path):
    images = {"img10.png": 3, "img2.jpg": 1, "img1.png": 0, "img3.bmp": 2}  # natural order: 1, 2, 3, 10
    for name, i in images.items():
        cv2.imwrite(str(tmp_path / name), _frame(i))
    (tmp_path / "notes.txt").write_text("not an image")
    with open_source(tmp_path, fps=12) as source:
        assert (source.size, source.fps, source.frame_count, source.live) == ((HEIGHT, WIDTH), 12.0, 4, False)
        frames = _read_all(source)
    assert [f.index for f in frames] == [0, 1, 2, 3]
    assert [_number(f.image) for f in frames] == [0, 1, 2, 3]
    assert source.error is None


def test_live_source_keeps_only_the_newest_frame(tmp_path):
    total = 150
    clip = _write_clip(tmp_path / "long.avi", frames=total, height=240, width=320)
    source = open_source(clip, live=True)
    assert source.live and source.frame_count is None
    with source:
        frames = []
        while (frame := source.read(timeout=5.0)) is not None and len(frames) < total:
            frames.append(frame)
            time.sleep(0.01)  # far slower than decoding at full speed
    indices = [f.index for f in frames]
    assert source.dropped > 0
    assert all(a < b for a, b in zip(indices, indices[1:]))
    assert max(b - a for a, b in zip(indices, indices[1:])) > 1  # gaps: the frames that were replaced
    assert indices[-1] == total - 1  # the newest frame is the one delivered
    assert len(frames) + source.dropped == total
    assert source.error is None


def test_truncated_video_stops_cleanly_at_the_damage(clips, tmp_path):
    data = clips[".avi"].read_bytes()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(data[: len(data) // 2])
    begin = time.monotonic()
    with open_source(cut) as source:
        assert source.frame_count == FRAMES  # the header still says 48
        frames = _read_all(source)
    assert 0 < len(frames) < FRAMES
    assert [f.index for f in frames] == list(range(len(frames)))
    assert [_number(f.image) for f in frames] == list(range(len(frames)))
    assert source.error == f"stopped at frame {len(frames)} of {FRAMES}: the file is truncated or damaged"
    assert time.monotonic() - begin < 5


def test_truncated_mp4_without_index_is_refused(clips, tmp_path, capfd):
    data = clips[".mp4"].read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])  # OpenCV's MP4s keep their index (moov) at the end
    with pytest.raises(SourceError, match="not a video file OpenCV can decode, or it is empty or damaged"):
        open_source(cut)
    assert capfd.readouterr().err == ""


@pytest.mark.parametrize("case", ["missing", "text", "camera", "empty_folder", "scheme"])
def test_open_errors_are_one_line(tmp_path, capfd, case):
    spec, expected = {
        "missing": (str(tmp_path / "nope.mp4"), "no such file or folder"),
        "text": (str(tmp_path / "notes.txt"), "not a video file"),
        "camera": ("97", "cannot open camera 97"),
        "empty_folder": (str(tmp_path / "empty"), "holds no images"),
        "scheme": ("ftp://127.0.0.1/clip.mp4", "cannot open ftp:// sources"),
    }[case]
    (tmp_path / "notes.txt").write_text("hello, not a video\n" * 20)
    (tmp_path / "empty").mkdir()
    with pytest.raises(SourceError) as info:
        open_source(spec, timeout=1.0)
    message = str(info.value)
    assert expected in message and "\n" not in message
    assert capfd.readouterr().err == ""  # OpenCV's and FFmpeg's own warnings are silenced


# ------------------------------------------------------------------------------------------ HTTP sources


class _Handler(SimpleHTTPRequestHandler):
    """Serves the folder; ``/stall`` sends the first half of clip.avi and then stops sending."""

    release: threading.Event

    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:
        if not self.path.startswith("/stall"):
            return super().do_GET()
        data = (Path(self.directory) / "clip.avi").read_bytes()
        self.send_response(200)
        self.send_header("Content-Type", "video/x-msvideo")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data[: len(data) // 2])
        self.wfile.flush()
        self.release.wait(20)  # the stall; released when the test ends


@pytest.fixture
def server(clips):
    release = threading.Event()
    handler = type("Handler", (_Handler,), {"release": release})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(handler, directory=str(clips[".avi"].parent)))
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    release.set()
    httpd.shutdown()
    httpd.server_close()


def test_http_source_on_loopback(server):
    try:
        source = open_source(f"{server}/clip.mp4", timeout=2.0)
    except SourceError as exc:
        pytest.skip(f"this OpenCV's FFmpeg cannot read HTTP: {exc}")
    assert not source.live and source.frame_count == FRAMES and source.size == (HEIGHT, WIDTH)
    with source:
        frames = _read_all(source)
    assert [_number(f.image) for f in frames] == list(range(FRAMES))
    assert source.error is None


def test_stalled_http_stream_ends_with_an_error(server):
    begin = time.monotonic()
    try:
        source = open_source(f"{server}/stall", timeout=0.5, reconnects=2)
    except SourceError as exc:
        pytest.skip(f"this OpenCV's FFmpeg cannot read HTTP: {exc}")
    assert source.live  # an http URL without a video file suffix
    with source:
        frames = _read_all(source)
    elapsed = time.monotonic() - begin
    # Each connection gives the first half of the clip; a read timeout, then two reconnects, then the end.
    assert len(frames) > 0
    assert all(a.index < b.index for a, b in zip(frames, frames[1:]))
    assert source.error.endswith("the source disconnected or stalled, and 2 reconnect attempts failed")
    assert elapsed < 10, f"took {elapsed:.1f} s"


def test_unresponsive_url_fails_within_the_timeout(capfd):
    with socket.socket() as listener:  # accepts connections (the kernel's backlog) and never answers
        listener.bind(("127.0.0.1", 0))
        listener.listen(4)
        port = listener.getsockname()[1]
        begin = time.monotonic()
        with pytest.raises(SourceError, match=r"cannot read http://u:\*\*\*@127\.0\.0\.1:\d+/live within 0\.5 s"):
            open_source(f"http://u:secret@127.0.0.1:{port}/live", timeout=0.5)
        assert time.monotonic() - begin < 3
    assert capfd.readouterr().err == ""


def test_read_timeout_declares_a_stall(server):
    try:
        source = open_source(f"{server}/stall", timeout=1.5, reconnects=0)
    except SourceError as exc:
        pytest.skip(f"this OpenCV's FFmpeg cannot read HTTP: {exc}")
    with source:
        while source.read(timeout=0.3) is not None:
            pass
        assert "no frame for 0.3 s" in source.error
        begin = time.monotonic()
    assert time.monotonic() - begin < 3  # stop() returns once FFmpeg's read timeout ends the blocked read


# ------------------------------------------------------------------------------------------------- sinks


def test_video_file_sink_writes_under_a_temporary_name(tmp_path):
    out = tmp_path / "out.mp4"
    with open_sink(out, fps=12.5) as sink:
        assert isinstance(sink, VideoFileSink)
        for i in range(10):
            sink.write(_frame(i))
        assert not out.exists()
        assert sink.tmp_path.name.startswith(".out.") and sink.tmp_path.name.endswith(".tmp.mp4")
        assert sink.tmp_path.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.mp4"]
    with open_source(out) as source:
        assert (source.size, source.fps, source.frame_count) == ((HEIGHT, WIDTH), 12.5, 10)
        assert [_number(f.image) for f in _read_all(source)] == list(range(10))


def test_video_file_sink_resizes_to_the_given_size(tmp_path):
    out = tmp_path / "small.avi"
    with open_sink(out, fps=10, size=(48, 64)) as sink:
        for i in range(3):
            sink.write(_frame(i))
    with open_source(out) as source:
        assert source.size == (48, 64) and source.frame_count == 3


def test_video_file_sink_leaves_nothing_on_failure(tmp_path):
    with pytest.raises(RuntimeError):
        with open_sink(tmp_path / "a.mp4", fps=10) as sink:
            sink.write(_frame(0))
            raise RuntimeError("the pipeline failed")
    sink = open_sink(tmp_path / "b.avi", fps=10)
    sink.write(_frame(0))
    sink.close(ok=False)
    sink.close()  # idempotent: does not resurrect the file
    assert list(tmp_path.iterdir()) == []


def test_video_file_sink_refuses_to_overwrite(tmp_path):
    out = tmp_path / "out.mp4"
    out.write_bytes(b"an earlier result")
    with pytest.raises(UserError, match="already exists; pass --overwrite") as info:
        open_sink(out, fps=10)
    assert "\n" not in str(info.value)
    assert out.read_bytes() == b"an earlier result"
    with open_sink(out, fps=10, overwrite=True) as sink:
        sink.write(_frame(1))
    with open_source(out) as source:
        assert source.frame_count == 1


def test_folder_sink_round_trip_is_exact(tmp_path):
    out = tmp_path / "frames"
    written = [_frame(i) for i in range(5)]
    with open_sink(out, fps=10) as sink:
        assert isinstance(sink, FolderSink)
        for image in written:
            sink.write(image)
        assert not out.exists()  # written into a temporary folder beside it
    assert sorted(p.name for p in out.iterdir()) == [f"frame_{i:06d}.png" for i in range(5)]
    with open_source(out) as source:
        assert all(np.array_equal(f.image, image) for f, image in zip(_read_all(source), written))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["frames"]


def test_folder_sink_existing_folders(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(RuntimeError):
        with open_sink(empty, fps=10) as sink:
            sink.write(_frame(0))
            assert list(empty.iterdir()) == []  # frames go to a temporary folder until the sink is closed
            raise RuntimeError
    assert list(empty.iterdir()) == [] and sorted(p.name for p in tmp_path.iterdir()) == ["empty"]
    with open_sink(empty, fps=10) as sink:  # an existing empty folder receives the finished frames
        sink.write(_frame(0))
    assert [p.name for p in empty.iterdir()] == ["frame_000000.png"]
    for frame in empty.iterdir():
        frame.unlink()

    previous = tmp_path / "previous"
    with open_sink(previous, fps=10) as sink:
        for i in range(3):
            sink.write(_frame(i))
    with pytest.raises(UserError, match="is not empty; pass --overwrite"):
        open_sink(previous, fps=10)
    with open_sink(previous, fps=10, overwrite=True) as sink:
        sink.write(_frame(9))
    assert sorted(p.name for p in previous.iterdir()) == ["frame_000000.png"]  # replaced as a whole

    (previous / "notes.txt").write_text("mine")
    with pytest.raises(UserError, match="holds files that are not frames"):
        open_sink(previous, fps=10, overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty", "previous"]


def test_null_sink_and_window(monkeypatch):
    sink = open_sink(None, fps=30)
    assert isinstance(sink, NullSink)
    for i in range(4):
        sink.write(_frame(i))
    assert sink.frames == 4
    with pytest.raises(ValueError):
        sink.write(np.zeros((4, 4, 3), np.float32))
    if sys.platform.startswith("linux"):
        monkeypatch.delenv("DISPLAY", raising=False)
        monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
        with pytest.raises(UserError, match="cannot show a window"):
            open_sink(None, fps=30, show=True)


def test_tee_sink_writes_to_all_and_passes_stop_requests(tmp_path):
    a, b = NullSink(), FolderSink(tmp_path / "frames")
    with TeeSink([a, b]) as tee:
        tee.write(_frame(0))
        assert not tee.stop_requested
        a.stop_requested = True
        assert tee.stop_requested
    assert a.frames == b.frames == tee.frames == 1 and a.closed and b.closed


# ------------------------------------------------------------------------------------------ kind registries


class _Counter:
    """A reader of ``n`` numbered frames."""

    def __init__(self, n: int) -> None:
        self.n, self.i = n, 0

    def read(self):
        if self.i >= self.n:
            return None
        self.i += 1
        return _frame(self.i - 1)

    def release(self) -> None:
        self.i = self.n


class _GeneratedSource(Source):
    """``gen://N``: N generated frames; a source kind declared as one class and one registration."""

    @classmethod
    def matches(cls, spec: str) -> bool:
        return spec.startswith("gen://")

    @classmethod
    def from_spec(cls, spec, options):
        reader = _Counter(int(spec[len("gen://"):]))
        return cls(spec, reader, reader.read(), fps=options.default_fps, live=bool(options.live),
                   frame_count=reader.n, queue_size=options.queue_size, timeout=options.timeout)


def test_source_kinds_are_tried_in_order_and_a_new_one_is_one_registration():
    assert SOURCE_KINDS.names() == ("camera", "url", "folder", "image", "file")
    assert SINK_KINDS.names() == ("none", "video", "folder")
    with pytest.raises(SourceError, match="cannot open gen:// sources"):  # the url kind claims every scheme://
        open_source("gen://3")
    with pytest.raises(ValueError, match="no source kind 'nope'"):
        register_source("generated", _GeneratedSource, before="nope")
    with pytest.raises(TypeError, match="needs a matches"):
        register_source("bare", object)
    register_source("generated", _GeneratedSource, before="url")
    try:
        assert SOURCE_KINDS.names() == ("camera", "generated", "url", "folder", "image", "file")
        with pytest.raises(ValueError, match="source kind 'generated' is already registered"):
            register_source("generated", _GeneratedSource)
        with open_source("gen://5", fps=10) as source:
            assert isinstance(source, _GeneratedSource) and (source.fps, source.frame_count) == (10.0, 5)
            assert [_number(f.image) for f in _read_all(source)] == list(range(5))
        assert source.error is None
    finally:
        SOURCE_KINDS.unregister("generated")
    assert SOURCE_KINDS.names() == ("camera", "url", "folder", "image", "file")


def test_sink_kinds_by_suffix(tmp_path):
    with pytest.raises(UserError, match=r"cannot write \.flv files; use one of \.mp4"):
        open_sink(tmp_path / "out.flv", fps=10)
    assert list(tmp_path.iterdir()) == []
    with open_sink(tmp_path / "frames.d", fps=10) as sink:
        assert isinstance(sink, FolderSink)


# --------------------------------------------------------------------------------------------- demo clips


def test_demo_clips(tmp_path):
    size = (72, 128)
    low = make_demo_clip(tmp_path / "low.mp4", frames=30, size=size, fps=15, seed=3)
    with open_source(low) as source:
        assert (source.size, source.fps, source.frame_count) == (size, 15.0, 30)
        frames = [f.image.astype(np.float32) for f in _read_all(source)]
    means = np.array([f.mean() for f in frames])
    assert means.max() < 80  # dark throughout
    assert means.max() / means.min() > 1.3  # and the light changes over time
    assert min(np.abs(a - b).mean() for a, b in zip(frames, frames[1:])) > 0.5  # moving content and noise

    again = make_demo_clip(tmp_path / "again.mp4", frames=30, size=size, fps=15, seed=3)
    other = make_demo_clip(tmp_path / "other.mp4", frames=30, size=size, fps=15, seed=4)
    with open_source(again) as a, open_source(other) as b:
        again_frames, other_frames = _read_all(a), _read_all(b)
    assert all(np.array_equal(x.image, y) for x, y in zip(again_frames, np.uint8(frames)))
    assert not np.array_equal(other_frames[0].image, np.uint8(frames[0]))

    faces = make_demo_clip(tmp_path / "faces.mp4", kind="faces", frames=10, size=size, fps=15)
    with open_source(faces) as source:
        bright = np.mean([f.image.mean() for f in _read_all(source)])
    assert bright > 80  # a normal exposure

    with pytest.raises(UserError, match="already exists"):
        make_demo_clip(faces, kind="faces", frames=2, size=size)
    with pytest.raises(UserError, match="unknown demo clip kind"):
        make_demo_clip(tmp_path / "x.mp4", kind="night")


@pytest.mark.parametrize("kind", ["lowlight", "faces"])
def test_demo_clips_without_scikit_image(tmp_path, monkeypatch, kind):
    monkeypatch.setattr("runtime.democlip._photo", lambda name: None)  # procedural textures and a drawn head
    clip = make_demo_clip(tmp_path / f"{kind}.avi", kind=kind, frames=6, size=(48, 80))
    with open_source(clip) as source:
        frames = _read_all(source)
    assert len(frames) == 6 and frames[0].image.shape == (48, 80, 3)
    assert not np.array_equal(frames[0].image, frames[-1].image)
