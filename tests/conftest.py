"""Shared fixtures and the hardware marks: tests marked needs_cuda / needs_tensorrt skip with a reason."""

from __future__ import annotations

from pathlib import Path

import pytest


def _cuda_reason() -> str | None:
    try:
        import torch
    except ImportError:
        return "PyTorch is not installed"
    return None if torch.cuda.is_available() else "no CUDA GPU visible to PyTorch"


def _tensorrt_reason() -> str | None:
    # Not find_spec: tensorrt-stubs (installed for the static check) makes an importable empty package.
    from export.engine import unavailable_reason

    return unavailable_reason()


def pytest_collection_modifyitems(config, items):
    reasons = {"needs_cuda": _cuda_reason, "needs_tensorrt": _tensorrt_reason}
    cache: dict[str, str | None] = {}
    for item in items:
        for mark, probe in reasons.items():
            if mark in item.keywords:
                if mark not in cache:
                    cache[mark] = probe()
                if cache[mark]:
                    item.add_marker(pytest.mark.skip(reason=f"{mark}: {cache[mark]}"))


@pytest.fixture(scope="session")
def exported_lowlight(tmp_path_factory) -> Path:
    """A run folder: ``best.ckpt`` of a seeded ``lowlight_edgetest`` and its export (``export/``: ONNX and FP16
    ONNX, profile 32x32..128x128, batch 1), made once per session."""
    pytest.importorskip("onnxruntime")
    import torch

    from export.pipeline import ExportOptions, run_export
    from train.checkpoint import save_checkpoint
    from train.models import create_model

    folder = tmp_path_factory.mktemp("lowlight-run")
    torch.manual_seed(0)
    save_checkpoint(folder / "best.ckpt", create_model("lowlight_edgetest").eval())
    run_export(ExportOptions(checkpoint=str(folder / "best.ckpt"), out=str(folder / "export"), fp16=True,
                             min_shape=(32, 32), opt_shape=(64, 64), max_shape=(128, 128), max_batch=1,
                             parity_shapes=((1, 48, 64),), quiet=True))
    return folder


@pytest.fixture
def small_disk(tmp_path):
    """A 48 kB tmpfs to fill up (a full disk); skips, with the reason, where mounting is not allowed."""
    import subprocess

    mount = tmp_path / "disk"
    mount.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=48k", "tmpfs", str(mount)], capture_output=True,
                          text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here ({proc.stderr.strip() or 'mount failed'}): needs root")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], capture_output=True)
