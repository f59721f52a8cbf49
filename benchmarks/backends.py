"""The backends a benchmark compares, each a way to get a runtime runner for a prepared model.

Every backend says why it cannot run on this machine (``unavailable``) instead of vanishing from
the table. Runners come from ``runtime``: the numbers are those of the code users deploy.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

__all__ = ["Backend", "BACKENDS", "backend_names"]


def _cuda_reason() -> str | None:
    try:
        import torch
    except ImportError:
        return "PyTorch is not installed"
    return None if torch.cuda.is_available() else "no CUDA GPU visible"


def _provider_reason(provider: str) -> str | None:
    try:
        import onnxruntime
    except ImportError:
        return "onnxruntime is not installed"
    if provider not in onnxruntime.get_available_providers():
        return f"this onnxruntime has no {provider} (install onnxruntime-gpu on an NVIDIA machine)"
    return _cuda_reason() if provider != "CPUExecutionProvider" else None


def _tensorrt_reason() -> str | None:
    from export.engine import unavailable_reason

    reason = unavailable_reason()
    if reason:
        return reason
    from runtime.cuda import available_libs

    return None if available_libs() else "no CUDA library for the runtime (pip install cuda-python or pycuda)"


@dataclass(frozen=True)
class Backend:
    """One row kind: a runner factory, its precision, and what it needs."""

    name: str
    label: str
    precision: str
    device: str
    reason: Callable[[], str | None]
    make: Callable

    def unavailable(self) -> str | None:
        """Why this backend cannot run here, or None."""
        return self.reason()


def _torch(fp16: bool = False, graphs: bool = False, device: str = "auto"):
    def make(prepared, shapes, cache: Path, threads: int | None):
        from runtime.runners.torch import TorchRunner

        return TorchRunner(prepared.checkpoint, device=device, fp16=fp16, cuda_graphs=graphs, threads=threads)

    return make


def _ort(provider: str, fp16: bool):
    def make(prepared, shapes, cache: Path, threads: int | None):
        from runtime.runners.onnxruntime import OnnxRuntimeRunner

        return OnnxRuntimeRunner(prepared.onnx_fp16 if fp16 else prepared.onnx, providers=(provider,), threads=threads)

    return make


def _engine(prepared, shapes: list[tuple[int, int]], cache: Path, threads: int | None):
    """Build (or reuse) an FP16 engine whose profile covers ``shapes``, then its runner."""
    import json

    from export.engine import Profile, build_engine, compute_capability, tensorrt_version
    from export.sidecar import read_sidecar, sidecar_path
    from runtime.runners.tensorrt import TensorRTRunner

    high = (max(h for h, _ in shapes), max(w for _, w in shapes))
    low = (min(h for h, _ in shapes), min(w for _, w in shapes))
    profile = {}
    for spec in prepared.contract["inputs"]:
        if "shape" in spec:
            k = int(spec["shape"][1])
            profile[spec["name"]] = ((1, k), (1, k), (1, k))
        else:
            c = int(spec["channels"])
            profile[spec["name"]] = ((1, c, *low), (1, c, *high), (1, c, *high))
    plan = prepared.onnx_fp16.with_name(f"model.fp16.{high[0]}x{high[1]}.engine")
    build = build_engine(prepared.onnx_fp16, plan, Profile(profile), cache_dir=cache / "engines",
                         timing_cache=cache / "timing.cache", progress=False, log=lambda s: None)
    sidecar = read_sidecar(prepared.onnx_fp16)
    sidecar.update(artefact=plan.name, kind="engine", profile=Profile(profile).to_dict(),
                   tensorrt={"version": tensorrt_version(), "compute_capability": compute_capability(),
                             "cache_key": build.cache_key, "version_compatible": False, "hardware_compatible": False})
    sidecar_path(plan).write_text(json.dumps(sidecar, indent=1))
    return TensorRTRunner(plan, sidecar)


BACKENDS = (
    Backend("torch", "PyTorch eager FP32 (reference)", "fp32", "auto", lambda: None, _torch()),
    Backend("torch-fp16", "PyTorch eager FP16", "fp16", "cuda", _cuda_reason, _torch(fp16=True, device="cuda")),
    Backend("torch-fp16-graphs", "PyTorch FP16 + CUDA graphs", "fp16", "cuda", _cuda_reason,
            _torch(fp16=True, graphs=True, device="cuda")),
    Backend("ort-cpu", "ONNX Runtime CPU FP32", "fp32", "cpu", lambda: _provider_reason("CPUExecutionProvider"),
            _ort("cpu", False)),
    Backend("ort-cpu-fp16", "ONNX Runtime CPU FP16", "fp16", "cpu", lambda: _provider_reason("CPUExecutionProvider"),
            _ort("cpu", True)),
    Backend("ort-cuda", "ONNX Runtime CUDA FP32", "fp32", "cuda", lambda: _provider_reason("CUDAExecutionProvider"),
            _ort("cuda", False)),
    Backend("ort-cuda-fp16", "ONNX Runtime CUDA FP16", "fp16", "cuda",
            lambda: _provider_reason("CUDAExecutionProvider"), _ort("cuda", True)),
    Backend("ort-tensorrt", "ONNX Runtime TensorRT EP FP16", "fp16", "cuda",
            lambda: _provider_reason("TensorrtExecutionProvider"), _ort("tensorrt", True)),
    Backend("tensorrt", "TensorRT engine FP16", "fp16", "cuda", _tensorrt_reason, _engine),
)


def backend_names() -> list[str]:
    return [b.name for b in BACKENDS]
