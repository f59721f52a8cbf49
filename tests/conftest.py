"""Shared fixtures and the hardware marks: tests marked needs_cuda / needs_tensorrt skip with a reason."""

from __future__ import annotations

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
