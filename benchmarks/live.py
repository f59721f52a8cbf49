"""Live latency: capture to output of a live H.264 stream on loopback, at the stream's real frame rate.

    python -m benchmarks.live --model runs/lowlight/export                       # 10 s at 30 FPS, 360p
    python -m benchmarks.live --model runs/lowlight/export --fps 60 --resolution 720p --seconds 20

A sender thread encodes generated frames (a ``runtime.democlip`` clip of the model's task, looped) with
libx264 (ultrafast, zerolatency: no B-frames, no look-ahead) and sends them as MPEG-TS to
``udp://127.0.0.1:PORT``, paced at ``--fps``. Each frame carries its index as a code of black and white
blocks in its top-left corner (16 bits and their complements, read back from the decoded frame, so a
damaged code is refused rather than misread). The runtime opens the URL as a live source, as
``python -m runtime`` would, and runs the model's task on it; a sink notes when each processed frame is
handed to it. So each frame's latency runs from the moment the sender grabbed it (before encoding) to the
moment its result left the pipeline: encode, network, demux and decode, the wait for the pipeline, fit,
inference and postprocessing. Frames sent but never output are dropped: by the live source (a newer frame
replaced one that waited) or lost on the way (never decoded).

The first frames after the stream opens are not counted: the receiver joins at the next keyframe (one a
second) and FFmpeg delivers the frames it read while probing the stream late, once. Counting starts
``--warmup`` seconds after the first output and lasts ``--seconds``.

The sender writes video PES lengths and ends each frame with an access unit delimiter, so FFmpeg's demuxer
and H.264 parser hand a frame on as soon as it has arrived; a sender that does neither (FFmpeg's defaults)
adds two frame intervals that are the stream's, not the runtime's (see ``runtime.video.ffmpeg``). The
sender shares the CPU (and Python's GIL) with the pipeline, as a camera's encoder would not: on a busy CPU
the figures are an upper bound.
"""

from __future__ import annotations

import socket
import tempfile
import threading
import time
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

import numpy as np

from runtime.core.cli import ArgumentParser, bounded_float, frame_rate, thread_count
from runtime.core.errors import UserError

__all__ = ["live_latency", "stamp_index", "read_index", "main", "build_parser", "CODE_BITS"]

CODE_BITS = 16
"""Bits of the frame index a frame carries (it wraps after 65536 frames, 36 minutes at 30 FPS)."""

_COLUMNS = CODE_BITS // 2
_AUD = b"\x00\x00\x00\x01\x09\xf0"
"""An H.264 access unit delimiter NAL unit (any slice types): ends the frame in front of it for FFmpeg's parser."""


# -- the frame code --------------------------------------------------------------------------------------------


def _block(width: int) -> int:
    return max(4, min(16, width // 16))


def stamp_index(image: np.ndarray, index: int) -> None:
    """Write ``index`` (mod 2**16) into the top-left corner of a uint8 HxWx3 frame, in place.

    Two rows of 8 blocks hold the bits (least significant first), the two rows below hold their complements.
    Blocks are ``width // 16`` pixels (4 to 16), so the code takes half the width of a small frame and
    128x64 pixels of a large one; H.264 at the sender's quality keeps black and white blocks apart.
    """
    block = _block(image.shape[1])
    for bit in range(CODE_BITS):
        row, column = divmod(bit, _COLUMNS)
        value = 255 if (index >> bit) & 1 else 0
        x = slice(column * block, (column + 1) * block)
        image[row * block:(row + 1) * block, x] = value
        image[(row + 2) * block:(row + 3) * block, x] = 255 - value


def read_index(image: np.ndarray) -> int | None:
    """The index :func:`stamp_index` wrote, or None when a block and its complement are not clearly apart."""
    block = _block(image.shape[1])
    inner = block // 4  # the middle of each block: clear of the codec's ringing at its edges
    index = 0
    for bit in range(CODE_BITS):
        row, column = divmod(bit, _COLUMNS)
        x = slice(column * block + inner, (column + 1) * block - inner)
        value = float(image[row * block + inner:(row + 1) * block - inner, x].mean())
        complement = float(image[(row + 2) * block + inner:(row + 3) * block - inner, x].mean())
        if abs(value - complement) < 64:
            return None
        index |= int(value > complement) << bit
    return index


# -- the sender -------------------------------------------------------------------------------------------------


def free_udp_port() -> int:
    """A UDP port on 127.0.0.1 that nothing was bound to a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class _Sender(threading.Thread):
    """Sends ``frames`` in a loop as H.264 in MPEG-TS over UDP at ``fps``, each stamped with its index.

    It sends until :meth:`begin` has set the window of counted frames and the window's last frame is sent
    (or until :meth:`stop`, or ``patience`` seconds without :meth:`begin`), then sends ``tail`` seconds more,
    so the last counted frame is not the last thing on the wire. ``sent_at[k]`` is when frame k was grabbed
    (``time.monotonic()`` just before it was encoded).
    """

    def __init__(self, url: str, frames: list[np.ndarray], fps: float, *, patience: float,
                 tail: float = 0.5) -> None:
        super().__init__(name="edgelight-live-sender", daemon=True)
        self.url, self.frames, self.fps, self.patience, self.tail = url, frames, fps, patience, tail
        self.sent_at: list[float] = []
        self.first = self.end = None  # the counted window: frames first .. end - 1
        self.error: str | None = None
        self.done = threading.Event()
        self._halt = threading.Event()
        self._lock = threading.Lock()

    def begin(self, warmup: float, seconds: float) -> None:
        """Count the frames grabbed from ``warmup`` seconds from now, for ``seconds`` (called once; later calls
        do nothing)."""
        with self._lock:
            if self.first is None:
                self.first = len(self.sent_at) + max(0, round(warmup * self.fps))
                self.end = self.first + max(1, round(seconds * self.fps))

    def stop(self) -> None:
        self._halt.set()

    def _open(self):
        import av

        height, width = self.frames[0].shape[:2]
        # PES lengths let the demuxer hand a frame on when its last packet arrives, not the next frame's first.
        container = av.open(self.url, "w", format="mpegts", options={"omit_video_pes_length": "0"})
        try:
            stream = container.add_stream("libx264", rate=Fraction(self.fps).limit_denominator(1001))
        except Exception as exc:  # noqa: BLE001 - PyAV raises several kinds for a missing encoder
            container.close()
            raise UserError(f"PyAV cannot encode H.264 here ({exc}); install a PyAV build with libx264") from None
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.gop_size = max(1, round(self.fps))  # a receiver joins within a second
        stream.options = {"preset": "ultrafast", "tune": "zerolatency", "crf": "20"}
        return av, container, stream

    def run(self) -> None:
        try:
            av, container, stream = self._open()
        except Exception as exc:  # noqa: BLE001 - reported by live_latency
            self.error = f"the sender could not start: {exc}"
            self.done.set()
            return
        try:
            self._send(av, container, stream)
        except Exception as exc:  # noqa: BLE001 - reported by live_latency
            self.error = f"the sender failed at frame {len(self.sent_at)}: {exc}"
        finally:
            try:
                container.close()
            except Exception:  # noqa: BLE001 - the receiver may be gone; nothing to report
                pass
            self.done.set()

    def _send(self, av, container, stream) -> None:
        started = time.monotonic()
        clock = started  # when frame k is due: clock + k / fps
        while not self._halt.is_set():
            k = len(self.sent_at)
            with self._lock:
                end = self.end
            if end is None and time.monotonic() - started > self.patience:
                raise RuntimeError(f"no output from the pipeline within {self.patience:.0f} s")
            if end is not None and k >= end + round(self.tail * self.fps):
                break
            due = clock + k / self.fps
            wait = due - time.monotonic()
            if wait > 0:
                if self._halt.wait(wait):
                    break
            elif wait < -1.0 / self.fps:  # late by more than a frame (a busy CPU): keep the cadence from now
                clock -= wait
            image = self.frames[k % len(self.frames)].copy()
            stamp_index(image, k)
            self.sent_at.append(time.monotonic())
            frame = av.VideoFrame.from_ndarray(image, format="bgr24")
            frame.pts = k
            for packet in stream.encode(frame):
                container.mux(_with_delimiter(av, packet))
        for packet in stream.encode():
            container.mux(_with_delimiter(av, packet))


def _with_delimiter(av, packet):
    """The packet with an access unit delimiter after its frame, so FFmpeg's H.264 parser ends the frame at once
    instead of waiting for the start of the next one."""
    out = av.Packet(bytes(packet) + _AUD)
    out.pts, out.dts, out.time_base, out.stream = packet.pts, packet.dts, packet.time_base, packet.stream
    out.is_keyframe = packet.is_keyframe
    return out


# -- the receiver side ------------------------------------------------------------------------------------------


class _Tagged:
    """A live ``Source`` that reads each frame's code as the pipeline takes it, and ends after the last counted
    frame. Everything else is the source's."""

    def __init__(self, source, sender: _Sender) -> None:
        self._source, self._sender = source, sender
        self.reads: list[tuple[int | None, int, float]] = []  # (frame number, decoder index, capture time)
        self.ended = threading.Event()
        self._last = 0  # the last frame number read (codes wrap at 2**16; numbers do not)
        self.complete = False
        """The run ended as planned: after the last counted frame, or cut short when that frame never came."""

    def __getattr__(self, name: str):
        return getattr(self._source, name)

    def read(self, timeout: float | None = None):
        end = self._sender.end
        if end is not None and self.reads and self._last >= end - 1:
            self.complete = True
        if self.complete:
            self.ended.set()
            return None
        frame = self._source.read(timeout)
        if frame is None:
            self.ended.set()
            return None
        code = read_index(frame.image)
        number = None
        if code is not None:  # the frame number nearest to the last one read with this code
            wrap = 1 << CODE_BITS
            number = self._last + (code - self._last + wrap // 2) % wrap - wrap // 2
            self._last = max(self._last, number)
        self.reads.append((number, frame.index, frame.timestamp))
        return frame

    def finish(self) -> None:
        """End the run now: the last counted frame never came (lost on the way), so do not wait for a stall."""
        self.complete = True
        self._source.stop()


def _arrival_sink(on_first):
    """A sink that writes nothing and notes when each frame was handed to it (``arrivals``, monotonic seconds)."""
    from runtime.video import NullSink

    class ArrivalSink(NullSink):
        def __init__(self) -> None:
            super().__init__()
            self.arrivals: list[float] = []

        def _write(self, image: np.ndarray) -> None:
            self.arrivals.append(time.monotonic())
            if len(self.arrivals) == 1:
                on_first()

    return ArrivalSink()


def _content(kind: str | None, size: tuple[int, int], fps: float, count: int) -> list[np.ndarray]:
    """``count`` frames of a generated demo clip of ``kind`` (lowlight when None) at (height, width) ``size``."""
    from runtime.democlip import make_demo_clip
    from runtime.video import open_source

    with tempfile.TemporaryDirectory() as tmp:
        clip = make_demo_clip(Path(tmp) / "content.mp4", kind=kind or "lowlight", frames=count, size=size, fps=fps)
        with open_source(clip) as source:
            return [frame.image for frame in source]


def _percentiles(values: Sequence[float]) -> dict:
    if not len(values):
        return {"p50_ms": None, "p95_ms": None, "p99_ms": None, "max_ms": None}
    ms = np.asarray(values) * 1e3
    p50, p95, p99 = (float(v) for v in np.percentile(ms, (50, 95, 99)))
    return {"p50_ms": p50, "p95_ms": p95, "p99_ms": p99, "max_ms": float(ms.max())}


def live_latency(runner, task, size: tuple[int, int], seconds: float = 10.0, fps: float = 30.0, *,
                 warmup: float = 1.0, frames: list[np.ndarray] | None = None, timeout: float = 5.0) -> dict:
    """Run ``task`` with ``runner`` on a live loopback stream at ``fps`` and measure capture-to-output latency.

    Args:
        runner: any runner (activated if it is not); the pipeline drives it as ``python -m runtime`` does.
        task: the runtime task (``runtime.tasks.task_for(runner).for_benchmark(runner, frames)``).
        size: (height, width) of the stream.
        seconds: how long the counted part of the stream lasts.
        fps: the stream's frame rate, kept by the sender in real time.
        warmup: seconds after the first output before counting starts.
        frames: the content, looped (uint8 HxWx3 BGR of ``size``); default: a generated demo clip of the
            task's kind, one second long.
        timeout: the source's open and read timeout (seconds).

    Returns:
        ``p50_ms``, ``p95_ms``, ``p99_ms``, ``max_ms``: grab (before encoding) to output, over the counted frames
        that came out; ``pipeline_p50_ms`` .. ``pipeline_p99_ms``: the pipeline's own part, from the decoder
        handing a frame over (``Frame.timestamp``) to output; ``sent``, ``output``, ``dropped`` (sent and never
        output), ``source_dropped`` (of those, replaced while waiting by a newer frame), ``lost`` (never decoded),
        ``unreadable`` (outputs whose code could not be read); ``sent_fps`` and ``output_fps`` over the counted
        window; ``infer_p50_ms`` and ``infer_p95_ms`` (the pipeline's inference stage); ``waiting_max`` (most
        frames ever waiting in front of inference); ``latency_drift_ms`` (median latency of the last quarter minus
        the first: a growing queue shows here); ``queue_grew`` (``waiting_max`` above 1 or a drift above two frame
        intervals); ``error`` (why the run stopped early, or None); and the settings.

    Raises:
        UserError: PyAV is missing or cannot encode H.264, the task takes no video, or the stream cannot be read.
    """
    try:
        import av  # noqa: F401 - the sender's encoder and muxer
    except ImportError:
        raise UserError("the live benchmark sends its stream with PyAV: pip install av") from None
    from runtime import Pipeline
    from runtime.video import open_source

    if not task.video_input:
        raise UserError(f"the {task.name} task makes its own frames; live latency needs a task that takes video")
    height, width = int(size[0]), int(size[1])
    if width < 64 or height < 4 * _block(width):
        raise UserError(f"a {height}x{width} stream is too small for the frame code; use at least 64 wide and "
                        f"{4 * _block(max(width, 64))} high")
    if frames is None:
        frames = _content(getattr(task, "demo_clip", None), (height, width), fps, max(2, round(fps)))
    url = f"udp://127.0.0.1:{free_udp_port()}"
    sender = _Sender(f"{url}?pkt_size=1316", frames, fps, patience=2 * timeout + warmup + 10.0)
    sender.start()
    try:
        source = open_source(url, live=True, reconnects=0, timeout=timeout)
    except Exception:
        sender.stop()
        sender.join()
        if sender.error:
            raise UserError(sender.error) from None
        raise
    tagged = _Tagged(source, sender)
    sink = _arrival_sink(lambda: sender.begin(warmup, seconds))

    def watchdog() -> None:
        sender.done.wait()
        if not tagged.ended.wait(1.0 + 2.0 / fps):
            tagged.finish()

    guard = threading.Thread(target=watchdog, name="edgelight-live-watchdog", daemon=True)
    guard.start()
    try:
        pipeline = Pipeline(runner, task, tagged, sink)
        summary = pipeline.run()
    finally:
        sender.stop()
        sender.join()
        source.stop()
        guard.join()
        sink.close()
    return _figures(sender, tagged, sink.arrivals, summary, pipeline.error, size=(height, width), fps=fps,
                    seconds=seconds, warmup=warmup)


def _figures(sender: _Sender, tagged: _Tagged, arrivals: list[float], summary: dict, error: str | None, *,
             size: tuple[int, int], fps: float, seconds: float, warmup: float) -> dict:
    """The returned figures of :func:`live_latency` from what the sender, the source and the sink noted."""
    first, end = sender.first, sender.end
    if first is None or end is None or end > len(sender.sent_at):
        end = len(sender.sent_at) if first is not None else 0
    first = first or 0
    sent = max(0, end - first)
    latencies, pipeline_latencies = [], []
    output = unreadable = source_dropped = 0
    previous = None  # (frame number, decoder index) of the last frame read with a readable code
    for (number, decoded, captured), arrived in zip(tagged.reads, arrivals):
        if number is None:
            unreadable += 1
            continue
        if first <= number < end:
            latencies.append(arrived - sender.sent_at[number])
            pipeline_latencies.append(arrived - captured)
            output += 1
            if previous is not None:
                # The decoder's index skips the frames the live source replaced while they waited; the frame
                # numbers skip those and the ones never decoded. Count the replaced ones inside the window.
                replaced = decoded - previous[1] - 1
                source_dropped += max(0, min(replaced, number - max(previous[0] + 1, first)))
        previous = (number, decoded)
    dropped = sent - output
    window = (sender.sent_at[end - 1] - sender.sent_at[first] + 1.0 / fps) if sent else 0.0
    quarter = max(1, len(latencies) // 4)
    drift = (float(np.median(latencies[-quarter:]) - np.median(latencies[:quarter])) * 1e3
             if len(latencies) >= 8 else 0.0)
    stages = summary["stages"]
    infer = stages.get("infer") or stages.get("gpu_infer")
    waiting_max = int(summary.get("waiting_max", 0))
    pipeline_figures = _percentiles(pipeline_latencies)
    return {
        "resolution": [int(size[0]), int(size[1])], "fps_target": fps, "seconds": seconds, "warmup_s": warmup,
        **_percentiles(latencies),
        **{f"pipeline_{key}": value for key, value in pipeline_figures.items() if key != "max_ms"},
        "sent": sent, "output": output, "dropped": dropped, "source_dropped": min(source_dropped, dropped),
        "lost": max(0, dropped - min(source_dropped, dropped)), "unreadable": unreadable,
        "sent_fps": sent / window if window > 0 else 0.0, "output_fps": output / window if window > 0 else 0.0,
        "infer_p50_ms": infer["p50_ms"] if infer else None, "infer_p95_ms": infer["p95_ms"] if infer else None,
        "waiting_max": waiting_max, "latency_drift_ms": drift,
        # A queue that grows adds a frame interval per frame the pipeline falls behind; a busy CPU moves the
        # median by less than two intervals over a run.
        "queue_grew": waiting_max > 1 or drift > 2e3 / fps,
        "error": sender.error or (None if tagged.complete else error),
    }


# -- command line -----------------------------------------------------------------------------------------------


def build_parser() -> ArgumentParser:
    from .models import parse_resolution

    def resolution(text: str) -> tuple[int, int]:
        try:
            return parse_resolution(text)
        except ValueError as exc:
            import argparse

            raise argparse.ArgumentTypeError(str(exc)) from None

    p = ArgumentParser(prog="python -m benchmarks.live",
                       description="Capture-to-output latency of a live stream" + __doc__.split(
                           "Live latency: capture to output of a live H.264 stream", 1)[1])
    p.add_argument("--model", required=True, metavar="PATH",
                   help="a model file or folder as python -m runtime takes it (export folder, .onnx, .engine, "
                        ".ckpt or a training run)")
    p.add_argument("--backend", default="auto", help="the runtime backend (auto: by the model file)")
    p.add_argument("--seconds", type=bounded_float(0.5, 3600.0), default=10.0,
                   help="length of the counted part of the stream")
    p.add_argument("--fps", type=frame_rate, default=30.0, help="the stream's frame rate, kept in real time")
    p.add_argument("--resolution", type=resolution, default="360p", metavar="SIZE",
                   help="360p, 720p, 1080p or HxW")
    p.add_argument("--warmup", type=bounded_float(0.0, 60.0), default=1.0,
                   help="seconds after the first output before counting starts")
    p.add_argument("--threads", type=thread_count, help="CPU threads for ONNX Runtime / PyTorch (default: all)")
    p.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from runtime import load
    from runtime.tasks import task_for

    size = args.resolution
    runner = load(args.model, backend=args.backend, threads=args.threads)
    kind = task_for(runner)
    if kind is None or not kind.video_input:
        raise UserError(f"{args.model}: no runtime task drives this model from video; live latency needs an "
                        "enhance or relight model")
    kind.check_model(runner)
    with runner:
        task = kind.for_benchmark(runner, max(1, round(args.seconds * args.fps)))
        result = live_latency(runner, task, size, args.seconds, args.fps, warmup=args.warmup)
    print(report(result, f"{runner.name} on {runner.backend} ({runner.device})"))
    if args.json:
        from runtime.core.io import write_json

        write_json(args.json, result)
    return 1 if result["error"] else 0


main.prog = "python -m benchmarks.live"  # type: ignore[attr-defined]


def report(result: dict, what: str = "") -> str:
    """The figures of :func:`live_latency` as a few lines of text."""
    def ms(value) -> str:
        return "-" if value is None else f"{value:.1f}"

    h, w = result["resolution"]
    head = f"live {w}x{h} at {result['fps_target']:g} FPS for {result['seconds']:g} s"
    lines = [head + (f": {what}" if what else ""),
             f"capture to output: p50 {ms(result['p50_ms'])} ms, p95 {ms(result['p95_ms'])} ms, "
             f"p99 {ms(result['p99_ms'])} ms, max {ms(result['max_ms'])} ms (grabbed by the sender -> handed to the "
             "sink)",
             f"decoder to output: p50 {ms(result['pipeline_p50_ms'])} ms, p95 {ms(result['pipeline_p95_ms'])} ms, "
             f"p99 {ms(result['pipeline_p99_ms'])} ms (the pipeline's part); inference p50 "
             f"{ms(result['infer_p50_ms'])} ms, p95 {ms(result['infer_p95_ms'])} ms",
             f"frames: {result['sent']} sent ({result['sent_fps']:.1f} FPS), {result['output']} output "
             f"({result['output_fps']:.1f} FPS), {result['dropped']} dropped ({result['source_dropped']} replaced by "
             f"a newer frame, {result['lost']} never decoded)",
             f"queue: at most {result['waiting_max']} frame waiting in front of inference; latency drift "
             f"{result['latency_drift_ms']:+.1f} ms from the first quarter to the last"
             + (" (the queue grew)" if result["queue_grew"] else " (no growing queue)")]
    if result["error"]:
        lines.append(f"stopped early: {result['error']}")
    return "\n".join(lines)


if __name__ == "__main__":
    from runtime.core.cli import run

    raise SystemExit(run(main))
