"""python -m benchmarks runs in seconds on the tiny presets and writes every output."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out, cache = tmp_path_factory.mktemp("bench"), tmp_path_factory.mktemp("cache")
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--models", "lowlight_edgetest", "unet_test", "--resolutions", "48x64",
         "--iters", "2", "--warmup", "1", "--e2e-frames", "6", "--live-seconds", "0", "--out", str(out),
         "--cache", str(cache)],
        capture_output=True, text=True, timeout=600)
    return proc, out


def test_every_output_file_is_written(run):
    proc, out = run
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert {p.name for p in out.iterdir()} >= {"results.json", "results.md", "latency.png"}
    assert (out / "latency.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "| model | backend |" in (out / "results.md").read_text()
    assert "p50 ms" in proc.stdout and "speed-up" in proc.stdout


def test_results_schema_rows_and_reference(run):
    _, out = run
    results = json.loads((out / "results.json").read_text())
    assert set(results) >= {"command", "environment", "peaks", "unavailable", "errors", "rows", "e2e"}
    assert results["environment"]["cores"] >= 1 and results["environment"]["torch_threads"] >= 1
    rows = results["rows"]
    models = {r["model"] for r in rows}
    assert models == {"lowlight_edgetest", "unet_test"}
    for model in models:
        mine = {r["backend"]: r for r in rows if r["model"] == model}
        assert {"torch", "ort-cpu", "ort-cpu-fp16", "ort-cpu-int8"} <= set(mine)
        assert mine["torch"]["speedup"] == pytest.approx(1.0)
        assert mine["torch"]["parity_psnr_db"] > 100  # the runner (channels-last) against plain eager
        assert mine["ort-cpu"]["parity_psnr_db"] > 80 and mine["ort-cpu-fp16"]["parity_psnr_db"] > 45
        assert 35 <= mine["ort-cpu-int8"]["parity_psnr_db"] < 80 and mine["ort-cpu-int8"]["precision"] == "int8"
        for r in mine.values():
            assert r["p50_ms"] <= r["p95_ms"] <= r["p99_ms"] and r["fps"] > 0 and r["gmacs"] > 0
            assert r["floor_ms"] > 0 and 0 < r["floor_pct"] <= 100 and r["floor_bound"] in ("compute", "memory")
            assert r["resolution"] == [48, 64] and r["peak_rss_mb"] > 0 and r["added_rss_mb"] >= 0
    # End-to-end rows for the model with a video task only, beside its inference-only figure.
    assert {e["model"] for e in results["e2e"]} == {"lowlight_edgetest"}
    assert all(e["frames"] == 6 and e["e2e_fps"] > 0 and e["infer_fps"] > 0 for e in results["e2e"])


def test_unavailable_backends_are_listed_with_a_reason(run):
    _, out = run
    results = json.loads((out / "results.json").read_text())
    listed = {u["backend"]: u["reason"] for u in results["unavailable"]}
    measured = {r["backend"] for r in results["rows"]}
    assert not (set(listed) & measured)
    assert set(listed) | measured == {"torch", "torch-fp16", "torch-fp16-graphs", "ort-cpu", "ort-cpu-fp16",
                                      "ort-cpu-int8", "ort-cuda", "ort-cuda-fp16", "ort-tensorrt", "tensorrt",
                                      "tensorrt-int8"}
    assert all(reason for reason in listed.values())
    text = (out / "results.md").read_text()
    assert all(f"`{name}`" in text for name in listed)


def test_bad_options_are_one_line_exit_2(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "benchmarks", "--backends", "warp", "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1 and "warp" in proc.stderr


def test_pytorch_rows_alone_export_nothing_and_need_no_export_packages(tmp_path):
    """On a GPU machine with PyTorch but without the export extra, the PyTorch rows still run."""
    from tests.benchmarks.test_gpu_check import bare_python

    out, cache = tmp_path / "out", tmp_path / "cache"
    proc = subprocess.run([sys.executable, "-m", "benchmarks", "--models", "lowlight_edgetest", "--backends", "torch",
                           "--resolutions", "48x64", "--iters", "2", "--warmup", "1", "--e2e-frames", "4",
                           "--live-seconds", "0", "--out", str(out), "--cache", str(cache)],
                          capture_output=True, text=True, timeout=600, env=bare_python(tmp_path / "bare"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert [r["backend"] for r in json.loads((out / "results.json").read_text())["rows"]] == ["torch"]
    assert not list(cache.rglob("*.onnx"))
