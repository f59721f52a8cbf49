"""runtime.stats: latency percentiles against NumPy, FPS and drops, the table, atomic JSON, the progress line."""

from __future__ import annotations

import io
import json
import threading
import time

import numpy as np
import pytest

from runtime.stats import Progress, Stats


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
        assert stage["mean_ms"] == pytest.approx(samples.mean() * 1000)
        for q in (50, 95, 99):
            assert stage[f"p{q}_ms"] == pytest.approx(np.percentile(samples * 1000, q))
    assert summary["frames"] == 300 and summary["dropped"] == 7
    assert summary["wall_s"] >= 0.02
    assert summary["fps"] == pytest.approx(300 / summary["wall_s"])
    assert stats.summary()["wall_s"] == summary["wall_s"]  # stopped: the clock no longer runs


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
    assert summary == {"frames": 0, "dropped": 0, "wall_s": 0.0, "fps": 0.0, "stages": {}}
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
