"""``runtime.load``: the right runner for a model file, picked by its suffix and sidecar."""

from __future__ import annotations

import inspect
import os
from pathlib import Path

from .errors import ModelError
from .runners.base import Runner

__all__ = ["load", "BACKENDS"]

BACKENDS = ("auto", "tensorrt", "onnxruntime", "torch")
_ENGINE = (".engine", ".plan")


def _tensorrt_ready() -> bool:
    import importlib.util

    if importlib.util.find_spec("tensorrt") is None:
        return False
    import tensorrt

    return hasattr(tensorrt, "Runtime")  # not the bare folder that tensorrt-stubs installs


def _from_folder(folder: Path, backend: str) -> Path:
    """The model file an export or run folder holds that ``backend`` (or, for auto, this machine) runs best."""
    if (folder / "best.ckpt").is_file() and backend in ("auto", "torch"):
        return folder / "best.ckpt"
    engines = sorted(p for p in folder.iterdir() if p.suffix in _ENGINE)
    if backend == "tensorrt":
        if not engines:
            raise ModelError(f"{folder} holds no TensorRT engine; build one with python -m export CHECKPOINT --fp16 "
                             "--engine")
        return engines[0]
    if engines and backend == "auto" and _tensorrt_ready():
        return engines[0]
    gpu = False
    try:
        import onnxruntime

        gpu = "CUDAExecutionProvider" in onnxruntime.get_available_providers()
    except ImportError:
        pass
    # The FP16 file is for GPUs: on the CPU ONNX Runtime wraps FP16 nodes in casts and runs slower.
    for name in (("model.fp16.onnx", "model.onnx") if gpu else ("model.onnx", "model.fp16.onnx")):
        if (folder / name).is_file():
            return folder / name
    raise ModelError(f"{folder} holds no model (best.ckpt, model.onnx, model.fp16.onnx or an engine); "
                     "export one with python -m export")


def load(path: str | os.PathLike, backend: str = "auto", **options) -> Runner:
    """The runner for ``path``, not yet active (use it in a ``with`` block or call ``activate()``).

    Args:
        path: an engine (``.engine`` / ``.plan``: TensorRT), an ONNX file (``.onnx``: ONNX Runtime),
            a checkpoint (``.ckpt``: PyTorch), or a folder: a training run (its ``best.ckpt``) or an
            export folder (its engine when TensorRT is installed, else ``model.onnx`` on the CPU or
            ``model.fp16.onnx`` with a GPU build of ONNX Runtime).
        backend: ``auto`` (by suffix) or the backend to insist on.
        **options: passed to the runner (``threads``, ``providers``, ``cuda_lib``, ``fp16``, ...); options
            the chosen runner does not take are left out, so one call serves every backend.

    Raises:
        ModelError: the file is missing, has no sidecar, or does not suit ``backend``.
    """
    if backend not in BACKENDS:
        raise ModelError(f"unknown backend {backend!r}; choose from {', '.join(BACKENDS)}")
    path = Path(path)
    if not path.exists():
        raise ModelError(f"no model at {path}")
    if path.is_dir():
        path = _from_folder(path, backend)
    suffix = path.suffix.lower()
    kind = {".onnx": "onnxruntime", ".ckpt": "torch", **{s: "tensorrt" for s in _ENGINE}}.get(suffix)
    if kind is None:
        raise ModelError(f"{path.name}: unknown model type; expected .engine/.plan, .onnx, .ckpt or a folder")
    if backend not in ("auto", kind):
        raise ModelError(f"{path.name} is a {kind} model; --backend {backend} needs "
                         f"{ {'tensorrt': 'an .engine', 'onnxruntime': 'an .onnx file', 'torch': 'a .ckpt'}[backend] }")
    cls: type[Runner]
    if kind == "tensorrt":
        from .runners.tensorrt import TensorRTRunner

        cls = TensorRTRunner
    elif kind == "onnxruntime":
        from .runners.onnxruntime import OnnxRuntimeRunner

        cls = OnnxRuntimeRunner
    else:
        from .runners.torch import TorchRunner

        cls = TorchRunner
    accepted = inspect.signature(cls).parameters
    return cls(path, **{k: v for k, v in options.items() if k in accepted and v is not None})
