"""The rows a benchmark compares: each is a runtime backend (``runtime.backends``) with a precision and options.

A row names the runtime backend that runs it, the artefact it loads (the checkpoint, the FP32 or FP16
ONNX file, or an engine built for the requested sizes) and the runner options; its availability is
the backend's own (``Backend.unavailable``) plus what the row needs on top (a CUDA GPU, an ONNX
Runtime execution provider). Runners come from the runtime's registry: the numbers are those of the
code users deploy, and a new runtime backend is benchmarked by adding a row here, not a code path.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Row", "BACKENDS", "backend_names"]


def _cuda_reason() -> str | None:
    try:
        import torch
    except ImportError:
        return "PyTorch is not installed"
    return None if torch.cuda.is_available() else "no CUDA GPU visible"


def _provider_reason(provider: str) -> str | None:
    import onnxruntime

    if provider not in onnxruntime.get_available_providers():
        return f"this onnxruntime has no {provider} (install onnxruntime-gpu on an NVIDIA machine)"
    return None


@dataclass(frozen=True)
class Row:
    """One row kind of the benchmark table.

    Args:
        name: the ``--backends`` value (``ort-cuda-fp16``).
        label: the table's wording.
        backend: the runtime backend that runs it (``onnxruntime``).
        precision: ``fp32``, ``fp16`` or ``int8``.
        artefact: what it loads: ``checkpoint``, ``onnx``, ``onnx_fp16``, ``onnx_int8`` or ``engine`` (built
            from the FP16 ONNX file, or for ``int8`` from a symmetric INT8 Q/DQ file).
        device: ``cpu``, ``cuda`` or ``auto`` (the reference runs where PyTorch finds a GPU).
        options: runner options (``runtime.backends.OPTIONS``) besides ``threads``.
        provider: the ONNX Runtime execution provider it needs, if any.
    """

    name: str
    label: str
    backend: str
    precision: str
    artefact: str
    device: str
    options: dict = field(default_factory=dict)
    provider: str | None = None

    def unavailable(self) -> str | None:
        """Why this row cannot run here, or None."""
        from runtime.backends import get_backend

        reason = get_backend(self.backend).unavailable()
        if reason is None and self.provider:
            reason = _provider_reason(self.provider)
        if reason is None and self.device == "cuda":
            reason = _cuda_reason()
        return reason

    def make(self, prepared, shapes: list[tuple[int, int]], cache: Path, threads: int | None):
        """The runner for ``prepared`` (not yet active)."""
        from runtime.backends import get_backend

        backend = get_backend(self.backend)
        options = {**self.options, "threads": threads if "threads" in backend.options else None}
        if self.artefact == "engine":
            return backend.create(_engine(prepared, shapes, cache, self.precision), **options)
        return backend.create(getattr(prepared, self.artefact), **options)


def _symmetric_qdq(prepared) -> Path:
    """The INT8 Q/DQ file TensorRT builds from (symmetric INT8 activations), made once next to the FP32 file."""
    from export.int8 import calibration_feeds, quantize_int8
    from runtime.core.io import write_json
    from runtime.core.sidecar import file_sha256, read_sidecar, sidecar_path

    path = prepared.onnx.with_name("model.int8.qdq.onnx")
    if not path.is_file():
        feeds, _ = calibration_feeds(prepared.meta, 32)
        quantize_int8(prepared.onnx, path, feeds, symmetric=True)
        sidecar = read_sidecar(prepared.onnx).replace(artefact=path.name, precision="int8", sha256=file_sha256(path),
                                                      size_bytes=path.stat().st_size)
        write_json(sidecar_path(path), sidecar.to_dict())
    return path


def _engine(prepared, shapes: list[tuple[int, int]], cache: Path, precision: str = "fp16") -> Path:
    """Build (or reuse) an FP16 or INT8 engine whose profile covers ``shapes``, with its sidecar; return its path."""
    from export.engine import Profile, build_engine
    from runtime.core.io import write_json
    from runtime.core.sidecar import file_sha256, make_profile, read_sidecar, sidecar_path

    high = (max(h for h, _ in shapes), max(w for _, w in shapes))
    low = (min(h for h, _ in shapes), min(w for _, w in shapes))
    profile = make_profile(prepared.contract, low, high, high, 1)
    source = _symmetric_qdq(prepared) if precision == "int8" else prepared.onnx_fp16
    plan = source.with_name(f"model.{precision}.{high[0]}x{high[1]}.engine")
    build = build_engine(source, plan, Profile({n: (p.min, p.opt, p.max) for n, p in profile.items()}),
                         cache_dir=cache / "engines", timing_cache=cache / "timing.cache", progress=False,
                         log=lambda s: None)
    sidecar = read_sidecar(source).replace(
        artefact=plan.name, kind="engine", profile=profile, sha256=file_sha256(plan), size_bytes=plan.stat().st_size,
        tensorrt={"version": build.trt_version, "compute_capability": build.compute_capability,
                  "device_name": build.device_name, "cache_key": build.cache_key})
    write_json(sidecar_path(plan), sidecar.to_dict())
    return plan


BACKENDS = (
    Row("torch", "PyTorch eager FP32 (reference)", "torch", "fp32", "checkpoint", "auto"),
    Row("torch-fp16", "PyTorch eager FP16", "torch", "fp16", "checkpoint", "cuda", {"device": "cuda", "fp16": True}),
    Row("torch-fp16-graphs", "PyTorch FP16 + CUDA graphs", "torch", "fp16", "checkpoint", "cuda",
        {"device": "cuda", "fp16": True, "cuda_graphs": True}),
    Row("ort-cpu", "ONNX Runtime CPU FP32", "onnxruntime", "fp32", "onnx", "cpu", {"device": "cpu"}),
    Row("ort-cpu-fp16", "ONNX Runtime CPU FP16", "onnxruntime", "fp16", "onnx_fp16", "cpu", {"device": "cpu"}),
    Row("ort-cpu-int8", "ONNX Runtime CPU INT8 (Q/DQ)", "onnxruntime", "int8", "onnx_int8", "cpu", {"device": "cpu"}),
    Row("ort-cuda", "ONNX Runtime CUDA FP32", "onnxruntime", "fp32", "onnx", "cuda", {"providers": ("cuda",)},
        "CUDAExecutionProvider"),
    Row("ort-cuda-fp16", "ONNX Runtime CUDA FP16", "onnxruntime", "fp16", "onnx_fp16", "cuda", {"providers": ("cuda",)},
        "CUDAExecutionProvider"),
    Row("ort-tensorrt", "ONNX Runtime TensorRT EP FP16", "onnxruntime", "fp16", "onnx_fp16", "cuda",
        {"providers": ("tensorrt",)}, "TensorrtExecutionProvider"),
    Row("tensorrt", "TensorRT engine FP16", "tensorrt", "fp16", "engine", "cuda"),
    Row("tensorrt-int8", "TensorRT engine INT8 (Q/DQ, strongly typed)", "tensorrt", "int8", "engine", "cuda"),
)


def backend_names() -> list[str]:
    return [b.name for b in BACKENDS]
