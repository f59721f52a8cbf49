"""Live sources run for latency: at most one frame waits (the newest), frames carry their capture time, and the
pipeline reports capture-to-output latency without letting a queue build up, on the CPU and on the GPU executor."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from runtime import Pipeline
from runtime.tasks import EnhanceTask
from runtime.video import NullSink, Source

from .fakes import IdentityRunner

SIZE = (32, 48)


class _Reader:
    """A decoder giving frames 0..count-1 (each pixel holds the index), one every ``interval`` seconds, then None."""

    def __init__(self, count: int, interval: float = 0.0) -> None:
        self.count, self.interval, self.next = count, interval, 0
        self.returned_at: list[float] = []
        self.finished = threading.Event()

    def read(self) -> np.ndarray | None:
        if self.next >= self.count:
            self.finished.set()
            return None
        if self.interval:
            time.sleep(self.interval)
        image = np.full((*SIZE, 3), self.next % 256, np.uint8)
        self.next += 1
        self.returned_at.append(time.monotonic())
        return image

    def release(self) -> None:
        pass


def _source(count: int, *, live: bool, interval: float = 0.0, queue_size: int = 8) -> tuple[Source, _Reader]:
    reader = _Reader(count, interval)
    first = reader.read()  # a source kind reads the first frame while it opens
    source = Source("fake", reader, first, fps=30.0, live=live, frame_count=None if live else count,
                    queue_size=queue_size)
    return source, reader


def test_a_live_source_keeps_one_waiting_frame_the_newest_and_counts_the_rest_as_dropped():
    source, reader = _source(50, live=True)
    with source:
        assert reader.finished.wait(10)  # the decoder ran through the stream while nobody read
        frame = source.read(timeout=5)
        assert (frame.index, int(frame.image[0, 0, 0])) == (49, 49)  # the newest frame won
        assert source.read(timeout=5) is None
    assert source.dropped == 49 and source.waiting_max == 1 and source.error is None


def test_a_file_source_fed_by_the_same_decoder_loses_nothing():
    source, _ = _source(50, live=False, queue_size=3)
    with source:
        frames = list(source)
    assert [f.index for f in frames] == list(range(50))
    assert [int(f.image[0, 0, 0]) for f in frames] == list(range(50))
    assert source.dropped == 0 and 1 <= source.waiting_max <= 3


def test_frames_carry_the_time_the_decoder_handed_them_over():
    source, reader = _source(4, live=True, interval=0.02)
    time.sleep(0.1)  # the application loads its model between opening the source and starting it
    started = time.monotonic()
    frames, read_at = [], []
    with source:
        while (frame := source.read(timeout=5)) is not None:
            frames.append(frame)
            read_at.append(time.monotonic())
    assert [f.index for f in frames] == [0, 1, 2, 3]
    # The first frame was decoded while the source opened: its age includes the wait before start().
    assert frames[0].timestamp == pytest.approx(reader.returned_at[0], abs=0.05) and frames[0].timestamp < started
    for frame, decoded, taken in zip(frames[1:], reader.returned_at[1:], read_at[1:]):
        assert decoded <= frame.timestamp <= taken


def test_the_pipeline_reports_capture_to_output_latency_and_a_live_source_builds_no_queue():
    """A 200 FPS source in front of a 50 FPS model: live, frames are dropped and latency stays near one
    inference; the same frames as a file are all processed and wait longer and longer."""
    runs = {}
    for live in (True, False):
        source, _ = _source(30, live=live, interval=0.005)
        runs[live] = Pipeline(IdentityRunner(high=SIZE, seconds=0.02), EnhanceTask(), source, NullSink()).run()
    live, file = runs[True], runs[False]
    for summary in (live, file):
        latency = summary["latency_ms"]
        assert latency["count"] == summary["frames"] > 0
        assert 0 < latency["p50"] <= latency["p95"] <= latency["p99"] <= latency["max"]
        assert latency["p50"] >= summary["stages"]["infer"]["min_ms"]  # output comes after inference
    assert live["dropped"] > 0 and live["frames"] + live["dropped"] == 30 and live["waiting_max"] == 1
    assert file["dropped"] == 0 and file["frames"] == 30 and file["waiting_max"] > 1
    assert live["latency_ms"]["max"] < 0.5 * file["latency_ms"]["max"]


# --- the GPU executor on a fake TensorRT ------------------------------------------------------------------------


def test_the_gpu_executor_hands_a_live_frame_on_before_the_next_one_arrives(fake_gpu, tmp_path):
    """With frames in flight the executor would hold each one until two more were submitted; a live source
    with no newer frame waiting gets it back at once."""
    from runtime.runners.tensorrt import TensorRTRunner

    from .fakes import PROFILE, make_sidecar, write_plan

    runner = TensorRTRunner(write_plan(tmp_path / "m.engine", light=False),
                            make_sidecar(profile={"image": PROFILE["image"]}))
    source, reader = _source(8, live=True, interval=0.05)
    decoded_when_written = []

    class Sink(NullSink):
        def _write(self, image):
            decoded_when_written.append(len(reader.returned_at))

    with runner:
        pipeline = Pipeline(runner, EnhanceTask(), source, Sink())
        summary = pipeline.run()
    assert "gpu_infer" in summary["stages"]  # the GPU executor ran it
    assert summary["frames"] == 8 and summary["waiting_max"] == 1
    # Frame k was written before frame k + 2 had been decoded (the next one may have arrived meanwhile).
    assert all(count <= k + 2 for k, count in enumerate(decoded_when_written)), decoded_when_written


@pytest.mark.parametrize("live, threads, expected", [(True, None, 1), (False, None, None), (True, "4", None)])
def test_a_live_url_is_decoded_on_one_thread_unless_the_user_asks_for_more(monkeypatch, live, threads, expected):
    """FFmpeg's frame threads hold each frame back by (threads - 1) frames: half a second on a 16-core machine."""
    import cv2

    from runtime.video import ffmpeg

    asked = {}

    class Capture:
        def __init__(self, url, backend, params):
            asked.update(zip(params[::2], params[1::2]))

        def isOpened(self):
            return True

        def read(self):
            return True, np.zeros((*SIZE, 3), np.uint8)

    monkeypatch.setattr(cv2, "VideoCapture", Capture)
    if threads is None:
        monkeypatch.delenv("OPENCV_FFMPEG_THREADS", raising=False)
    else:
        monkeypatch.setenv("OPENCV_FFMPEG_THREADS", threads)
    ffmpeg.open_url("udp://127.0.0.1:5000", "udp://127.0.0.1:5000", 1.0, live=live)
    assert asked.get(cv2.CAP_PROP_N_THREADS) == expected
