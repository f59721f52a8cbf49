"""The CUDA layer's one interface: streams, events, device and pinned host buffers, async copies, two kernels.

``runtime.cuda.get_cuda`` returns a ``Cuda`` backed by cuda-python (``cuda.bindings``) or pycuda; both
use the device's primary context, so they share a process with PyTorch and TensorRT. This module
imports only NumPy: the CUDA libraries load in their implementation modules, when asked for.

The two kernels convert video frames on the GPU: ``frame_to_tensor`` (uint8 HxWx3 BGR -> 1x3xHxW RGB
in 0..1, FP32 or FP16) and ``tensor_to_frame`` (the inverse). Their CUDA C source and the NumPy
definitions the tests hold them to are in ``runtime.cuda.kernels``.
"""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod

from collections.abc import Callable
from typing import Any

import numpy as np

from .kernels import KERNELS, TENSOR_DTYPES

__all__ = ["CudaError", "Stream", "Event", "DeviceBuffer", "HostBuffer", "CudaGraph", "Cuda"]


class CudaError(RuntimeError):
    """A CUDA call failed; the message names the call and the CUDA error (``cudaErrorMemoryAllocation``)."""


class Stream(ABC):
    """A CUDA stream: work queued on it runs in order; work on different streams may overlap."""

    @property
    @abstractmethod
    def handle(self) -> int:
        """The raw ``cudaStream_t`` as an int (what TensorRT's ``execute_async_v3`` takes)."""

    @abstractmethod
    def synchronize(self) -> None:
        """Block the calling thread until all work queued on this stream has finished."""

    @abstractmethod
    def wait(self, event: Event) -> None:
        """Make work queued on this stream from now on wait for ``event`` (its latest ``record``)."""

    @abstractmethod
    def free(self) -> None:
        """Destroy the stream (idempotent); queued work still completes."""


class Event(ABC):
    """A CUDA event: a marker in a stream, for ordering streams and timing GPU work."""

    @abstractmethod
    def record(self, stream: Stream) -> None:
        """Mark the current end of ``stream``'s queue; the event completes when the GPU gets there."""

    @abstractmethod
    def synchronize(self) -> None:
        """Block until the event has completed."""

    @abstractmethod
    def query(self) -> bool:
        """True when the event has completed (never blocks)."""

    @abstractmethod
    def elapsed_ms(self, start: Event) -> float:
        """GPU milliseconds from ``start`` to this event; both must have completed and been made with timing."""

    @abstractmethod
    def free(self) -> None:
        """Destroy the event (idempotent)."""


class DeviceBuffer(ABC):
    """Linear device memory."""

    ptr: int
    """The device address."""
    nbytes: int

    @abstractmethod
    def free(self) -> None:
        """Release the memory (idempotent); no queued work may still use it."""


class HostBuffer(ABC):
    """Page-locked (pinned) host memory, so copies to and from the GPU are asynchronous and fast."""

    ptr: int
    """The host address."""
    nbytes: int
    _array: np.ndarray | None
    """Set by the implementation; None once freed."""

    @property
    def array(self) -> np.ndarray:
        """A NumPy view of the memory, in the shape and type it was made with."""
        if self._array is None:
            raise RuntimeError("this pinned host buffer has been freed")
        return self._array

    @abstractmethod
    def free(self) -> None:
        """Release the memory (idempotent); ``array`` must not be used afterwards."""

    def view(self, shape: tuple[int, ...], dtype: np.dtype | str | type) -> np.ndarray:
        """The first ``prod(shape)`` elements of ``dtype`` as an array of ``shape`` (for a smaller tensor)."""
        dtype = np.dtype(dtype)
        count = int(np.prod(shape, dtype=np.int64))
        if count * dtype.itemsize > self.nbytes:
            raise ValueError(f"{shape} of {dtype} needs {count * dtype.itemsize} bytes; the buffer has {self.nbytes}")
        return self.array.reshape(-1).view(np.uint8)[:count * dtype.itemsize].view(dtype).reshape(shape)


class CudaGraph(ABC):
    """An instantiated CUDA graph (captured stream work), replayed with one launch."""

    @abstractmethod
    def launch(self, stream: Stream) -> None:
        """Queue the whole graph on ``stream``."""

    @abstractmethod
    def free(self) -> None:
        """Destroy the graph (idempotent)."""


def native(obj: object, kind: type, lib: str) -> Any:
    """The library's own handle inside ``obj``, which must be a ``kind`` made by the ``lib`` implementation."""
    if not isinstance(obj, kind):
        raise TypeError(f"expected a {kind.__bases__[0].__name__.lower()} made by the {lib} Cuda, "
                        f"got {type(obj).__name__}")
    return obj.raw  # type: ignore[attr-defined]


def _host_bytes(array: np.ndarray | HostBuffer, nbytes: int | None, what: str) -> tuple[np.ndarray, int]:
    """A flat uint8 view of a host buffer or contiguous array, and the byte count to copy."""
    data = array.array if isinstance(array, HostBuffer) else array
    if not isinstance(data, np.ndarray) or not data.flags.c_contiguous:
        raise ValueError(f"{what} must be a HostBuffer or a C-contiguous NumPy array")
    flat = data.reshape(-1).view(np.uint8)
    return flat, _count(nbytes, flat.nbytes, what)


def _itemsize(dtype: str) -> int:
    if dtype not in TENSOR_DTYPES:
        raise ValueError(f"dtype {dtype!r}: the kernels take {' or '.join(TENSOR_DTYPES)}")
    return TENSOR_DTYPES[dtype].itemsize


def _count(nbytes: int | None, available: int, what: str) -> int:
    count = available if nbytes is None else int(nbytes)
    if not 0 <= count <= available:
        raise ValueError(f"cannot copy {count} bytes: {what} holds {available}")
    return count


class Cuda(ABC):
    """One CUDA device through one Python CUDA library (pycuda or cuda-python).

    Every method makes the device current in the calling thread for its own calls, so one ``Cuda``
    serves any thread. Use ``context()`` around code of your own that needs the device current (TensorRT
    calls, for example). Copies and kernels are asynchronous: keep host arrays alive and unchanged until
    the stream (or an event recorded after the work) has been synchronized.
    """

    name: str = "base"
    """``pycuda``, ``cuda-python`` or ``sim``."""

    host_memory: bool = False
    """Whether "device" buffers are host memory (``sim``, the simulation): another library then reads and writes
    them as CPU arrays at their addresses."""

    def __init__(self, device: int) -> None:
        self.device = device

    def __repr__(self) -> str:
        return f"{type(self).__name__}(device={self.device})"

    # -- device ------------------------------------------------------------------------------------------------

    @abstractmethod
    def context(self) -> contextlib.AbstractContextManager[None]:
        """Make this device's primary context current in the calling thread for the ``with`` block."""

    @abstractmethod
    def compute_capability(self) -> str:
        """The device's compute capability, such as ``"9.0"``."""

    @abstractmethod
    def device_name(self) -> str:
        """The device's name, such as ``"NVIDIA H100 80GB HBM3"``."""

    # -- objects ------------------------------------------------------------------------------------------------

    @abstractmethod
    def stream(self) -> Stream:
        """A new non-blocking stream (it does not synchronise with the legacy default stream)."""

    @abstractmethod
    def event(self, timing: bool = True) -> Event:
        """A new event; ``timing=False`` makes a lighter one for ordering only (no ``elapsed_ms``)."""

    @abstractmethod
    def device_buffer(self, nbytes: int) -> DeviceBuffer:
        """``nbytes`` of device memory (uninitialised)."""

    @abstractmethod
    def host_buffer(self, shape: tuple[int, ...] | int, dtype: np.dtype | str | type = np.uint8) -> HostBuffer:
        """A pinned host array of ``shape`` and ``dtype`` (uninitialised)."""

    # -- copies ---------------------------------------------------------------------------------------------

    def htod_async(self, dst: DeviceBuffer, src: HostBuffer | np.ndarray, stream: Stream,
                   nbytes: int | None = None) -> None:
        """Queue a host -> device copy of ``nbytes`` (default: all of ``src``) on ``stream``.

        Args:
            dst: the device buffer (at least ``nbytes`` long).
            src: a pinned ``HostBuffer`` (asynchronous) or a C-contiguous array (pageable memory: the copy
                may finish before this returns, but keep the array alive until the stream is synchronized).
            stream: the stream that orders the copy.
            nbytes: bytes to copy from the start of both buffers.
        """
        flat, count = _host_bytes(src, nbytes, "the source")
        _count(count, dst.nbytes, "the device buffer")
        if count:
            self._htod(dst.ptr, flat[:count], stream)

    def dtoh_async(self, dst: HostBuffer | np.ndarray, src: DeviceBuffer, stream: Stream,
                   nbytes: int | None = None) -> None:
        """Queue a device -> host copy of ``nbytes`` (default: all of ``dst``) on ``stream``.

        The host memory holds the data only once the stream (or a later event) is synchronized.
        """
        flat, count = _host_bytes(dst, nbytes, "the destination")
        _count(count, src.nbytes, "the device buffer")
        if count:
            self._dtoh(flat[:count], src.ptr, stream)

    def dtod_async(self, dst: DeviceBuffer, src: DeviceBuffer, stream: Stream, nbytes: int | None = None) -> None:
        """Queue a device -> device copy of ``nbytes`` (default: all of ``src``) on ``stream``."""
        count = _count(nbytes, src.nbytes, "the source buffer")
        _count(count, dst.nbytes, "the destination buffer")
        if count:
            self._dtod(dst.ptr, src.ptr, count, stream)

    @abstractmethod
    def _htod(self, dst: int, src: np.ndarray, stream: Stream) -> None: ...

    @abstractmethod
    def _dtoh(self, dst: np.ndarray, src: int, stream: Stream) -> None: ...

    @abstractmethod
    def _dtod(self, dst: int, src: int, nbytes: int, stream: Stream) -> None: ...

    # -- kernels --------------------------------------------------------------------------------------------

    def frame_to_tensor(self, src_u8: DeviceBuffer, dst: DeviceBuffer, height: int, width: int, stream: Stream, *,
                        dtype: str = "float32") -> None:
        """Queue the conversion of a uint8 HxWx3 BGR frame to a 1x3xHxW RGB tensor in 0..1 on ``stream``.

        Args:
            src_u8: the frame, ``height * width * 3`` bytes, rows packed.
            dst: the tensor, ``3 * height * width`` elements of ``dtype``.
            height: frame height in pixels.
            width: frame width in pixels.
            stream: the stream that orders the kernel.
            dtype: ``float32`` or ``float16`` (the engine input's type).
        """
        pixels = self._check_kernel(src_u8, 3, dst, 3 * _itemsize(dtype), height, width)
        self._launch(KERNELS["frame_to_tensor", dtype], stream, pixels, (src_u8.ptr, dst.ptr), (pixels,))

    def tensor_to_frame(self, src: DeviceBuffer, dst_u8: DeviceBuffer, height: int, width: int, stream: Stream, *,
                        dtype: str = "float32", srgb: bool = False) -> None:
        """Queue the conversion of a 1x3xHxW RGB tensor to a uint8 HxWx3 BGR frame on ``stream``.

        Values are clipped to 0..1, optionally encoded from linear light to sRGB, and rounded half up.

        Args:
            src: the tensor, ``3 * height * width`` elements of ``dtype``.
            dst_u8: the frame, ``height * width * 3`` bytes.
            height: frame height in pixels.
            width: frame width in pixels.
            stream: the stream that orders the kernel.
            dtype: ``float32`` or ``float16`` (the engine output's type).
            srgb: encode linear light to sRGB (for models whose output is linear).
        """
        pixels = self._check_kernel(src, 3 * _itemsize(dtype), dst_u8, 3, height, width)
        self._launch(KERNELS["tensor_to_frame", dtype], stream, pixels, (src.ptr, dst_u8.ptr), (pixels, int(srgb)))

    @staticmethod
    def _check_kernel(src: DeviceBuffer, src_bytes_per_pixel: int, dst: DeviceBuffer, dst_bytes_per_pixel: int,
                      height: int, width: int) -> int:
        if height < 1 or width < 1:
            raise ValueError(f"frame size {height}x{width} must be at least 1x1")
        pixels = int(height) * int(width)
        if pixels >= 2**31:
            raise ValueError(f"frame size {height}x{width} is too large for the kernels")
        for buffer, per_pixel, what in ((src, src_bytes_per_pixel, "source"),
                                        (dst, dst_bytes_per_pixel, "destination")):
            if buffer.nbytes < pixels * per_pixel:
                raise ValueError(f"the {what} buffer holds {buffer.nbytes} bytes; a {height}x{width} frame needs "
                                 f"{pixels * per_pixel}")
        return pixels

    @abstractmethod
    def _launch(self, kernel: str, stream: Stream, threads: int, pointers: tuple[int, ...],
                ints: tuple[int, ...]) -> None:
        """Queue ``kernel(*pointers, *ints)`` on ``stream`` with one thread per element of ``threads``."""

    def prepare_kernels(self) -> None:
        """Compile and load the conversion kernels now (they load on first use otherwise).

        Raises:
            CudaError: they cannot be compiled or loaded here (NVRTC or nvcc missing, a driver too old); the
                message says what to install.
        """
        with self.context():
            for kernel in KERNELS.values():
                self._function(kernel)

    @abstractmethod
    def _function(self, kernel: str) -> Any:
        """The loaded kernel ``kernel`` (compiled and loaded on first use)."""

    # -- other libraries' work ------------------------------------------------------------------------------

    def run_in_order(self, stream: Stream, work: Callable[[], object], *, synchronous: bool) -> None:
        """Run ``work``, host code that launches GPU work of another library, in ``stream``'s order.

        Args:
            stream: the stream whose order the work joins: after everything queued on it so far, before
                anything queued after this call.
            work: host code that queues or runs GPU work on the device buffers (a PyTorch forward, an ONNX
                Runtime run).
            synchronous: False when ``work`` queues its GPU work on ``stream`` itself (PyTorch on the stream as
                an external stream): it is called now. True when it runs its GPU work to completion on a stream
                of its own before it returns (an ONNX Runtime run): ``stream`` is synchronized first, so the work
                sees everything queued before it, and work queued after this call follows it.
        """
        if synchronous:
            stream.synchronize()
        work()

    # -- CUDA graphs ----------------------------------------------------------------------------------------

    @property
    def supports_graphs(self) -> bool:
        """Whether ``begin_capture`` / ``end_capture`` are available with this library."""
        return False

    def begin_capture(self, stream: Stream) -> None:
        """Start capturing the work queued on ``stream`` (thread-local mode) into a graph."""
        raise NotImplementedError(f"CUDA graphs are not available with {self.name}; use cuda_lib='cuda-python'")

    def end_capture(self, stream: Stream) -> CudaGraph | None:
        """Stop capturing; the instantiated graph, or None when the capture was invalidated (nothing to replay)."""
        raise NotImplementedError(f"CUDA graphs are not available with {self.name}; use cuda_lib='cuda-python'")
