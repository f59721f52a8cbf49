"""benchmarks.live: a live H.264 stream on loopback UDP through the runtime pipeline gives capture-to-output
latency, drops and FPS, with no growing queue; and ``python -m benchmarks`` end-to-end rows carry them."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from benchmarks.live import live_latency, read_index, stamp_index

pytest.importorskip("onnxruntime")
pytest.importorskip("av")


@pytest.mark.parametrize("size", [(64, 64), (96, 128), (360, 640)])
def test_the_frame_code_reads_back_what_was_stamped_and_refuses_a_damaged_one(size):
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
    for index in (0, 1, 300, 65535):
        stamp_index(image, index)
        assert read_index(image) == index
    image[: size[0] // 2, : size[1] // 2] = 128  # grey over the code: neither bit value
    assert read_index(image) is None


@pytest.fixture(scope="module")
def runner(exported_lowlight):
    from runtime import load

    with load(exported_lowlight / "export" / "model.onnx", threads=1) as runner:
        yield runner


def test_a_live_loopback_stream_gives_latency_figures_and_no_growing_queue(runner):
    from runtime.tasks import task_for

    task = task_for(runner).for_benchmark(runner, 60)
    result = live_latency(runner, task, (96, 128), seconds=2.0, fps=30.0, warmup=0.5)
    assert result["error"] is None
    assert abs(result["sent"] - 60) <= 1 and 0 < result["output"] <= result["sent"]
    assert result["output"] + result["dropped"] == result["sent"]
    assert result["source_dropped"] + result["lost"] == result["dropped"] and result["unreadable"] == 0
    assert 0 < result["p50_ms"] <= result["p95_ms"] <= result["p99_ms"] <= result["max_ms"]
    # Each frame's grab-to-output time includes its decoder-to-output time.
    assert 0 < result["pipeline_p50_ms"] <= result["p50_ms"] and result["pipeline_p95_ms"] <= result["p95_ms"]
    assert result["infer_p50_ms"] > 0 and result["output_fps"] > 0 and result["sent_fps"] > 0
    assert result["waiting_max"] <= 1 and not result["queue_grew"]


def test_end_to_end_rows_carry_the_live_figures(runner, tmp_path):
    from benchmarks.cli import _e2e, _live_fields

    summary = _e2e(runner, (96, 128), 6, tmp_path, live_seconds=1.5)
    assert summary["frames"] == 6 and summary["live"]["error"] is None
    fields = _live_fields(summary["live"])
    assert set(fields) >= {"live_p50_ms", "live_p95_ms", "live_p99_ms", "live_dropped", "live_fps"}
    assert 0 < fields["live_p50_ms"] <= fields["live_p95_ms"] <= fields["live_p99_ms"]
    assert fields["live_fps"] > 0 and 0 <= fields["live_dropped"] < fields["live_sent"]


def test_the_command_line(exported_lowlight, tmp_path):
    out = subprocess.run([sys.executable, "-m", "benchmarks.live", "--help"], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0 and "--seconds" in out.stdout and "capture" in out.stdout.lower()
    out = subprocess.run([sys.executable, "-m", "benchmarks.live", "--model", str(tmp_path / "missing")],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1 and "no model" in out.stderr
