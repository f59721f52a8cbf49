"""make gpu-check: the dry run (the same script on the CPU, against the simulated CUDA layer) as the GPU machine
would run it, without the packages that machine lacks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.gpu_check import MODELS

# What the GPU machine's Python does not have (its image lists the rest): the check must not need any of them.
ABSENT = ("av", "mediapipe", "ai_edge_litert", "onnxconverter_common", "tensorrt", "pycuda")


def bare_python(folder: Path) -> dict[str, str]:
    """The environment of a Python (and of every Python it starts) that cannot import ``ABSENT``."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sitecustomize.py").write_text(f"import sys\nfor name in {ABSENT!r}:\n    sys.modules[name] = None\n")
    root = Path(__file__).resolve().parents[2]
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(folder), str(root)])}


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("gpu-check")
    env = bare_python(tmp_path_factory.mktemp("bare"))
    proc = subprocess.run([sys.executable, "-m", "benchmarks.gpu_check", "--dry-run", "--out", str(out)],
                          capture_output=True, text=True, timeout=900, env=env)
    return proc, out


def test_the_dry_run_writes_every_output_to_one_folder(dry_run):
    proc, out = dry_run
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert {p.name for p in out.iterdir()} >= {"results.json", "summary.md", "check.log", "tests.xml", "tests.log"}
    summary = (out / "summary.md").read_text()
    assert "**Dry run**" in summary and "| lowlight_edge | 1080p/10 | torch |" in summary
    assert "wrote" in (out / "check.log").read_text().splitlines()[-1]


def test_the_dry_run_measures_every_model_and_drives_the_executor(dry_run):
    _, out = dry_run
    results = json.loads((out / "results.json").read_text())
    assert results["dry_run"] and results["cuda_lib"] == "sim" and results["errors"] == []
    assert sorted((r["model"], r["resolution"]) for r in results["rows"]) == sorted(
        (model, size) for model in MODELS for size in ("720p/10", "1080p/10"))
    for row in results["rows"]:
        assert row["p50_ms"] > 0 and row["host_p50_ms"] > 0 and row["psnr_vs_fp32_db"] == float("inf")
    # The video tasks' models went end to end through the overlapped executor, with its per-stage timings.
    assert sorted({r["model"] for r in results["e2e"]}) == ["lowlight_edge", "relight_edge"]
    stages = {"gpu_upload", "gpu_preprocess", "gpu_infer", "gpu_postprocess", "gpu_download"}
    for run in results["e2e"]:
        assert run["frames"] == 4 and run["fps"] > 0 and run["efficiency_pct"] > 0 and stages <= set(run["stages_ms"])
        assert run["pipeline"]["frames"] == 4 and stages <= set(run["pipeline"]["stages_ms"])
        assert run["host_conversion"] is False  # the simulated kernels loaded
    assert results["skipped"] == []
    # The needs_cuda tests were collected (without the absent packages too) and skipped (no GPU), and nothing claims
    # a GPU figure.
    assert results["tests"]["passed"] and "skipped" in results["tests"]["summary"]
    assert "error" not in results["tests"]["summary"]
    assert {v["verdict"] for v in results["verdicts"].values()} == {"not measured (dry run)"}


def test_without_a_gpu_the_real_check_says_to_dry_run(tmp_path):
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("a GPU is visible here")
    proc = subprocess.run([sys.executable, "-m", "benchmarks.gpu_check", "--out", str(tmp_path / "out")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and not (tmp_path / "out").exists()
    assert proc.stderr.strip().splitlines() == [
        "python -m benchmarks.gpu_check: error: no CUDA GPU is visible to PyTorch; on a machine without one run "
        "--dry-run"]


def test_rows_that_would_start_after_the_budget_are_listed_as_skipped(tmp_path):
    import time

    from benchmarks.gpu_check import _Log, _measure, build_parser

    args = build_parser().parse_args(["--dry-run", "--models", "lowlight_edge", "ibr_edge"])
    results = _measure(args, tmp_path, _Log(tmp_path / "check.log"), True, deadline=time.monotonic() - 1)
    assert results["rows"] == [] and results["errors"] == []
    assert [(s["model"], s["resolution"], s["reason"]) for s in results["skipped"]] == [
        ("lowlight_edge", "720p/10", "time budget"), ("lowlight_edge", "1080p/10", "time budget"),
        ("ibr_edge", "720p/10", "time budget"), ("ibr_edge", "1080p/10", "time budget")]
