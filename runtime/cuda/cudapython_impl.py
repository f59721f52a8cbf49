"""``Cuda`` on cuda-python (``cuda.bindings``): the runtime API for memory, streams, events and graphs.

The runtime API works in each device's primary context (``cudaSetDevice``), the one PyTorch and
TensorRT use. The kernels are compiled once per process with NVRTC (to a cubin for the GPU's own
architecture when NVRTC knows it, else to PTX for the newest one it knows) and loaded and launched
with the driver API (``cuModuleLoadData``, ``cuLaunchKernel``). Every call's status is checked: a
failure raises ``CudaError`` naming the call and the CUDA error.

``cuda.bindings`` is imported when a ``CudaPython`` is made, never when this module is imported.
"""

from __future__ import annotations

import contextlib
import ctypes
import threading
from collections.abc import Iterator
from typing import Any

import numpy as np

from ..core.errors import UserError
from .base import Cuda, CudaError, CudaGraph, DeviceBuffer, Event, HostBuffer, Stream, native
from .kernels import BLOCK, KERNEL_SOURCE, blocks

__all__ = ["CudaPython", "compile_kernels", "native_handle"]

_IMAGES: dict[int, tuple[bytes, str]] = {}
_IMAGES_LOCK = threading.Lock()


def _error_name(err: Any) -> str:
    """The CUDA name of a status returned by any of cuda.bindings' modules."""
    from cuda.bindings import driver, nvrtc
    from cuda.bindings import runtime as cudart

    try:
        if isinstance(err, cudart.cudaError_t):
            return cudart.cudaGetErrorName(err)[1].decode()
        if isinstance(err, driver.CUresult):
            status, name = driver.cuGetErrorName(err)
            return name.decode() if status.value == 0 else err.name
        if isinstance(err, nvrtc.nvrtcResult):
            return nvrtc.nvrtcGetErrorString(err)[1].decode()
    except Exception:  # naming the error must never hide it
        pass
    return str(err)


def _check(result: tuple, call: str) -> Any:
    """The value(s) a cuda.bindings call returned after its status; CudaError when the status is not success."""
    err, *values = result
    if err.value != 0:
        raise CudaError(f"{call} failed: {_error_name(err)}")
    if not values:
        return None
    return values[0] if len(values) == 1 else tuple(values)


def compile_kernels(arch: int) -> tuple[bytes, str]:
    """Compile ``KERNEL_SOURCE`` with NVRTC for compute capability ``arch`` (``90`` for 9.0); needs no GPU.

    Returns:
        ``(image, kind)``: a cubin (``kind == "cubin"``) when NVRTC supports ``sm_<arch>``, else PTX for
        the newest architecture below it that NVRTC supports (``kind == "ptx"``, NUL-terminated), which
        the driver compiles on load.

    Raises:
        CudaError: NVRTC supports no architecture up to ``arch``, or the source does not compile (the
            message carries NVRTC's log).
    """
    with _IMAGES_LOCK:
        if arch in _IMAGES:
            return _IMAGES[arch]
        from cuda.bindings import nvrtc

        try:
            supported = list(_check(nvrtc.nvrtcGetSupportedArchs(), "nvrtcGetSupportedArchs"))
        except CudaError:
            raise
        except Exception as exc:  # cuda.bindings loads libnvrtc on first use; it is an optional dependency
            raise CudaError(f"NVRTC, which compiles the conversion kernels, does not load ({exc}): "
                            "pip install 'cuda-python[all]'") from exc
        if arch in supported:
            option, kind = f"--gpu-architecture=sm_{arch}", "cubin"
        elif older := [a for a in supported if a < arch]:
            option, kind = f"--gpu-architecture=compute_{max(older)}", "ptx"
        else:
            major, minor = _check(nvrtc.nvrtcVersion(), "nvrtcVersion")
            raise CudaError(f"NVRTC {major}.{minor} cannot compile for compute capability {arch // 10}.{arch % 10} "
                            f"(it supports {', '.join(map(str, supported))}); pip install cuda-python matching "
                            "your driver")
        program = _check(nvrtc.nvrtcCreateProgram(KERNEL_SOURCE.encode(), b"edgelight_kernels.cu", 0, [], []),
                         "nvrtcCreateProgram")
        try:
            options = [option.encode()]
            (status,) = nvrtc.nvrtcCompileProgram(program, len(options), options)
            if status.value != 0:
                size = _check(nvrtc.nvrtcGetProgramLogSize(program), "nvrtcGetProgramLogSize")
                log = b" " * size
                _check(nvrtc.nvrtcGetProgramLog(program, log), "nvrtcGetProgramLog")
                raise CudaError(f"nvrtcCompileProgram failed: {_error_name(status)}\n"
                                f"{log.rstrip(b' ').rstrip(bytes(1)).decode(errors='replace')}")
            if kind == "cubin":
                size = _check(nvrtc.nvrtcGetCUBINSize(program), "nvrtcGetCUBINSize")
                image = b" " * size
                _check(nvrtc.nvrtcGetCUBIN(program, image), "nvrtcGetCUBIN")
            else:
                size = _check(nvrtc.nvrtcGetPTXSize(program), "nvrtcGetPTXSize")  # counts the closing NUL
                image = b" " * size
                _check(nvrtc.nvrtcGetPTX(program, image), "nvrtcGetPTX")
        finally:
            nvrtc.nvrtcDestroyProgram(program)
        _IMAGES[arch] = (image, kind)
        return _IMAGES[arch]


def native_handle(obj: Any) -> int:
    """The address a cuda.bindings object wraps (a ``cudaStream_t``'s ``cudaStream_t``), as an int.

    ``cuda.bindings.utils.get_cuda_native_handle`` where it exists (12.9.1 and 13); ``int(obj)``, which those
    versions deprecate, only before them.
    """
    try:
        from cuda.bindings.utils import get_cuda_native_handle
    except ImportError:
        return int(obj)
    return int(get_cuda_native_handle(obj))


class _Stream(Stream):
    def __init__(self, raw: Any) -> None:
        self.raw = raw

    @property
    def handle(self) -> int:
        return native_handle(self.raw)

    def synchronize(self) -> None:
        from cuda.bindings import runtime as cudart

        _check(cudart.cudaStreamSynchronize(self.raw), "cudaStreamSynchronize")

    def wait(self, event: Event) -> None:
        from cuda.bindings import runtime as cudart

        _check(cudart.cudaStreamWaitEvent(self.raw, _raw(event), 0), "cudaStreamWaitEvent")

    def free(self) -> None:
        from cuda.bindings import runtime as cudart

        if self.raw is not None:
            raw, self.raw = self.raw, None
            _check(cudart.cudaStreamDestroy(raw), "cudaStreamDestroy")


def _raw(event: Event) -> Any:
    return native(event, _Event, "cuda-python")


def _sraw(stream: Stream) -> Any:
    return native(stream, _Stream, "cuda-python")


class _Event(Event):
    def __init__(self, raw: Any, timing: bool) -> None:
        self.raw, self.timing = raw, timing

    def record(self, stream: Stream) -> None:
        from cuda.bindings import runtime as cudart

        _check(cudart.cudaEventRecord(self.raw, _sraw(stream)), "cudaEventRecord")

    def synchronize(self) -> None:
        from cuda.bindings import runtime as cudart

        _check(cudart.cudaEventSynchronize(self.raw), "cudaEventSynchronize")

    def query(self) -> bool:
        from cuda.bindings import runtime as cudart

        (err,) = cudart.cudaEventQuery(self.raw)
        if err == cudart.cudaError_t.cudaErrorNotReady:
            return False
        _check((err,), "cudaEventQuery")
        return True

    def elapsed_ms(self, start: Event) -> float:
        from cuda.bindings import runtime as cudart

        if not (self.timing and getattr(start, "timing", False)):
            raise ValueError("elapsed_ms needs two events made with timing=True")
        return float(_check(cudart.cudaEventElapsedTime(_raw(start), self.raw), "cudaEventElapsedTime"))

    def free(self) -> None:
        from cuda.bindings import runtime as cudart

        if self.raw is not None:
            raw, self.raw = self.raw, None
            _check(cudart.cudaEventDestroy(raw), "cudaEventDestroy")


class _DeviceBuffer(DeviceBuffer):
    def __init__(self, ptr: int, nbytes: int) -> None:
        self.ptr, self.nbytes, self._live = ptr, nbytes, True

    def free(self) -> None:
        from cuda.bindings import runtime as cudart

        if self._live:
            self._live = False
            _check(cudart.cudaFree(self.ptr), "cudaFree")


class _HostBuffer(HostBuffer):
    def __init__(self, ptr: int, nbytes: int, shape: tuple[int, ...], dtype: np.dtype) -> None:
        self.ptr, self.nbytes = ptr, nbytes
        raw = np.ctypeslib.as_array((ctypes.c_uint8 * max(nbytes, 1)).from_address(ptr))
        self._array: np.ndarray | None = raw[:nbytes].view(dtype).reshape(shape)

    def free(self) -> None:
        from cuda.bindings import runtime as cudart

        if self._array is not None:
            self._array = None
            _check(cudart.cudaFreeHost(self.ptr), "cudaFreeHost")


class _Graph(CudaGraph):
    def __init__(self, raw: Any) -> None:
        self.raw = raw

    def launch(self, stream: Stream) -> None:
        from cuda.bindings import runtime as cudart

        if self.raw is None:
            raise RuntimeError("this CUDA graph has been freed")
        _check(cudart.cudaGraphLaunch(self.raw, _sraw(stream)), "cudaGraphLaunch")

    def free(self) -> None:
        from cuda.bindings import runtime as cudart

        if self.raw is not None:
            raw, self.raw = self.raw, None
            _check(cudart.cudaGraphExecDestroy(raw), "cudaGraphExecDestroy")


class CudaPython(Cuda):
    """``Cuda`` for one device through cuda-python's runtime API (``cuda.bindings.runtime``).

    Args:
        device: the CUDA device index.

    Raises:
        UserError: cuda-python does not load, or no usable GPU (or no such device) is visible.
    """

    name = "cuda-python"

    def __init__(self, device: int = 0) -> None:
        super().__init__(device)
        from cuda.bindings import runtime as cudart

        err, count = cudart.cudaGetDeviceCount()
        if err.value != 0:
            raise UserError(f"CUDA is not usable here ({_error_name(err)}): run on a machine with an NVIDIA GPU "
                            "and a driver that supports your cuda-python version")
        if not 0 <= device < count:
            raise UserError(f"there is no CUDA device {device}: this machine has {count} (0 to {count - 1})")
        self._functions: dict[str, Any] = {}
        self._module: Any = None
        self._lock = threading.Lock()
        with self.context():
            _check(cudart.cudaFree(0), "cudaFree(0)")  # initialise the primary context now, not in a later call

    @contextlib.contextmanager
    def context(self) -> Iterator[None]:
        from cuda.bindings import runtime as cudart

        previous = _check(cudart.cudaGetDevice(), "cudaGetDevice")
        # Always: in a thread that has no context yet, cudaGetDevice answers 0 all the same, and only
        # cudaSetDevice binds the device's primary context (which the driver calls, cuModuleLoadData, need).
        _check(cudart.cudaSetDevice(self.device), "cudaSetDevice")
        try:
            yield
        finally:
            if previous != self.device:
                _check(cudart.cudaSetDevice(previous), "cudaSetDevice")

    def compute_capability(self) -> str:
        from cuda.bindings import runtime as cudart

        attr = cudart.cudaDeviceAttr
        major = _check(cudart.cudaDeviceGetAttribute(attr.cudaDevAttrComputeCapabilityMajor, self.device),
                       "cudaDeviceGetAttribute")
        minor = _check(cudart.cudaDeviceGetAttribute(attr.cudaDevAttrComputeCapabilityMinor, self.device),
                       "cudaDeviceGetAttribute")
        return f"{major}.{minor}"

    def device_name(self) -> str:
        from cuda.bindings import runtime as cudart

        props = _check(cudart.cudaGetDeviceProperties(self.device), "cudaGetDeviceProperties")
        name = props.name
        return (name.decode(errors="replace") if isinstance(name, bytes) else str(name)).rstrip("\x00").strip()

    def stream(self) -> Stream:
        from cuda.bindings import runtime as cudart

        with self.context():
            return _Stream(_check(cudart.cudaStreamCreateWithFlags(cudart.cudaStreamNonBlocking),
                                  "cudaStreamCreateWithFlags"))

    def event(self, timing: bool = True) -> Event:
        from cuda.bindings import runtime as cudart

        flags = cudart.cudaEventDefault if timing else cudart.cudaEventDisableTiming
        with self.context():
            return _Event(_check(cudart.cudaEventCreateWithFlags(flags), "cudaEventCreateWithFlags"), timing)

    def device_buffer(self, nbytes: int) -> DeviceBuffer:
        from cuda.bindings import runtime as cudart

        nbytes = int(nbytes)
        with self.context():
            return _DeviceBuffer(int(_check(cudart.cudaMalloc(max(nbytes, 1)), f"cudaMalloc({nbytes})")), nbytes)

    def host_buffer(self, shape: tuple[int, ...] | int, dtype: np.dtype | str | type = np.uint8) -> HostBuffer:
        from cuda.bindings import runtime as cudart

        shape = (shape,) if isinstance(shape, int) else tuple(int(d) for d in shape)
        dtype = np.dtype(dtype)
        nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        with self.context():
            ptr = int(_check(cudart.cudaMallocHost(max(nbytes, 1)), f"cudaMallocHost({nbytes})"))
        return _HostBuffer(ptr, nbytes, shape, dtype)

    def _copy(self, dst: int, src: int, nbytes: int, kind: Any, stream: Stream, call: str) -> None:
        from cuda.bindings import runtime as cudart

        _check(cudart.cudaMemcpyAsync(dst, src, nbytes, kind, _sraw(stream)), call)

    def _htod(self, dst: int, src: np.ndarray, stream: Stream) -> None:
        from cuda.bindings import runtime as cudart

        self._copy(dst, src.ctypes.data, src.nbytes, cudart.cudaMemcpyKind.cudaMemcpyHostToDevice, stream,
                   "cudaMemcpyAsync(host to device)")

    def _dtoh(self, dst: np.ndarray, src: int, stream: Stream) -> None:
        from cuda.bindings import runtime as cudart

        self._copy(dst.ctypes.data, src, dst.nbytes, cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost, stream,
                   "cudaMemcpyAsync(device to host)")

    def _dtod(self, dst: int, src: int, nbytes: int, stream: Stream) -> None:
        from cuda.bindings import runtime as cudart

        self._copy(dst, src, nbytes, cudart.cudaMemcpyKind.cudaMemcpyDeviceToDevice, stream,
                   "cudaMemcpyAsync(device to device)")

    def _function(self, kernel: str) -> Any:
        """The kernel's CUfunction in this device's primary context (the module loads on first use)."""
        from cuda.bindings import driver

        with self._lock:
            if kernel not in self._functions:
                if self._module is None:
                    major, minor = self.compute_capability().split(".")
                    image, _ = compile_kernels(int(major) * 10 + int(minor))
                    data = np.frombuffer(image, dtype=np.uint8)
                    with self.context():
                        self._module = _check(driver.cuModuleLoadData(data.ctypes.data), "cuModuleLoadData")
                self._functions[kernel] = _check(driver.cuModuleGetFunction(self._module, kernel.encode()),
                                                 f"cuModuleGetFunction({kernel})")
            return self._functions[kernel]

    def _launch(self, kernel: str, stream: Stream, threads: int, pointers: tuple[int, ...],
                ints: tuple[int, ...]) -> None:
        from cuda.bindings import driver

        raw = _sraw(stream)
        function = self._function(kernel)
        # kernelParams is a void**: the address of an array of addresses, one per argument's value.
        values = [np.array([p], dtype=np.uint64) for p in pointers] + [np.array([i], dtype=np.int32) for i in ints]
        params = np.array([value.ctypes.data for value in values], dtype=np.uint64)
        with self.context():
            _check(driver.cuLaunchKernel(function, blocks(threads), 1, 1, BLOCK, 1, 1, 0, raw, params.ctypes.data, 0),
                   f"cuLaunchKernel({kernel})")

    @property
    def supports_graphs(self) -> bool:
        return True

    def begin_capture(self, stream: Stream) -> None:
        from cuda.bindings import runtime as cudart

        mode = cudart.cudaStreamCaptureMode.cudaStreamCaptureModeThreadLocal
        with self.context():
            _check(cudart.cudaStreamBeginCapture(_sraw(stream), mode), "cudaStreamBeginCapture")

    def end_capture(self, stream: Stream) -> CudaGraph | None:
        from cuda.bindings import runtime as cudart

        with self.context():
            err, graph = cudart.cudaStreamEndCapture(_sraw(stream))
            if err.value != 0 or graph is None or native_handle(graph) == 0:
                cudart.cudaGetLastError()  # an invalidated capture leaves an error behind; clear it
                return None
            try:
                executable = _check(cudart.cudaGraphInstantiate(graph, 0), "cudaGraphInstantiate")
            finally:
                _check(cudart.cudaGraphDestroy(graph), "cudaGraphDestroy")
        return _Graph(executable)
