"""Test doubles for TensorRT and the runners, on the simulated CUDA layer (``runtime.cuda.sim.SimCuda``).

``fake_tensorrt`` is just the TensorRT runtime API the runner uses, on a ``SimCuda``, and as strict as
TensorRT about what an execution needs (stricter about device addresses: ``device_region``); ``write_plan``
writes a plan it loads, ``model`` computes what that plan's engine gives, and ``make_sidecar`` builds an
engine's sidecar. tests/runtime/test_cuda.py and tests/runtime/test_tensorrt_runner.py use them.

``IdentityRunner`` is a host runner of an enhance model that returns its input, optionally after a delay.
"""

from __future__ import annotations

import json
import time
import types
from pathlib import Path

import numpy as np

from runtime.core.sidecar import Sidecar, make_profile
from runtime.cuda.sim import SimCuda, SimDeviceBuffer, SimEvent, SimGraph, SimHostBuffer, SimStream, SimOp
from runtime.runners.base import Runner

__all__ = ["SimCuda", "SimStream", "SimEvent", "SimDeviceBuffer", "SimHostBuffer", "SimGraph", "SimOp", "PROFILE",
           "make_sidecar", "fake_tensorrt", "device_region", "write_plan", "model", "IdentityRunner",
           "cuda_lib_params"]


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


def device_region(cuda: SimCuda, address: int, nbytes: int) -> np.ndarray | None:
    """The ``nbytes`` of simulated device memory from ``address``, which may point inside a buffer, or None when
    no live device buffer holds them all (never allocated, freed, or too small from there)."""
    for base, data in cuda.memory.items():
        if base <= address < base + data.nbytes:
            offset = address - base
            return data[offset:offset + nbytes] if offset + nbytes <= data.nbytes else None
    return None


def fake_tensorrt(cuda: SimCuda, version: str = "10.13.0.35") -> types.ModuleType:
    """The TensorRT runtime API the runner uses. A plan is JSON: the tensors, their types and the profile.

    The model: ``out = (1 - image) * light`` per channel (light defaults to 1) and ``aux = mean(image)`` over
    channels. Like TensorRT, an execution takes the shapes and addresses set when it is enqueued, and
    ``execute_async_v3`` refuses (returns False after logging the error, here to ``trt.errors``) when an I/O
    tensor has no address or a dynamic input no shape; unlike TensorRT, it also refuses an address that is not
    in a live ``SimCuda`` device buffer large enough for the tensor at its current shape.

    Counters: ``deserialized`` plans, ``executions`` (every ``execute_async_v3`` call) and ``pending``
    executions queued on a stream but not run yet (captured ones are in a graph, not queued). A captured execution
    replayed after its context ran other shapes fails an assertion.
    """
    trt = types.ModuleType("tensorrt")
    trt.__version__ = version
    trt.deserialized = trt.executions = trt.pending = 0
    trt.errors = []
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
            self.names = [*plan["profile"], "out", "aux"]

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

        def _refusal(self) -> str | None:
            """Why this execution cannot be enqueued now, or None."""
            for name in self.names:
                if name not in self.addresses:
                    return f"the address of tensor {name!r} is not set"
            for name in self.plan["profile"]:
                if name not in self.shapes and -1 in self.plan["declared"][name]:
                    return f"the shape of input {name!r} is not set"
            for name in self.names:
                shape = tuple(self.get_tensor_shape(name))
                nbytes = int(np.prod(shape)) * np.dtype(self.plan["types"][name]).itemsize
                if device_region(cuda, self.addresses[name], nbytes) is None:
                    return (f"the address {self.addresses[name]:#x} of tensor {name!r} is not in a live device buffer "
                            f"of {nbytes} bytes from there (shape {shape})")
            return None

        def execute_async_v3(self, stream_handle):
            trt.executions += 1
            if reason := self._refusal():
                trt.errors.append(f"IExecutionContext::enqueueV3: Error Code 3: {reason}")
                return False
            stream = cuda.by_handle(stream_handle)
            if stream.capturing is not None and not trt.capturable:
                stream.capture_broken = True
                return False
            shapes, addresses, types_ = dict(self.shapes), dict(self.addresses), self.plan["types"]
            self.executed = shapes  # what TensorRT derived its state from, for this context's next runs
            out_shape = self.get_tensor_shape("out")
            queued = stream.capturing is None
            captured = not queued
            trt.pending += queued

            def tensor(name, shape):
                dtype = np.dtype(types_[name])
                region = device_region(cuda, addresses[name], int(np.prod(shape)) * dtype.itemsize)
                assert region is not None, f"the device buffer of {name!r} was freed before the execution ran"
                return region.view(dtype).reshape(shape)

            @np.errstate(all="ignore")  # garbage in uninitialised buffers may overflow
            def run():
                nonlocal queued
                trt.pending -= queued
                queued = False  # a graph replays this operation; only its first, queued run was pending
                # A graph replays the state of the context it was captured from: TensorRT gives no guarantee
                # once that context has since run other shapes.
                assert not captured or self.executed == shapes, \
                    "a CUDA graph replayed after its execution context ran other shapes"
                image = tensor("image", shapes["image"]).astype(np.float32)
                light = np.ones((1, 3), np.float32)
                if "light" in self.plan["profile"]:
                    light = tensor("light", shapes.get("light", self.plan["declared"]["light"])).astype(np.float32)
                out = ((1 - image) * light.reshape(1, 3, 1, 1)).astype(types_["out"])
                tensor("out", out_shape)[...] = out
                aux = image.mean(axis=1, keepdims=True).astype(types_["aux"])
                tensor("aux", aux.shape)[...] = aux

            stream.push(SimOp(run))
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


def cuda_lib_params() -> list:
    """``pytest.param`` of each CUDA library, skipped with its reason where it cannot load."""
    import pytest

    from runtime.cuda import LIBS, unavailable_reason

    return [pytest.param(lib, marks=pytest.mark.skipif(bool(reason), reason=str(reason)))
            for lib, reason in ((lib, unavailable_reason(lib)) for lib in LIBS)]
