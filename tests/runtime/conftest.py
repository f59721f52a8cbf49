"""Fixtures of the runtime tests."""

from __future__ import annotations

import sys
import types

import pytest

from .fakes import SimCuda, fake_tensorrt


@pytest.fixture
def fake_gpu(monkeypatch):
    """A fake ``tensorrt`` module on a ``SimCuda`` that ``runtime.cuda.get_cuda`` returns: ``.cuda``, ``.trt``."""
    cuda = SimCuda(seed=7)
    trt = fake_tensorrt(cuda)
    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    monkeypatch.setattr("runtime.cuda.get_cuda", lambda lib="auto", device=0: cuda)
    return types.SimpleNamespace(cuda=cuda, trt=trt)
