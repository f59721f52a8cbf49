"""``Cuda`` simulated on the CPU: for tests and ``make gpu-check --dry-run`` on machines without a GPU.

"Device" buffers are NumPy arrays (their addresses are real host addresses, so ONNX Runtime's CPU provider and
PyTorch on the CPU can bind them), kernels are the NumPy definitions in ``runtime.cuda.kernels``, and queued work
runs only when the host waits for it, in a random interleaving of the streams that respects every event wait:
code that forgets to order two streams, or reuses a buffer too early, computes wrong results here as it
would on a GPU under load. Timings are counts of simulated operations, not milliseconds.

    cuda = get_cuda("sim")          # one per process, like the real libraries
"""

from __future__ import annotations

import contextlib
import random
from collections import deque
from collections.abc import Callable

import numpy as np

from .base import Cuda, CudaError, CudaGraph, DeviceBuffer, Event, HostBuffer, Stream
from .kernels import KERNELS, frame_to_tensor_reference, tensor_to_frame_reference

__all__ = ["SimCuda", "SimStream", "SimEvent", "SimDeviceBuffer", "SimHostBuffer", "SimGraph", "SimOp"]


class SimOp:
    """One piece of queued work: ``run`` it once ``ready()``."""

    def __init__(self, run: Callable[[], None], ready: Callable[[], bool] = lambda: True) -> None:
        self.run, self.ready = run, ready


class SimStream(Stream):
    def __init__(self, cuda: SimCuda) -> None:
        self.cuda, self.ops, self.capturing = cuda, deque(), None
        self.capture_broken = False
        self._handle = 0x5000 + len(cuda.streams)
        cuda.streams.append(self)

    def push(self, op: SimOp) -> None:
        (self.capturing if self.capturing is not None else self.ops).append(op)

    @property
    def handle(self) -> int:
        return self._handle

    def synchronize(self) -> None:
        self.cuda.run_until(lambda: not self.ops)

    def wait(self, event: Event) -> None:
        assert isinstance(event, SimEvent)
        target = event.recorded
        self.push(SimOp(lambda: None, lambda: event.done >= target))

    def free(self) -> None:
        self.cuda.freed_streams += 1


class SimEvent(Event):
    def __init__(self, cuda: SimCuda, timing: bool) -> None:
        self.cuda, self.timing, self.recorded, self.done, self.time = cuda, timing, 0, 0, 0

    def record(self, stream: Stream) -> None:
        assert isinstance(stream, SimStream)
        self.recorded += 1
        generation = self.recorded

        def run() -> None:
            self.done, self.time = generation, self.cuda.clock

        stream.push(SimOp(run))

    def synchronize(self) -> None:
        self.cuda.run_until(lambda: self.done >= self.recorded)

    def query(self) -> bool:
        self.cuda.step(self.cuda.rng.randint(0, 3))  # the GPU makes some progress meanwhile
        return self.done >= self.recorded

    def elapsed_ms(self, start: Event) -> float:
        assert isinstance(start, SimEvent) and self.timing and start.timing
        assert self.done >= self.recorded and start.done >= start.recorded, "elapsed_ms of an unfinished event"
        return float(self.time - start.time)

    def free(self) -> None:
        pass


class SimDeviceBuffer(DeviceBuffer):
    def __init__(self, cuda: SimCuda, nbytes: int) -> None:
        data = np.full(max(nbytes, 1), 0xCD, np.uint8)  # garbage, as cudaMalloc gives
        self.cuda, self.nbytes, self.ptr = cuda, nbytes, int(data.ctypes.data)
        cuda.memory[self.ptr] = data

    def free(self) -> None:
        self.cuda.memory.pop(self.ptr, None)


class SimHostBuffer(HostBuffer):
    def __init__(self, cuda: SimCuda, shape: tuple[int, ...], dtype: np.dtype) -> None:
        self._array: np.ndarray | None = np.zeros(shape, dtype)
        self.cuda, self.ptr, self.nbytes = cuda, self._array.ctypes.data, self._array.nbytes
        cuda.pinned += 1

    @property
    def array(self) -> np.ndarray:
        assert self._array is not None, "use after free"
        return self._array

    def free(self) -> None:
        if self._array is not None:
            self._array = None
            self.cuda.pinned -= 1


class SimGraph(CudaGraph):
    def __init__(self, ops: list[SimOp]) -> None:
        self.ops = ops

    def launch(self, stream: Stream) -> None:
        assert isinstance(stream, SimStream)
        for op in self.ops:
            stream.push(op)

    def free(self) -> None:
        self.ops = []


class SimCuda(Cuda):
    """A CPU ``Cuda`` whose streams run lazily and out of order with each other (see the module docstring).

    Args:
        seed: the seed of the interleaving.
        device: the device index it answers to.
    """

    name = "sim"
    host_memory = True

    def __init__(self, seed: int = 0, device: int = 0) -> None:
        super().__init__(device)
        self.rng = random.Random(seed)
        self.memory: dict[int, np.ndarray] = {}
        self.clock, self.pinned, self.freed_streams = 0, 0, 0
        self.streams: list[SimStream] = []
        self.kernel_error: str | None = None
        """Set it to make the kernels fail to load with this message (as without NVRTC)."""

    def bytes(self, ptr: int, nbytes: int) -> np.ndarray:
        assert ptr in self.memory, f"no device buffer at {ptr:#x} (freed?)"
        assert nbytes <= self.memory[ptr].nbytes, "device access out of bounds"
        return self.memory[ptr][:nbytes]

    def array(self, ptr: int, shape: tuple[int, ...], dtype) -> np.ndarray:
        dtype = np.dtype(dtype)
        return self.bytes(ptr, int(np.prod(shape)) * dtype.itemsize).view(dtype).reshape(shape)

    def step(self, count: int = 1) -> None:
        for _ in range(count):
            ready = [s for s in self.streams if s.ops and s.ops[0].ready()]
            if not ready:
                return
            self.rng.choice(ready).ops.popleft().run()
            self.clock += 1

    def run_until(self, done: Callable[[], bool]) -> None:
        while not done():
            ready = [s for s in self.streams if s.ops and s.ops[0].ready()]
            assert ready, "deadlock: the host waits for work that can never run"
            self.step()

    def context(self) -> contextlib.AbstractContextManager[None]:
        return contextlib.nullcontext()

    def compute_capability(self) -> str:
        return "8.9"

    def device_name(self) -> str:
        return "simulated GPU"

    def stream(self) -> Stream:
        return SimStream(self)

    def event(self, timing: bool = True) -> Event:
        return SimEvent(self, timing)

    def device_buffer(self, nbytes: int) -> DeviceBuffer:
        return SimDeviceBuffer(self, int(nbytes))

    def host_buffer(self, shape, dtype=np.uint8) -> HostBuffer:
        return SimHostBuffer(self, (shape,) if isinstance(shape, int) else tuple(shape), np.dtype(dtype))

    def _push(self, stream: Stream, run: Callable[[], None]) -> None:
        assert isinstance(stream, SimStream)
        stream.push(SimOp(run))

    def _htod(self, dst: int, src: np.ndarray, stream: Stream) -> None:
        self._push(stream, lambda: self.bytes(dst, src.nbytes).__setitem__(slice(None), src))  # reads src when run

    def _dtoh(self, dst: np.ndarray, src: int, stream: Stream) -> None:
        self._push(stream, lambda: dst.__setitem__(slice(None), self.bytes(src, dst.nbytes)))

    def _dtod(self, dst: int, src: int, nbytes: int, stream: Stream) -> None:
        self._push(stream, lambda: self.bytes(dst, nbytes).__setitem__(slice(None), self.bytes(src, nbytes)))

    def _function(self, kernel: str) -> str:
        if self.kernel_error is not None:
            raise CudaError(self.kernel_error)
        return kernel

    def run_in_order(self, stream: Stream, work: Callable[[], object], *, synchronous: bool) -> None:
        self._push(stream, work)  # the simulated GPU runs the other library's work when the stream gets there

    def _launch(self, kernel: str, stream: Stream, threads: int, pointers: tuple[int, ...],
                ints: tuple[int, ...]) -> None:
        self._function(kernel)
        (conversion, dtype), = [key for key, name in KERNELS.items() if name == kernel]
        src, dst = pointers

        def run() -> None:  # a frame of n pixels has the layout of a 1 x n frame
            n = ints[0]
            if conversion == "frame_to_tensor":
                tensor = frame_to_tensor_reference(self.array(src, (1, n, 3), np.uint8).copy(), dtype)
                self.array(dst, tensor.shape, tensor.dtype)[...] = tensor
            else:
                frame = tensor_to_frame_reference(self.array(src, (1, 3, 1, n), dtype).copy(), srgb=bool(ints[1]))
                self.array(dst, frame.shape, np.uint8)[...] = frame

        self._push(stream, run)

    @property
    def supports_graphs(self) -> bool:
        return True

    def begin_capture(self, stream: Stream) -> None:
        assert isinstance(stream, SimStream) and stream.capturing is None
        stream.capturing, stream.capture_broken = [], False

    def end_capture(self, stream: Stream) -> CudaGraph | None:
        assert isinstance(stream, SimStream) and stream.capturing is not None
        ops, stream.capturing = stream.capturing, None
        return None if stream.capture_broken else SimGraph(ops)

    def by_handle(self, handle: int) -> SimStream:
        return next(s for s in self.streams if s.handle == handle)
