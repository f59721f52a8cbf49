"""TensorRT engines: deserialize once, keep device and pinned host buffers for the profile's largest shapes.

Before an engine is deserialized, its sidecar is checked against this machine: a plan loads only in
the TensorRT version it was built with (any later version of the same major, when built version
compatible) and on GPUs of the model it was built on (any Ampere or newer GPU, when built hardware
compatible). A mismatch is a ``ModelError`` that says how to rebuild the engine here.

``infer`` copies host arrays through pinned buffers on the runner's own stream; ``cuda_graphs=True``
replays the engine as CUDA graphs, one per input shape, each captured after one warm-up run (the
``graph_limit`` most recently used are kept; cuda-python only; anything that prevents capture falls
back to plain execution). ``enqueue`` runs the engine on device buffers someone else owns, on their
stream: ``runtime.cuda_executor`` uses it to overlap frames (``executor_cuda``, ``output_shapes``).
``tensorrt`` and the CUDA library are imported when the runner is activated.

One backend, one module (as Polygraphy lays out its backends): the compatibility check, the runner and
the backend's registration stay together here, which makes this the one runtime module near 500 lines.
"""

from __future__ import annotations

import logging
import math
import os
import shlex
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..core.errors import ModelError
from ..core.sidecar import Sidecar, SidecarError, read_sidecar
from ..backends import Backend, register_backend
from .base import Runner, ShapeCache, TensorSpec, parse_device

if TYPE_CHECKING:
    import tensorrt

    from ..cuda import Cuda, CudaGraph, DeviceBuffer, Event, HostBuffer, Stream

__all__ = ["TensorRTRunner", "check_engine_compatibility", "rebuild_command"]

log = logging.getLogger("runtime")

Shape = tuple[int, ...]


def rebuild_command(sidecar: Sidecar | dict) -> str:
    """The ``python -m export`` command that rebuilds the engine a sidecar describes, on this machine."""
    sidecar = _engine_sidecar(sidecar)
    checkpoint = sidecar.source.get("checkpoint") or "CHECKPOINT"
    built = sidecar.tensorrt
    flags = ["--fp16"] if sidecar.precision == "fp16" else []
    flags += ["--fp16-io"] if sidecar.io_precision == "fp16" else []
    flags += ["--engine"]
    flags += ["--version-compatible"] if built.version_compatible else []
    flags += ["--hardware-compatible"] if built.hardware_compatible else []
    return " ".join(["python -m export", shlex.quote(str(checkpoint)), *flags])


def _numbers(version: str) -> tuple[int, ...]:
    parts = []
    for part in str(version).split("."):
        digits = "".join(c for c in part if c.isdigit())
        parts.append(int(digits) if digits else 0)
    return tuple(parts)


def _engine_sidecar(sidecar: Sidecar | dict, name: str = "the engine") -> Sidecar:
    """``sidecar`` as a checked engine sidecar; ModelError when it describes something else."""
    if not isinstance(sidecar, Sidecar):
        try:
            sidecar = Sidecar.from_dict(sidecar)
        except SidecarError as exc:
            raise ModelError(f"the sidecar of {name}: {exc}") from None
    if sidecar.kind != "engine" or sidecar.tensorrt is None:
        raise ModelError(f"the sidecar of {name} does not describe a TensorRT engine (kind {sidecar.kind!r}); "
                         "re-export it with python -m export")
    return sidecar


def check_engine_compatibility(sidecar: Sidecar | dict, engine_name: str, trt_version: str,
                               compute_capability: str, device_name: str = "") -> None:
    """Raise ``ModelError`` unless an engine with ``sidecar`` loads with ``trt_version`` on this GPU.

    A plan loads in the TensorRT version that built it; a version-compatible plan also in any later
    version of the same major. It runs on GPUs of the model that built it (GPUs of one compute
    capability, such as an L4, an RTX 4090 and an L40S, get different kernels); a hardware-compatible
    plan (Ampere and newer) on any GPU of compute capability 8.0 or newer. A sidecar that does not
    name its GPU (written before the name was recorded) is checked by compute capability only.

    Args:
        sidecar: the engine's sidecar (its ``tensorrt`` entry: ``version``, ``compute_capability``,
            ``device_name``, ``version_compatible``, ``hardware_compatible``).
        engine_name: the engine's file name, for the message.
        trt_version: the installed TensorRT version, such as ``"10.13.0.35"``.
        compute_capability: this GPU's compute capability, such as ``"9.0"``.
        device_name: this GPU's name, such as ``"NVIDIA L4"`` (empty: checked by compute capability only).

    Raises:
        ModelError: one line naming both sides and the command that rebuilds the engine here.
    """
    built = _engine_sidecar(sidecar, engine_name).tensorrt
    built_version, built_capability = str(built.version), str(built.compute_capability)
    built_device = str(built.device_name or "")
    version_ok = trt_version == built_version or (
        built.version_compatible and _numbers(trt_version)[:1] == _numbers(built_version)[:1]
        and _numbers(trt_version) >= _numbers(built_version))
    if built.hardware_compatible:
        gpu_ok = compute_capability == built_capability or _numbers(compute_capability) >= (8, 0)
    else:
        gpu_ok = compute_capability == built_capability and (
            not built_device or not device_name or device_name == built_device)
    if not (version_ok and gpu_ok):
        built_gpu, this_gpu = built_capability, compute_capability
        if built_device and device_name:
            built_gpu, this_gpu = f"{built_capability} ({built_device})", f"{compute_capability} ({device_name})"
        raise ModelError(f"{engine_name} was built for TensorRT {built_version} on compute capability {built_gpu}; "
                         f"this machine has TensorRT {trt_version} on {this_gpu}: "
                         f"rebuild it here with {rebuild_command(sidecar)}")


def _tensorrt_missing() -> str | None:
    """Why the tensorrt package cannot be used here, or None."""
    try:
        import tensorrt as trt
    except ImportError:
        installed = False
    else:
        # tensorrt-stubs alone installs a bare tensorrt/ folder, which imports as an empty namespace package.
        installed = hasattr(trt, "Runtime")
    if not installed:
        return ("the tensorrt package is not installed: pip install tensorrt (on a machine with an NVIDIA GPU), "
                "or run the model's ONNX file with ONNX Runtime")
    return None


def _tensorrt_version() -> str:
    """The installed TensorRT version; ModelError saying what to install when TensorRT is missing."""
    reason = _tensorrt_missing()
    if reason:
        raise ModelError(reason)
    import tensorrt as trt

    return trt.__version__


def _shape(dims: tensorrt.Dims) -> Shape:
    return tuple(int(dims[i]) for i in range(len(dims)))


def _nbytes(shape: Shape, dtype: np.dtype) -> int:
    return math.prod(shape) * dtype.itemsize


class TensorRTRunner(Runner):
    """Runs a TensorRT engine plan (``model.fp16.engine``) on a CUDA GPU.

    Args:
        engine_path: the plan. Only load plans you trust: they can hold executable code.
        sidecar: the engine's sidecar; read from ``<engine_path>.json`` when None.
        cuda_lib: the CUDA library for streams and buffers: ``auto``, ``cuda-python`` or ``pycuda``.
        device: the CUDA device index (``auto`` or ``cuda``: device 0).
        cuda_graphs: replay the engine as CUDA graphs, one captured per input shape after one warm-up run, the
            ``graph_limit`` most recently used kept (needs cuda-python; falls back to plain execution, with a
            warning, when capture fails).

    Raises:
        ModelError: the engine or its sidecar is missing or unreadable, or the sidecar is not an engine's.
    """

    backend = "tensorrt"
    graph_limit = 4
    """How many CUDA graphs (one per input shape, each with an execution context and its activation memory) a
    runner keeps; the least recently used one goes beyond it."""

    def __init__(self, engine_path: str | os.PathLike, sidecar: dict | None = None, *, cuda_lib: str = "auto",
                 device: int | str = "auto", cuda_graphs: bool = False) -> None:
        path = Path(engine_path)
        if not path.is_file():
            raise ModelError(f"no TensorRT engine at {path}; build one with python -m export CHECKPOINT --fp16 "
                             "--engine")
        super().__init__(_engine_sidecar(sidecar or read_sidecar(path), path.name))
        self.engine_path = path
        self.cuda_lib = cuda_lib
        kind, self.device_index = parse_device(device)
        if kind == "cpu":
            raise ModelError("a TensorRT engine runs on a CUDA GPU; --device cpu needs an ONNX file or a checkpoint")
        if cuda_lib == "sim":
            raise ModelError("a TensorRT engine runs on a real GPU; cuda_lib sim (the GPU path simulated on the CPU) "
                             "takes an ONNX file or a checkpoint")
        self.cuda_graphs = cuda_graphs
        self.cuda: Cuda | None = None
        """The CUDA layer the runner's buffers and stream belong to (set while active)."""
        self._clear()

    def _clear(self) -> None:
        self._runtime: tensorrt.Runtime | None = None
        self._engine: tensorrt.ICudaEngine | None = None
        self._context: tensorrt.IExecutionContext | None = None
        self._inputs: list[str] = []
        self._outputs: list[str] = []
        self._dtypes: dict[str, np.dtype] = {}
        self._declared: dict[str, Shape] = {}
        self._profiles: dict[str, tuple[Shape, Shape, Shape]] = {}
        self._max: dict[str, Shape] = {}
        self._device: dict[str, DeviceBuffer] = {}
        self._host: dict[str, HostBuffer] = {}
        self._stream: Stream | None = None
        self._enqueued: Event | None = None
        self._pending = False
        self._own_addresses = False
        self._graphs: ShapeCache[tuple[CudaGraph, tensorrt.IExecutionContext]] = ShapeCache(self.graph_limit,
                                                                                             self._free_graph)
        """Per tuple of input shapes, the CUDA graph of one execution on the runner's own buffers, and the
        execution context it was captured from (one each: TensorRT's state for other shapes must not leak in)."""
        self._graph_failed = False

    @property
    def device(self) -> str:
        return "cuda"

    @property
    def input_names(self) -> list[str]:
        """The engine's inputs, in engine order (active runner)."""
        return list(self._inputs)

    @property
    def output_names(self) -> list[str]:
        """The engine's outputs, in engine order (active runner)."""
        return list(self._outputs)

    @property
    def graph_active(self) -> bool:
        """Whether ``infer`` replays captured CUDA graphs (at least one is kept)."""
        return len(self._graphs) > 0

    # -- activation ----------------------------------------------------------------------------------------------

    def activate_impl(self) -> None:
        version = _tensorrt_version()
        from ..cuda import get_cuda

        cuda = get_cuda(self.cuda_lib, self.device_index)
        check_engine_compatibility(self.sidecar, self.engine_path.name, version, cuda.compute_capability(),
                                   cuda.device_name())
        self.cuda = cuda
        try:
            with cuda.context():
                self._load(cuda)
        except BaseException:
            self._release()
            raise

    def _load(self, cuda: Cuda) -> None:
        import tensorrt as trt

        name = self.engine_path.name
        runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        if self.sidecar.tensorrt.version_compatible:
            runtime.engine_host_code_allowed = True  # a version-compatible plan embeds the lean runtime
        self._runtime = runtime
        engine = runtime.deserialize_cuda_engine(self.engine_path.read_bytes())
        if engine is None:
            raise ModelError(f"TensorRT {trt.__version__} could not load {name} (its errors are printed above): "
                             f"rebuild it here with {rebuild_command(self.sidecar)}")
        self._engine = engine
        context = engine.create_execution_context()
        if context is None:
            raise ModelError(f"TensorRT could not create an execution context for {name}: free GPU memory or "
                             "rebuild the engine with a smaller --max-shape")
        self._context = context
        for index in range(engine.num_io_tensors):
            tensor = engine.get_tensor_name(index)
            if engine.get_tensor_mode(tensor) == trt.TensorIOMode.INPUT:
                if engine.is_shape_inference_io(tensor):
                    raise ModelError(f"{name} takes the shape tensor {tensor!r}, which this runner does not support")
                self._inputs.append(tensor)
            else:
                self._outputs.append(tensor)
            self._dtypes[tensor] = np.dtype(trt.nptype(engine.get_tensor_dtype(tensor)))
            self._declared[tensor] = _shape(engine.get_tensor_shape(tensor))
        for tensor in self._inputs:
            low, opt, high = (_shape(dims) for dims in engine.get_tensor_profile_shape(tensor, 0))
            self._profiles[tensor] = (low, opt, high)
            self._max[tensor] = high
            self._set_shape(tensor, high)
        for tensor in self._outputs:
            self._max[tensor] = self._output_shape(tensor)
        for tensor in (*self._inputs, *self._outputs):
            nbytes = _nbytes(self._max[tensor], self._dtypes[tensor])
            self._device[tensor] = cuda.device_buffer(nbytes)
            self._host[tensor] = cuda.host_buffer(self._max[tensor], self._dtypes[tensor])
        self._stream = cuda.stream()
        self._enqueued = cuda.event(timing=False)
        self._use_own_addresses()

    def _use_own_addresses(self) -> None:
        context = self._ctx()
        for tensor, buffer in self._device.items():
            if not context.set_tensor_address(tensor, buffer.ptr):
                raise RuntimeError(f"TensorRT rejected the address of {tensor!r}")
        self._own_addresses = True

    def deactivate_impl(self) -> None:
        self._release()

    def _release(self) -> None:
        """Free the graphs, buffers, stream and TensorRT objects (also after a failed activation).

        First waits for the last ``enqueue`` (on the caller's stream) and for the runner's own stream: both
        use the execution context, which must outlive every execution queued with it.
        """
        cuda = self.cuda
        if cuda is not None:
            with cuda.context():
                for work in (self._enqueued if self._pending else None, self._stream):
                    if work is None:
                        continue
                    try:
                        work.synchronize()
                    except Exception as exc:  # a failed kernel must not stop the clean-up
                        log.warning("TensorRT runner: %s", exc)
                self._pending = False
                stream, self._stream = self._stream, None  # idle now: the graphs go without waiting for it again
                self._graphs.clear()
                for device in self._device.values():
                    device.free()
                for host in self._host.values():
                    host.free()
                if self._enqueued is not None:
                    self._enqueued.free()
                if stream is not None:
                    stream.free()
                # TensorRT objects go context first, engine next, runtime last, with the device current.
                self._context = None
                self._engine = None
                self._runtime = None
        self._clear()
        self.cuda = None

    def _free_graph(self, entry: tuple[CudaGraph, tensorrt.IExecutionContext]) -> None:
        """Free a graph the cache lets go, and its context, once the runner's stream has finished any launch of it."""
        if self._stream is not None:
            self._stream.synchronize()
        entry[0].free()

    # -- shapes ---------------------------------------------------------------------------------------------

    def _ctx(self) -> tensorrt.IExecutionContext:
        if self._context is None:
            raise RuntimeError(f"{type(self).__name__} is not active; call activate() or use it in a with block")
        return self._context

    def profile_shapes(self, name: str) -> tuple[Shape, Shape, Shape]:
        """The (min, opt, max) shapes the engine's optimisation profile gives input ``name``."""
        self._ctx()
        if name not in self._profiles:
            raise KeyError(f"{name!r} is not an input of {self.engine_path.name}; its inputs are {self._inputs}")
        return self._profiles[name]

    def max_shape(self, name: str) -> Shape:
        """The largest shape of input or output ``name`` (what the runner's buffers hold)."""
        self._ctx()
        if name not in self._max:
            raise KeyError(f"{name!r} is not a tensor of {self.engine_path.name}; it has "
                           f"{self._inputs + self._outputs}")
        return self._max[name]

    def _set_shape(self, name: str, shape: Shape) -> None:
        low, _, high = self._profiles[name]
        shape = tuple(int(d) for d in shape)
        if len(shape) != len(low) or not all(a <= d <= b for a, d, b in zip(low, shape, high)):
            raise ModelError(f"input {name!r} of shape {shape} is outside the engine's profile (from {low} to "
                             f"{high}): resize the input, or rebuild the engine with other --min-shape/--max-shape")
        if not self._ctx().set_input_shape(name, shape):
            raise ModelError(f"TensorRT rejected shape {shape} for input {name!r} (its errors are printed above)")

    def output_shapes(self, shapes: Mapping[str, Shape]) -> dict[str, Shape]:
        """The shape of every output for inputs of ``shapes``, from the engine (active runner).

        Sets the input shapes on the execution context, as ``enqueue`` does, so an executor can size its
        buffers before it enqueues.

        Raises:
            ModelError: an input shape is outside the engine's profile.
            ValueError: the shape of an input is missing.
        """
        self._ctx()
        if missing := [n for n in self._inputs if n not in shapes]:
            raise ValueError(f"output_shapes needs the shape of {missing}")
        cuda = self.cuda
        if cuda is None:
            raise RuntimeError(f"{type(self).__name__} is not active")
        with cuda.context():
            for name in self._inputs:
                self._set_shape(name, shapes[name])
            return {name: self._output_shape(name) for name in self._outputs}

    def _output_shape(self, name: str) -> Shape:
        shape = _shape(self._ctx().get_tensor_shape(name))
        if any(d < 0 for d in shape):
            raise ModelError(f"output {name!r} of {self.engine_path.name} has a data-dependent shape {shape}, "
                             "which this runner does not support")
        return shape

    # -- inference ------------------------------------------------------------------------------------------

    def io_metadata(self) -> tuple[list[TensorSpec], list[TensorSpec]]:
        self._ctx()
        return ([TensorSpec(n, self._declared[n], self._dtypes[n]) for n in self._inputs],
                [TensorSpec(n, self._declared[n], self._dtypes[n]) for n in self._outputs])

    def infer_impl(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if missing := [name for name in self._inputs if name not in feeds]:
            raise ModelError(f"no array for input {', '.join(map(repr, missing))}; {self.engine_path.name} takes "
                             f"{', '.join(self._inputs)}")
        cuda, stream = self.cuda, self._stream
        if cuda is None or stream is None:
            raise RuntimeError(f"{type(self).__name__} is not active")
        with cuda.context():
            shapes = []
            for name in self._inputs:
                array = np.ascontiguousarray(feeds[name], dtype=self._dtypes[name])
                self._set_shape(name, array.shape)
                shapes.append(array.shape)
                np.copyto(self._host[name].view(array.shape, array.dtype), array)
                cuda.htod_async(self._device[name], self._host[name], stream, nbytes=array.nbytes)
            outputs = {name: self._output_shape(name) for name in self._outputs}
            self._execute(cuda, stream, tuple(shapes))
            for name, shape in outputs.items():
                cuda.dtoh_async(self._host[name], self._device[name], stream,
                                nbytes=_nbytes(shape, self._dtypes[name]))
            stream.synchronize()
            return {name: self._host[name].view(shape, self._dtypes[name]).copy() for name, shape in outputs.items()}

    def _execute(self, cuda: Cuda, stream: Stream, key: tuple[Shape, ...]) -> None:
        """Run the engine on the runner's buffers: replay the graph for ``key``, or enqueue (and maybe capture)."""
        if self._pending and self._enqueued is not None:
            stream.wait(self._enqueued)  # enqueue() work on another stream uses the same execution context
            self._pending = False
        if not self._own_addresses:
            self._use_own_addresses()
        if self.cuda_graphs and not self._graph_failed:
            entry = self._graphs.get(key)  # captured on the runner's own buffers, whose addresses it holds
            if entry is not None:
                entry[0].launch(stream)
                return
            self._enqueue(stream)  # this call's outputs, on the runner's context
            self._capture(cuda, stream, key)
            return
        self._enqueue(stream)

    def _enqueue(self, stream: Stream) -> None:
        if not self._ctx().execute_async_v3(stream.handle):
            raise RuntimeError(f"TensorRT failed to run {self.engine_path.name} (its errors are printed above)")

    def _capture(self, cuda: Cuda, stream: Stream, key: tuple[Shape, ...]) -> None:
        """Capture one execution for ``key`` into a CUDA graph and keep it; on any failure, run without graphs
        from now on."""
        if not cuda.supports_graphs:
            self._graph_failed = True
            log.warning("CUDA graphs need cuda-python (pip install cuda-python); %s runs without them",
                        self.engine_path.name)
            return
        reason = "TensorRT's execution cannot be captured (an operation not allowed in stream capture)"
        try:
            context = self._graph_context(key)
            if not context.execute_async_v3(stream.handle):  # its shape-dependent set-up, outside the capture
                raise RuntimeError("TensorRT failed to run it before the capture (its errors are printed above)")
            stream.synchronize()  # capture starts from an idle stream, as trtexec does
            cuda.begin_capture(stream)
            captured = False
            try:
                captured = context.execute_async_v3(stream.handle)
            finally:
                graph = cuda.end_capture(stream)  # always leave capture mode
            if captured and graph is not None:
                self._graphs.put(key, (graph, context))  # may free the least recently used graph
                return
            if graph is not None:
                graph.free()
        except Exception as exc:
            reason = str(exc)
        self._graph_failed = True
        log.warning("CUDA graph capture of %s failed (%s); running it without CUDA graphs", self.engine_path.name,
                    reason)
        self._graphs.clear()  # the graphs of earlier shapes are not replayed any more

    def _graph_context(self, key: tuple[Shape, ...]) -> tensorrt.IExecutionContext:
        """An execution context of its own for the graph of ``key``: a graph replays the state of the context it
        was captured from (shapes, and what TensorRT derived from them), which must not change afterwards."""
        engine = self._engine
        context = engine.create_execution_context() if engine is not None else None
        if context is None:
            raise RuntimeError("TensorRT could not create another execution context (GPU memory)")
        for name, shape in zip(self._inputs, key):
            if not context.set_input_shape(name, shape):
                raise RuntimeError(f"TensorRT rejected shape {shape} for input {name!r}")
        for tensor, buffer in self._device.items():
            if not context.set_tensor_address(tensor, buffer.ptr):
                raise RuntimeError(f"TensorRT rejected the address of {tensor!r}")
        return context

    def executor_cuda(self) -> Cuda | None:
        """The CUDA layer of the runner's buffers and stream (``enqueue`` takes its streams); None when inactive."""
        return self.cuda

    def enqueue(self, shapes: Mapping[str, Shape], addresses: Mapping[str, int], stream: Stream) -> dict[str, Shape]:
        """Queue one execution on device buffers owned by the caller, on the caller's stream.

        The execution context is shared with ``infer``; use one stream for all ``enqueue`` calls (work
        on one stream runs in order). ``infer`` and ``deactivate`` wait for the latest enqueued execution
        by themselves.

        Args:
            shapes: the shape of every input.
            addresses: the device address of every input and output, each large enough for its shape.
            stream: a stream of this runner's CUDA library (``runner.cuda.stream()``).

        Returns:
            The shape of every output.

        Raises:
            ModelError: an input shape is outside the engine's profile.
            ValueError: a shape or an address is missing.
        """
        context = self._ctx()
        cuda, event = self.cuda, self._enqueued
        if cuda is None or event is None:
            raise RuntimeError(f"{type(self).__name__} is not active")
        self._check_enqueue(shapes, addresses, self._inputs, self._outputs)
        with cuda.context():
            for name in self._inputs:
                self._set_shape(name, shapes[name])
            self._own_addresses = False
            for name in (*self._inputs, *self._outputs):
                if not context.set_tensor_address(name, int(addresses[name])):
                    raise RuntimeError(f"TensorRT rejected the address of {name!r}")
            outputs = {name: self._output_shape(name) for name in self._outputs}
            self._enqueue(stream)
            event.record(stream)
            self._pending = True
        return outputs


def _probe() -> str | None:
    reason = _tensorrt_missing()
    if reason:
        return reason
    from ..cuda import available_libs

    return None if available_libs() else "no CUDA library for the runtime (pip install cuda-python or pycuda)"


def _pick(folder: Path, precision: str = "auto") -> Path | None:
    """``model.<precision>.engine`` (``model.engine`` for fp32); for ``auto``, the first engine by name."""
    if precision != "auto":
        path = folder / ("model.engine" if precision == "fp32" else f"model.{precision}.engine")
        return path if path.is_file() else None
    engines = sorted(p for p in folder.iterdir() if p.suffix.lower() in _SUFFIXES)
    return engines[0] if engines else None


_SUFFIXES = (".engine", ".plan")

register_backend(Backend(
    name="tensorrt", runner=TensorRTRunner, suffixes=_SUFFIXES, artefact="a TensorRT engine (.engine/.plan)",
    options=frozenset({"device", "cuda_lib", "cuda_graphs"}), capabilities=frozenset({"cuda", "cuda_graphs",
                                                                                       "cuda_executor"}),
    probe=_probe, pick=_pick))
