"""``Cuda`` on pycuda: the device's primary context, pushed and popped around every call.

``pycuda.autoinit`` is never used: it creates a context of its own, which PyTorch and TensorRT would
not share. Here ``Device(i).retain_primary_context()`` gives the context the CUDA runtime (and so
PyTorch and TensorRT) uses, and each call makes it current in the calling thread for its duration.
The kernels are compiled once per device with ``pycuda.compiler.SourceModule`` (nvcc, with pycuda's
on-disk cache). pycuda has no stream capture, so CUDA graphs need cuda-python.

pycuda is imported when a ``PyCuda`` is made, never when this module is imported.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

import numpy as np

from ..core.errors import UserError
from .base import Cuda, CudaError, DeviceBuffer, Event, HostBuffer, Stream, native
from .kernels import BLOCK, KERNEL_SOURCE, blocks

__all__ = ["PyCuda"]

_STREAM_NON_BLOCKING = 1  # CU_STREAM_NON_BLOCKING; pycuda's Stream(flags) passes it to cuStreamCreate


@contextlib.contextmanager
def _errors(call: str) -> Iterator[None]:
    """pycuda's exceptions as CudaError naming the call."""
    import pycuda.driver as drv

    try:
        yield
    except drv.Error as exc:
        raise CudaError(f"{call} failed: {exc}") from exc


class _Stream(Stream):
    def __init__(self, cuda: PyCuda, raw: Any) -> None:
        self._cuda, self.raw = cuda, raw

    @property
    def handle(self) -> int:
        return int(self.raw.handle)

    def synchronize(self) -> None:
        with self._cuda.context(), _errors("cuStreamSynchronize"):
            self.raw.synchronize()

    def wait(self, event: Event) -> None:
        with self._cuda.context(), _errors("cuStreamWaitEvent"):
            self.raw.wait_for_event(_raw(event))

    def free(self) -> None:
        self.raw = None  # pycuda destroys the stream when its last reference goes


def _raw(event: Event) -> Any:
    return native(event, _Event, "pycuda")


def _sraw(stream: Stream) -> Any:
    return native(stream, _Stream, "pycuda")


class _Event(Event):
    def __init__(self, cuda: PyCuda, raw: Any, timing: bool) -> None:
        self._cuda, self.raw, self.timing = cuda, raw, timing

    def record(self, stream: Stream) -> None:
        with self._cuda.context(), _errors("cuEventRecord"):
            self.raw.record(_sraw(stream))

    def synchronize(self) -> None:
        with self._cuda.context(), _errors("cuEventSynchronize"):
            self.raw.synchronize()

    def query(self) -> bool:
        with self._cuda.context(), _errors("cuEventQuery"):
            return bool(self.raw.query())

    def elapsed_ms(self, start: Event) -> float:
        if not (self.timing and getattr(start, "timing", False)):
            raise ValueError("elapsed_ms needs two events made with timing=True")
        with self._cuda.context(), _errors("cuEventElapsedTime"):
            return float(self.raw.time_since(_raw(start)))

    def free(self) -> None:
        self.raw = None


class _DeviceBuffer(DeviceBuffer):
    def __init__(self, cuda: PyCuda, allocation: Any, nbytes: int) -> None:
        self._cuda, self._allocation = cuda, allocation
        self.ptr, self.nbytes = int(allocation), nbytes

    def free(self) -> None:
        if self._allocation is not None:
            allocation, self._allocation = self._allocation, None
            with self._cuda.context(), _errors("cuMemFree"):
                allocation.free()


class _HostBuffer(HostBuffer):
    def __init__(self, cuda: PyCuda, array: np.ndarray) -> None:
        self._cuda, self._array = cuda, array
        self.ptr, self.nbytes = int(array.ctypes.data), int(array.nbytes)

    def free(self) -> None:
        if self._array is not None:
            array, self._array = self._array, None
            with self._cuda.context(), _errors("cuMemFreeHost"):
                array.base.free()  # the array's base is pycuda's PagelockedHostAllocation


class PyCuda(Cuda):
    """``Cuda`` for one device through pycuda, in the device's primary context.

    Args:
        device: the CUDA device index.

    Raises:
        UserError: pycuda does not load, or no usable GPU (or no such device) is visible.
    """

    name = "pycuda"

    def __init__(self, device: int = 0) -> None:
        super().__init__(device)
        import pycuda.driver as drv

        try:
            drv.init()
            count = drv.Device.count()
        except drv.Error as exc:
            raise UserError(f"CUDA is not usable here ({exc}): run on a machine with an NVIDIA GPU and its driver") \
                from None
        if not 0 <= device < count:
            raise UserError(f"there is no CUDA device {device}: this machine has {count} (0 to {count - 1})")
        self._device = drv.Device(device)
        with _errors("cuDevicePrimaryCtxRetain"):
            self._context = self._device.retain_primary_context()
        self._module: Any = None
        self._functions: dict[str, Any] = {}
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def context(self) -> Iterator[None]:
        import pycuda.driver as drv

        with _errors("cuCtxPushCurrent"):
            self._context.push()
        try:
            yield
        finally:
            drv.Context.pop()

    def compute_capability(self) -> str:
        major, minor = self._device.compute_capability()
        return f"{major}.{minor}"

    def device_name(self) -> str:
        return str(self._device.name())

    def stream(self) -> Stream:
        import pycuda.driver as drv

        with self.context(), _errors("cuStreamCreate"):
            return _Stream(self, drv.Stream(_STREAM_NON_BLOCKING))

    def event(self, timing: bool = True) -> Event:
        import pycuda.driver as drv

        flags = drv.event_flags.DEFAULT if timing else drv.event_flags.DISABLE_TIMING
        with self.context(), _errors("cuEventCreate"):
            return _Event(self, drv.Event(flags), timing)

    def device_buffer(self, nbytes: int) -> DeviceBuffer:
        import pycuda.driver as drv

        nbytes = int(nbytes)
        with self.context(), _errors(f"cuMemAlloc({nbytes})"):
            return _DeviceBuffer(self, drv.mem_alloc(max(nbytes, 1)), nbytes)

    def host_buffer(self, shape: tuple[int, ...] | int, dtype: np.dtype | str | type = np.uint8) -> HostBuffer:
        import pycuda.driver as drv

        shape = (shape,) if isinstance(shape, int) else tuple(int(d) for d in shape)
        with self.context(), _errors("cuMemHostAlloc"):
            return _HostBuffer(self, drv.pagelocked_empty(shape, np.dtype(dtype)))

    def _htod(self, dst: int, src: np.ndarray, stream: Stream) -> None:
        import pycuda.driver as drv

        with self.context(), _errors("cuMemcpyHtoDAsync"):
            drv.memcpy_htod_async(dst, src, _sraw(stream))

    def _dtoh(self, dst: np.ndarray, src: int, stream: Stream) -> None:
        import pycuda.driver as drv

        with self.context(), _errors("cuMemcpyDtoHAsync"):
            drv.memcpy_dtoh_async(dst, src, _sraw(stream))

    def _dtod(self, dst: int, src: int, nbytes: int, stream: Stream) -> None:
        import pycuda.driver as drv

        with self.context(), _errors("cuMemcpyDtoDAsync"):
            drv.memcpy_dtod_async(dst, src, nbytes, _sraw(stream))

    def _function(self, kernel: str) -> Any:
        with self._lock:
            if kernel not in self._functions:
                if self._module is None:
                    from pycuda.compiler import SourceModule

                    try:
                        with self.context():  # nvcc targets the current context's device
                            self._module = SourceModule(KERNEL_SOURCE, no_extern_c=True)
                    except Exception as exc:  # nvcc missing or failing: pycuda raises CompileError or OSError
                        raise CudaError(f"pycuda could not compile the conversion kernels ({exc}); install the "
                                        "CUDA toolkit (nvcc) or use cuda_lib='cuda-python'") from exc
                self._functions[kernel] = self._module.get_function(kernel)
            return self._functions[kernel]

    def _launch(self, kernel: str, stream: Stream, threads: int, pointers: tuple[int, ...],
                ints: tuple[int, ...]) -> None:
        function = self._function(kernel)
        args = [np.uintp(p) for p in pointers] + [np.int32(i) for i in ints]
        with self.context(), _errors(f"cuLaunchKernel({kernel})"):
            function(*args, block=(BLOCK, 1, 1), grid=(blocks(threads), 1), stream=_sraw(stream))
