"""Fixtures of the runtime tests."""

from __future__ import annotations

import sys
import types

import pytest

from .fakes import SimCuda, fake_tensorrt, make_sidecar


@pytest.fixture
def fake_gpu(monkeypatch):
    """A fake ``tensorrt`` module on a ``SimCuda`` that ``runtime.cuda.get_cuda`` returns: ``.cuda``, ``.trt``."""
    cuda = SimCuda(seed=7)
    trt = fake_tensorrt(cuda)
    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    monkeypatch.setattr("runtime.cuda.get_cuda", lambda lib="auto", device=0: cuda)
    return types.SimpleNamespace(cuda=cuda, trt=trt)


@pytest.fixture(scope="session")
def lowlight_checkpoint(tmp_path_factory):
    """``best.ckpt`` of a seeded ``lowlight_edgetest`` (no export)."""
    import torch

    from train.checkpoint import save_checkpoint
    from train.models import create_model

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("lowlight-checkpoint") / "best.ckpt"
    save_checkpoint(path, create_model("lowlight_edgetest").eval())
    return path


GPU_PROFILE = {"image": {"min": [1, 3, 16, 16], "opt": [1, 3, 64, 64], "max": [1, 3, 256, 256]}}


@pytest.fixture(scope="session")
def tiny_engines(tmp_path_factory):
    """A small conv net as FP32 ONNX, and TensorRT engines from its FP16 ONNX with FP32 and with FP16 I/O."""
    from export.engine import unavailable_reason

    if reason := unavailable_reason():
        pytest.skip(f"needs_tensorrt: {reason}")
    from export.engine import Profile, build_engine
    from tests.tiny_onnx import tiny_conv_onnx

    folder = tmp_path_factory.mktemp("engines")
    paths = tiny_conv_onnx(folder)
    engines = {}
    for io in ("fp32", "fp16"):
        build = build_engine(paths[f"{io}io"], folder / f"tiny.{io}io.engine", Profile.from_dict(GPU_PROFILE),
                             log=lambda s: None)
        sidecar = make_sidecar(build.trt_version, build.compute_capability, io=io, profile=GPU_PROFILE)
        sidecar["contract"]["outputs"] = [{"name": "output"}]
        engines[io] = (build.path, sidecar)
    return paths["fp32"], engines
