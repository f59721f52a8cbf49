"""Faults during python -m export: a full disk, a failure before publishing, Ctrl-C while tracing, a corrupt
checkpoint. The set (models, sidecars, report) appears together or not at all."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import export.pipeline as pipeline
from export.cli import main
from runtime.core.sidecar import file_sha256
from train.checkpoint import save_checkpoint
from train.models import create_model

pytest.importorskip("onnxruntime")
ROOT = Path(__file__).resolve().parents[2]
SMALL = ["--min-shape", "32x32", "--opt-shape", "64x64", "--max-shape", "128x128", "--max-batch", "1",
         "--parity-shapes", "1x48x64", "--quiet"]


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    # the first-generation tiny model: its export set is larger than the 48 kB disk of the full-disk test
    return save_checkpoint(tmp_path_factory.mktemp("ckpt") / "best.ckpt", create_model("lowlight_edgetest_v1").eval())


def _one_line(stderr: str) -> str:
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in stderr, stderr[-2000:]
    return lines[0]


def test_a_full_disk_fails_loudly_and_leaves_nothing(ckpt, small_disk):
    proc = subprocess.run([sys.executable, "-m", "export", str(ckpt), "--out", str(small_disk / "export"), *SMALL],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 1
    line = _one_line(proc.stderr)
    assert str(small_disk / "export") in line and "no space left on device" in line
    assert list(small_disk.iterdir()) == []  # no export folder, no staging folder


def test_the_set_is_published_whole_and_the_users_files_are_kept(ckpt, tmp_path, monkeypatch):
    out = tmp_path / "export"
    assert main([str(ckpt), "--out", str(out), *SMALL]) == 0
    (out / "notes.txt").write_text("mine")
    before = {p.name: file_sha256(p) for p in out.iterdir()}

    def broken_report(*args, **kwargs):
        raise OSError(5, "Input/output error", str(out / "export_report.json"))

    monkeypatch.setattr(pipeline, "build_report", broken_report)
    with pytest.raises(OSError):
        pipeline.run_export(pipeline.ExportOptions(checkpoint=str(ckpt), out=str(out), fp16=True, quiet=True,
                                                   min_shape=(32, 32), opt_shape=(64, 64), max_shape=(128, 128),
                                                   max_batch=1, parity_shapes=((1, 48, 64),)))
    assert {p.name: file_sha256(p) for p in out.iterdir()} == before  # the earlier set, untouched
    assert [p.name for p in tmp_path.iterdir()] == ["export"]  # no staging left beside it
    monkeypatch.undo()

    assert main([str(ckpt), "--fp16", "--out", str(out), *SMALL]) == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == ["export_report.json", "export_report.md", "model.fp16.onnx", "model.fp16.onnx.json",
                     "model.onnx", "model.onnx.json", "notes.txt"]
    assert (out / "notes.txt").read_text() == "mine"


def test_ctrl_c_while_tracing_is_one_line_and_leaves_nothing(ckpt, tmp_path):
    out = tmp_path / "export"
    proc = subprocess.Popen([sys.executable, "-m", "export", str(ckpt), "--out", str(out),
                             *[a for a in SMALL if a != "--quiet"]],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for line in proc.stdout:
        if "ONNX fp32" in line:  # torch.onnx.export is tracing now
            break
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 130
    assert _one_line(stderr) == "python -m export: interrupted (SIGINT)"
    assert list(tmp_path.iterdir()) == []


def test_a_corrupt_checkpoint_says_so_without_pytorch_advice(ckpt, tmp_path):
    bad = tmp_path / "bad.ckpt"
    bad.write_bytes(ckpt.read_bytes()[:5000])
    proc = subprocess.run([sys.executable, "-m", "export", str(bad), "--out", str(tmp_path / "o")], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    line = _one_line(proc.stderr)
    assert "is not a readable checkpoint (the file is truncated or damaged)" in line and "weights_only" not in line
    assert not (tmp_path / "o").exists()
