"""A small CUDA layer: streams, events, device and pinned host buffers, async copies and two frame kernels.

One interface (``Cuda``, in ``runtime.cuda.base``) with two implementations, picked by ``get_cuda``:
cuda-python (``cuda.bindings``, what NVIDIA's TensorRT samples use) and pycuda. Both work in the
device's primary context, so they share a process with PyTorch and TensorRT::

    from runtime.cuda import get_cuda

    cuda = get_cuda()                        # cuda-python if it imports, else pycuda
    stream, frame = cuda.stream(), cuda.host_buffer((720, 1280, 3), "uint8")
    device = cuda.device_buffer(frame.nbytes)
    cuda.htod_async(device, frame, stream)
    stream.synchronize()

Importing this package imports neither library; ``get_cuda`` does.
"""

from __future__ import annotations

import threading

from ..core.errors import UserError
from .base import Cuda, CudaError, CudaGraph, DeviceBuffer, Event, HostBuffer, Stream
from .kernels import frame_to_tensor_reference, tensor_to_frame_reference

__all__ = ["get_cuda", "available_libs", "unavailable_reason", "LIBS", "Cuda", "CudaError", "CudaGraph", "Stream",
           "Event", "DeviceBuffer", "HostBuffer", "frame_to_tensor_reference", "tensor_to_frame_reference"]

LIBS = ("cuda-python", "pycuda")
"""The CUDA libraries, in the order ``lib="auto"`` tries them."""

_PACKAGES = {"cuda-python": ("cuda.bindings.runtime", "cuda-python"), "pycuda": ("pycuda.driver", "pycuda")}
_INSTANCES: dict[tuple[str, int], Cuda] = {}
_LOCK = threading.Lock()


def unavailable_reason(lib: str) -> str | None:
    """Why ``lib`` (``cuda-python`` or ``pycuda``) cannot be imported here, or None when it can."""
    module, package = _PACKAGES[lib]
    try:
        __import__(module)
    except ImportError as exc:
        missing = getattr(exc, "name", None) or ""
        if missing and module.startswith(missing):
            return f"{package} is not installed (pip install {package})"
        return f"{package} is installed but does not load ({exc}); reinstall it with pip install {package}"
    return None


def available_libs() -> list[str]:
    """The CUDA libraries that import here, in the order ``get_cuda("auto")`` prefers them."""
    return [lib for lib in LIBS if unavailable_reason(lib) is None]


def get_cuda(lib: str = "auto", device: int = 0) -> Cuda:
    """The ``Cuda`` for ``device`` through ``lib``; one per library and device per process.

    Args:
        lib: ``auto`` (cuda-python if it imports, else pycuda), ``cuda-python``, ``pycuda``, or ``sim`` (the
            simulation on the CPU, ``runtime.cuda.sim``: for tests and dry runs; never chosen by ``auto``).
        device: the CUDA device index.

    Raises:
        UserError: ``lib`` is unknown, not installed (the message says what to pip install), or no
            usable GPU is visible.
    """
    if lib == "sim":
        with _LOCK:
            if ("sim", int(device)) not in _INSTANCES:
                from .sim import SimCuda

                _INSTANCES["sim", int(device)] = SimCuda(device=int(device))
            return _INSTANCES["sim", int(device)]
    if lib not in ("auto", *LIBS):
        raise UserError(f"unknown CUDA library {lib!r}; choose auto, {' or '.join(LIBS)}")
    if lib == "auto":
        reasons = {name: unavailable_reason(name) for name in LIBS}
        ready = [name for name, reason in reasons.items() if reason is None]
        if not ready:
            raise UserError("no CUDA Python library is available: pip install cuda-python (or pip install pycuda) "
                            f"on a machine with an NVIDIA GPU ({'; '.join(filter(None, reasons.values()))})")
        lib = ready[0]
    elif reason := unavailable_reason(lib):
        other = next(name for name in LIBS if name != lib)
        raise UserError(f"the CUDA library {lib} is unavailable: {reason}; or use {other}")
    with _LOCK:
        key = (lib, int(device))
        if key not in _INSTANCES:
            if lib == "cuda-python":
                from .cudapython_impl import CudaPython

                _INSTANCES[key] = CudaPython(int(device))
            else:
                from .pycuda_impl import PyCuda

                _INSTANCES[key] = PyCuda(int(device))
        return _INSTANCES[key]
