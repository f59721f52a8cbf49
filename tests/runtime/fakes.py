"""Test doubles for the CUDA layer and TensorRT: a CUDA that runs on the CPU, and a fake ``tensorrt`` module.

``SimCuda`` is a ``Cuda`` that runs on the CPU: queued work runs only when the host waits for it, in a
random interleaving of the streams that respects every event wait, so code that forgets to order two
streams (or reuses a buffer too early) computes wrong results here, as it would on a GPU under load.

``fake_tensorrt`` is just the TensorRT runtime API the runner uses, on a ``SimCuda``; ``write_plan`` writes
a plan it loads, ``model`` computes what that plan's engine gives, and ``make_sidecar`` builds an engine's
sidecar. tests/runtime/test_cuda.py and tests/runtime/test_tensorrt_runner.py use them.

``IdentityRunner`` is a host runner of an enhance model that returns its input, optionally after a delay.
"""

from __future__ import annotations

import contextlib
import json
import random
import time
import types
from collections import deque
from collections.abc import Callable
from pathlib import Path

import numpy as np

from runtime.core.sidecar import Sidecar, make_profile
from runtime.cuda.base import Cuda, CudaGraph, DeviceBuffer, Event, HostBuffer, Stream
from runtime.cuda.kernels import KERNELS, frame_to_tensor_reference, tensor_to_frame_reference
from runtime.runners.base import Runner

__all__ = ["SimCuda", "SimStream", "SimEvent", "SimDeviceBuffer", "SimHostBuffer", "SimGraph", "PROFILE",
           "make_sidecar", "fake_tensorrt", "write_plan", "model", "IdentityRunner"]


# --- a CUDA that runs on the CPU --------------------------------------------------------------------------------


class _Op:
    def __init__(self, run: Callable[[], None], ready: Callable[[], bool] = lambda: True) -> None:
        self.run, self.ready = run, ready


class SimStream(Stream):
    def __init__(self, cuda: SimCuda) -> None:
        self.cuda, self.ops, self.capturing = cuda, deque(), None
        self.capture_broken = False
        self._handle = 0x5000 + len(cuda.streams)
        cuda.streams.append(self)

    def push(self, op: _Op) -> None:
        (self.capturing if self.capturing is not None else self.ops).append(op)

    @property
    def handle(self) -> int:
        return self._handle

    def synchronize(self) -> None:
        self.cuda.run_until(lambda: not self.ops)

    def wait(self, event: Event) -> None:
        assert isinstance(event, SimEvent)
        target = event.recorded
        self.push(_Op(lambda: None, lambda: event.done >= target))

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

        stream.push(_Op(run))

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
        self.cuda, self.nbytes, self.ptr = cuda, nbytes, cuda.next_ptr
        cuda.next_ptr += nbytes + 4096
        cuda.memory[self.ptr] = np.full(max(nbytes, 1), 0xCD, np.uint8)  # garbage, as cudaMalloc gives

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
    def __init__(self, ops: list[_Op]) -> None:
        self.ops = ops

    def launch(self, stream: Stream) -> None:
        assert isinstance(stream, SimStream)
        for op in self.ops:
            stream.push(op)

    def free(self) -> None:
        self.ops = []


class SimCuda(Cuda):
    """A CPU ``Cuda`` whose streams run lazily and out of order with each other (see the module docstring)."""

    name = "sim"

    def __init__(self, seed: int = 0) -> None:
        super().__init__(0)
        self.rng = random.Random(seed)
        self.memory: dict[int, np.ndarray] = {}
        self.next_ptr, self.clock, self.pinned, self.freed_streams = 0x10000, 0, 0, 0
        self.streams: list[SimStream] = []

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
        stream.push(_Op(run))

    def _htod(self, dst: int, src: np.ndarray, stream: Stream) -> None:
        self._push(stream, lambda: self.bytes(dst, src.nbytes).__setitem__(slice(None), src))  # reads src when run

    def _dtoh(self, dst: np.ndarray, src: int, stream: Stream) -> None:
        self._push(stream, lambda: dst.__setitem__(slice(None), self.bytes(src, dst.nbytes)))

    def _dtod(self, dst: int, src: int, nbytes: int, stream: Stream) -> None:
        self._push(stream, lambda: self.bytes(dst, nbytes).__setitem__(slice(None), self.bytes(src, nbytes)))

    def _launch(self, kernel: str, stream: Stream, threads: int, pointers: tuple[int, ...],
                ints: tuple[int, ...]) -> None:
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


# --- a fake TensorRT on SimCuda ---------------------------------------------------------------------------------

PROFILE = {"image": {"min": [1, 3, 8, 8], "opt": [1, 3, 16, 16], "max": [1, 3, 32, 48]},
           "light": {"min": [1, 3], "opt": [1, 3], "max": [1, 3]}}


def make_sidecar(version: str = "10.13.0.35", capability: str = "8.9", io: str = "fp16", profile=None,
                 **tensorrt) -> dict:
    profile = profile or PROFILE
    return {"format": "edgelight-sidecar/1", "kind": "engine", "artefact": "model.fp16.engine", "name": "tiny",
            "family": "lowlight", "preset": "test", "precision": "fp16", "io_precision": io,
            "contract": {"inputs": [{"name": n} for n in profile], "outputs": [{"name": "out"}]},
            "profile": profile, "source": {"checkpoint": "runs/lowlight/best.ckpt"}, "sha256": "0" * 64,
            "size_bytes": 1, "config": {}, "opset": 18, "dynamic": {}, "parity": {"passed": True}, "created": "",
            "versions": {},
            "tensorrt": {"version": version, "compute_capability": capability, "cache_key": "0" * 64,
                         "version_compatible": False, "hardware_compatible": False, **tensorrt}}


def fake_tensorrt(cuda: SimCuda, version: str = "10.13.0.35") -> types.ModuleType:
    """The TensorRT runtime API the runner uses. A plan is JSON: the tensors, their types and the profile.

    The model: ``out = (1 - image) * light`` per channel (light defaults to 1) and ``aux = mean(image)`` over
    channels. Like TensorRT, an execution takes the shapes and addresses set when it is enqueued.
    """
    trt = types.ModuleType("tensorrt")
    trt.__version__ = version
    trt.deserialized = trt.executions = 0
    trt.capturable = True
    trt.TensorIOMode = types.SimpleNamespace(INPUT="input", OUTPUT="output")
    trt.nptype = np.dtype

    class Logger:
        WARNING = 2

        def __init__(self, severity):
            pass

    class Context:
        def __init__(self, plan):
            self.plan, self.shapes, self.addresses = plan, {}, {}

        def set_input_shape(self, name, shape):
            low, _, high = self.plan["profile"][name]
            if len(shape) != len(low) or not all(a <= d <= b for a, d, b in zip(low, shape, high)):
                return False
            self.shapes[name] = tuple(shape)
            return True

        def get_tensor_shape(self, name):
            if name in self.plan["profile"]:
                return self.shapes.get(name, self.plan["declared"][name])
            if "image" not in self.shapes:
                return self.plan["declared"][name]
            _, _, height, width = self.shapes["image"]
            return (1, self.plan["channels"][name], height, width)

        def set_tensor_address(self, name, address):
            self.addresses[name] = address
            return True

        def execute_async_v3(self, stream_handle):
            trt.executions += 1
            stream = cuda.by_handle(stream_handle)
            if stream.capturing is not None and not trt.capturable:
                stream.capture_broken = True
                return False
            shapes, addresses, types_ = dict(self.shapes), dict(self.addresses), self.plan["types"]
            out_shape = self.get_tensor_shape("out")

            @np.errstate(all="ignore")  # garbage in uninitialised buffers may overflow
            def run():
                image = cuda.array(addresses["image"], shapes["image"], types_["image"]).astype(np.float32)
                light = np.ones((1, 3), np.float32)
                if "light" in shapes:
                    light = cuda.array(addresses["light"], shapes["light"], types_["light"]).astype(np.float32)
                out = ((1 - image) * light.reshape(1, 3, 1, 1)).astype(types_["out"])
                cuda.array(addresses["out"], out_shape, out.dtype)[...] = out
                aux = image.mean(axis=1, keepdims=True).astype(types_["aux"])
                cuda.array(addresses["aux"], aux.shape, aux.dtype)[...] = aux

            stream.push(_Op(run))
            return True

    class Engine:
        def __init__(self, plan):
            self.plan = plan
            self.names = [*plan["profile"], "out", "aux"]
            self.num_io_tensors = len(self.names)

        def get_tensor_name(self, index):
            return self.names[index]

        def get_tensor_mode(self, name):
            return trt.TensorIOMode.INPUT if name in self.plan["profile"] else trt.TensorIOMode.OUTPUT

        def is_shape_inference_io(self, name):
            return False

        def get_tensor_dtype(self, name):
            return self.plan["types"][name]

        def get_tensor_shape(self, name):
            return self.plan["declared"][name]

        def get_tensor_profile_shape(self, name, profile_index):
            assert profile_index == 0
            return self.plan["profile"][name]

        def create_execution_context(self):
            return Context(self.plan)

    class Runtime:
        def __init__(self, logger):
            self.engine_host_code_allowed = False

        def deserialize_cuda_engine(self, data):
            trt.deserialized += 1
            try:
                plan = json.loads(data)
            except ValueError:
                return None  # what TensorRT returns for a plan it cannot load
            plan["declared"] = {k: tuple(v) for k, v in plan["declared"].items()}
            plan["profile"] = {k: [tuple(s) for s in v] for k, v in plan["profile"].items()}
            return Engine(plan)

    trt.Logger, trt.Runtime = Logger, Runtime
    return trt


def write_plan(path: Path, io: str = "float16", light: bool = True) -> Path:
    profile = {name: [shapes["min"], shapes["opt"], shapes["max"]] for name, shapes in PROFILE.items()
               if light or name == "image"}
    plan = {"profile": profile, "channels": {"out": 3, "aux": 1},
            "types": {"image": io, "light": "float32", "out": io, "aux": "float32"},
            "declared": {"image": [1, 3, -1, -1], "light": [1, 3], "out": [1, 3, -1, -1], "aux": [1, 1, -1, -1]}}
    path.write_text(json.dumps(plan))
    return path


def model(image: np.ndarray, light: np.ndarray | None, io: str) -> dict[str, np.ndarray]:
    image = image.astype(io).astype(np.float32)
    scale = np.ones((1, 3), np.float32) if light is None else light.astype(np.float32)
    return {"out": ((1 - image) * scale.reshape(1, 3, 1, 1)).astype(io),
            "aux": image.mean(axis=1, keepdims=True).astype(np.float32)}


# --- a host runner ----------------------------------------------------------------------------------------------


class IdentityRunner(Runner):
    """An enhance model that returns its input, after ``seconds`` (a model slower than its camera).

    Args:
        kind: the artefact kind its sidecar names (``onnx``, ``engine``).
        low, high: the smallest and largest frame (H, W) of its profile (``high`` is also the one it is tuned for).
    """

    backend = "test"

    def __init__(self, kind: str = "onnx", low: tuple[int, int] = (16, 16), high: tuple[int, int] = (64, 64),
                 seconds: float = 0.0) -> None:
        contract = {"inputs": [{"name": "image", "channels": 3}], "outputs": [{"name": "enhanced", "channels": 3}]}
        super().__init__(Sidecar(artefact=f"identity.{kind}", kind=kind, name="identity", family="lowlight",
                                 preset="test", config={}, contract=contract, task="enhance",
                                 profile=make_profile(contract, low, high, high, 1)))
        self.seconds = seconds

    def activate_impl(self):
        pass

    def infer_impl(self, feeds):
        if self.seconds:
            time.sleep(self.seconds)
        return {"enhanced": feeds["image"]}

    def deactivate_impl(self):
        pass

    def io_metadata(self):
        return [], []
