"""runtime.stats: latency percentiles against NumPy, constant memory, FPS and drops, the table, atomic JSON, the
progress line."""

from __future__ import annotations

import io
import json
import math
import threading
import time
import tracemalloc

import numpy as np
import pytest

from runtime.stats import LatencyHistogram, Progress, Stats


def test_summary_matches_numpy():
    rng = np.random.default_rng(0)
    decode = rng.exponential(0.004, 500)
    infer = rng.normal(0.010, 0.001, 300)
    stats = Stats().start()
    for seconds in decode:
        stats.add("decode", seconds)
    for seconds in infer:
        stats.add("infer", seconds)
    stats.frame_done(300)
    stats.dropped = 7
    time.sleep(0.02)
    stats.stop()
    summary = stats.summary()
    assert list(summary["stages"]) == ["decode", "infer"]  # in the order first seen
    for name, samples in (("decode", decode), ("infer", infer)):
        stage = summary["stages"][name]
        assert stage["count"] == len(samples)
        assert stage["mean_ms"] == pytest.approx(samples.mean() * 1000)  # exact
        assert stage["min_ms"] == pytest.approx(samples.min() * 1000) and stage["max_ms"] == pytest.approx(samples.max() * 1000)
        for q in (50, 95, 99):  # from the histogram: within its bins' 0.5%
            assert stage[f"p{q}_ms"] == pytest.approx(np.percentile(samples * 1000, q), rel=0.005)
    assert summary["frames"] == 300 and summary["dropped"] == 7
    assert summary["wall_s"] >= 0.02
    assert summary["fps"] == pytest.approx(300 / summary["wall_s"])
    assert stats.summary()["wall_s"] == summary["wall_s"]  # stopped: the clock no longer runs


@pytest.mark.parametrize("count", [1, 2, 3, 5, 10, 101, 1000, 20000])
def test_percentiles_match_numpy_on_log_normal_samples(count):
    rng = np.random.default_rng(count)
    samples = rng.lognormal(math.log(0.008), 1.0, count)  # ~8 ms, spread from well under 1 ms to ~100 ms
    stats = Stats()
    for seconds in samples:
        stats.add("infer", seconds)
    stage = stats.summary()["stages"]["infer"]
    assert stage["count"] == count
    assert stage["mean_ms"] == pytest.approx(samples.mean() * 1000, rel=1e-9)
    assert stage["min_ms"] == samples.min() * 1000 and stage["max_ms"] == samples.max() * 1000
    for q in (50, 95, 99):
        assert stage[f"p{q}_ms"] == pytest.approx(np.percentile(samples, q) * 1000, rel=0.01)
    histogram = stats.histogram("infer")
    for q in (0, 1, 10, 25, 50, 75, 90, 99.9, 100):
        assert histogram.percentile(q) == pytest.approx(np.percentile(samples, q), rel=0.005)


def test_one_or_two_samples_come_back_exactly():
    one = LatencyHistogram([0.0123456])
    assert one.percentiles((0, 50, 95, 99, 100)) == [0.0123456] * 5
    two = LatencyHistogram([0.004, 0.250])
    for q in (0, 50, 95, 99, 100):
        assert two.percentile(q) == pytest.approx(np.percentile([0.004, 0.250], q), rel=1e-12)
    stats = Stats()
    stats.add("decode", 0.0031)
    stage = stats.summary()["stages"]["decode"]
    assert stage["p50_ms"] == stage["p99_ms"] == stage["mean_ms"] == pytest.approx(3.1, rel=1e-12)


def test_odd_durations_do_not_crash():
    stats = Stats()
    for seconds in (0.0, -0.002, -1e-9, 1e-12, float("nan"), 5e3, float("inf"), 0.01):
        stats.add("stage", seconds)
    stage = stats.summary()["stages"]["stage"]
    assert stage["count"] == 8
    assert stage["min_ms"] == 0.0  # zero, negative and NaN durations count as 0 (the first bin)
    assert stage["max_ms"] == 5e6  # longer than the last bin's start: kept exact
    assert all(math.isfinite(value) for value in stage.values())
    assert 0.0 <= stage["p50_ms"] <= stage["p95_ms"] <= stage["p99_ms"] <= stage["max_ms"]
    json.dumps(stats.summary(), allow_nan=False)


def test_memory_stays_constant():
    stats = Stats()
    samples = np.random.default_rng(1).lognormal(math.log(0.005), 1.5, 50_000).tolist()
    for seconds in samples[:1000]:
        stats.add("infer", seconds)
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        for seconds in samples:
            stats.add("infer", seconds)
        after, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # A list would hold 50,000 more floats (~1.6 MB); the histogram only turns a few counters past 256 into ints.
    assert after - before < 100_000
    assert stats.summary()["stages"]["infer"]["count"] == 51_000


def test_histogram_reads_like_the_list_of_its_samples():
    samples = [0.003, 0.001, 0.002, 0.0025, 0.010]
    histogram = LatencyHistogram()
    for seconds in samples:
        histogram.append(seconds)
    assert len(histogram) == 5 and min(histogram) == 0.001 and max(histogram) == 0.010
    held = list(histogram)
    assert held == sorted(held) and held[0] == 0.001 and held[-1] == 0.010
    assert held == pytest.approx(sorted(samples), rel=0.005)
    assert list(LatencyHistogram()) == [] and len(LatencyHistogram()) == 0

    # Replaying it into Stats (as the pipeline does with the GPU executor's timings) keeps the figures.
    replayed, merged = Stats(), Stats()
    for seconds in histogram:
        replayed.add("gpu_infer", seconds)
    merged.merge("gpu_infer", histogram)
    merged.merge("gpu_infer", [])
    a, b = replayed.summary()["stages"]["gpu_infer"], merged.summary()["stages"]["gpu_infer"]
    assert a["count"] == b["count"] == 5
    assert b["mean_ms"] == pytest.approx(np.mean(samples) * 1000)
    for key in ("mean_ms", "p50_ms", "p95_ms", "p99_ms", "min_ms", "max_ms"):
        assert a[key] == pytest.approx(b[key], rel=0.005)


def test_add_is_thread_safe():
    stats = Stats().start()

    def work():
        for _ in range(2000):
            with stats.time("stage"):
                pass
            stats.frame_done()

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    stats.stop()
    assert stats.summary()["stages"]["stage"]["count"] == 8000
    assert stats.frames == 8000


def test_table_and_json(tmp_path):
    stats = Stats().start()
    for ms in (1.0, 2.0, 3.0, 4.0):
        stats.add("decode", ms / 1000)
        stats.add("inference (onnxruntime)", 10 * ms / 1000)
        stats.frame_done()
    stats.stop()
    table = stats.table()
    lines = table.splitlines()
    assert lines[0].split()[:2] == ["stage", "count"]
    assert len({len(line) for line in lines[:4]}) == 1  # header, rule and rows line up
    assert lines[2].startswith("decode") and "2.50" in lines[2]  # mean of 1..4 ms
    assert lines[3].startswith("inference (onnxruntime)") and "25.00" in lines[3]
    assert "4 frames in" in lines[-1] and "0 dropped" in lines[-1]

    out = tmp_path / "run" / "stats.json"
    stats.write_json(out)
    assert json.loads(out.read_text()) == json.loads(json.dumps(stats.summary()))
    assert [p.name for p in out.parent.iterdir()] == ["stats.json"]  # no temporary file left


def test_empty_stats():
    summary = Stats().summary()
    assert summary == {"frames": 0, "dropped": 0, "waiting_max": 0, "wall_s": 0.0, "fps": 0.0,
                       "latency_ms": {"count": 0, "p50": 0.0, "p95": 0.0, "p99": 0.0, "max": 0.0}, "stages": {}}
    assert "0 frames" in Stats().table()


def test_progress_renders_and_throttles():
    stream = io.StringIO()
    progress = Progress(100, desc="lowlight", stream=stream, enabled=True, interval=0.2)
    for _ in range(40):
        progress.update()
    progress.close()
    progress.close()
    text = stream.getvalue()
    assert text.count("\r") == 2  # the first update and the final state: 40 quick updates are not 40 redraws
    assert text.endswith("\n")
    last = text.split("\r")[-1]
    assert last.startswith("lowlight: 40/100 frames (40%)") and "fps" in last and "ETA" in last

    unknown = Progress(None, stream=io.StringIO(), enabled=True)
    unknown.update(5)
    assert unknown.render().startswith("5 frames")


def test_progress_is_off_when_not_a_terminal():
    stream = io.StringIO()  # isatty() is False
    with Progress(10, stream=stream) as progress:
        progress.update(10)
    assert not progress.enabled and stream.getvalue() == ""
