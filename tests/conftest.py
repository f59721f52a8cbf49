"""Shared fixtures and the hardware marks: tests marked needs_cuda / needs_tensorrt skip with a reason."""

from __future__ import annotations

import importlib.util

import pytest


def _cuda_reason() -> str | None:
    try:
        import torch
    except ImportError:
        return "PyTorch is not installed"
    return None if torch.cuda.is_available() else "no CUDA GPU visible to PyTorch"


def _tensorrt_reason() -> str | None:
    if importlib.util.find_spec("tensorrt") is None:
        return "the tensorrt package is not installed"
    return _cuda_reason()


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
