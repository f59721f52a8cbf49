"""python -m benchmarks.ort_tuning runs on a tiny preset and reports every setting, start-up and end-to-end case."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytest.importorskip("onnxruntime")


def test_every_setting_is_measured_and_written(tmp_path):
    out, cache = tmp_path / "out", tmp_path / "cache"
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.ort_tuning", "--models", "lowlight_edgetest", "--resolution", "48x64",
         "--seconds", "1", "--max-rounds", "3", "--startup-repeats", "1", "--e2e-seconds", "0.1", "--e2e-frames",
         "10", "--e2e-rounds", "1", "--out", str(out), "--cache", str(cache)],
        capture_output=True, text=True, timeout=600, env={**os.environ, "XDG_CACHE_HOME": str(tmp_path / "xdg")})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert sorted(p.name for p in out.iterdir()) == ["ort_tuning.json", "ort_tuning.md"]
    assert "| ORT default |" in proc.stdout and "speed-up" in proc.stdout

    (model,) = json.loads((out / "ort_tuning.json").read_text())["models"]
    assert model["model"] == "lowlight_edgetest" and model["rounds"] == 3
    rows = {r["setting"]: r for r in model["inference"]}
    assert {"torch eager, channels-last", "torch eager, NCHW", "ORT default", "ORT threads 1", "ORT spinning on",
            "ORT optimisation basic", "ORT optimisation extended", "ORT cache off"} <= set(rows)
    assert all(r["n"] >= 3 and 0 < r["p50_ms"] <= r["p90_ms"] for r in rows.values())
    assert max(r["speedup_vs_torch"] for r in rows.values() if r["kind"] == "torch") == pytest.approx(1.0)
    startup = {r["case"]: r["from_cache"] for r in model["startup"]}
    assert [v for k, v in startup.items() if k.startswith("cache")] == [False, True]  # written, then read
    assert {r["setting"] for r in model["e2e"]} >= {"ORT default", "torch eager, channels-last"}
    assert all(r["frames"] == 10 and r["fps_median"] > 0 for r in model["e2e"])
