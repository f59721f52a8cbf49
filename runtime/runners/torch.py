"""PyTorch runner: the reference, straight from a checkpoint (FP32 or FP16, channels-last, CUDA graphs).

On a GPU it also runs on device buffers it does not own (``enqueue``), on a CUDA stream of the runtime's CUDA
layer, so the overlapped executor (``runtime.cuda_executor``) drives it as it drives a TensorRT engine: the
buffers are viewed as tensors through ``__cuda_array_interface__`` (no copy) and the model runs on the stream as
an external stream. With ``cuda_graphs`` one graph per input shape is kept, at most ``GRAPH_LIMIT``: the least
recently used one is released (with its memory pool) when a new shape would make one too many.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..backends import Backend, register_backend
from ..core.errors import ModelError
from ..core.sidecar import Sidecar
from .base import Runner, ShapeCache, TensorSpec, parse_device

if TYPE_CHECKING:
    from ..cuda import Cuda, Stream

log = logging.getLogger("runtime")

GRAPH_LIMIT = 4
"""CUDA graphs a runner keeps (one per input shape), each with its own memory pool."""


class _DeviceArray:
    """Device memory at ``ptr`` described by ``__cuda_array_interface__`` (version 3, no stream to wait for),
    which ``torch.as_tensor`` wraps without a copy."""

    def __init__(self, ptr: int, shape: tuple[int, ...], dtype: np.dtype) -> None:
        self.__cuda_array_interface__ = {"shape": tuple(int(d) for d in shape), "typestr": np.dtype(dtype).str,
                                         "data": (int(ptr), False), "version": 3, "strides": None}

__all__ = ["TorchRunner"]


class TorchRunner(Runner):
    """Runs a checkpoint in PyTorch, as trained.

    Args:
        checkpoint: a ``.ckpt`` file or a run folder holding ``best.ckpt``.
        device: ``cpu``, ``cuda``, ``cuda:N`` or ``auto`` (CUDA when available).
        fp16: run in half precision (CUDA only); inputs and outputs stay FP32.
        channels_last: use the channels-last memory format (faster convolutions on GPUs and recent CPUs).
        cuda_graphs: capture one CUDA graph per input shape and replay it (CUDA only; at most ``GRAPH_LIMIT``
            kept).
        threads: CPU threads for PyTorch (None: leave PyTorch's setting).
        cuda_lib: the CUDA layer for ``enqueue`` on device buffers: ``auto``, ``cuda-python``, ``pycuda``, or
            ``sim`` (a CPU runner driven through the simulated CUDA layer, for dry runs).
    """

    backend = "torch"

    def __init__(self, checkpoint: str | os.PathLike, *, device: str | int = "auto", fp16: bool = False,
                 channels_last: bool = True, cuda_graphs: bool = False, threads: int | None = None,
                 cuda_lib: str = "auto") -> None:
        path = Path(checkpoint)
        path = path / "best.ckpt" if path.is_dir() else path
        if not path.is_file():
            raise ModelError(f"no checkpoint at {path}")
        try:
            from train.checkpoint import read_checkpoint
        except ImportError as exc:
            raise ModelError(f"the PyTorch backend needs the train extra (pip install 'edgelight[train]'): {exc}") \
                from None
        meta = read_checkpoint(path)["edgelight"]
        super().__init__(Sidecar.for_checkpoint(meta, path))
        parse_device(device)  # a bad value fails here, not at activation
        self.path, self.requested_device, self.fp16 = path, device, fp16
        self.channels_last, self.cuda_graphs, self.threads = channels_last, cuda_graphs, threads
        self.cuda_lib = cuda_lib
        self.model = None
        self._graphs: ShapeCache[tuple] = ShapeCache(GRAPH_LIMIT, _release_graph)
        self._enqueued = None  # an event after the latest enqueue(), once there has been one

    @property
    def device(self) -> str:
        return self._device if self.model is not None else "cpu"

    def activate_impl(self) -> None:
        import torch

        from train.checkpoint import load_checkpoint

        kind, index = parse_device(self.requested_device)
        if kind == "auto":
            kind = "cuda" if torch.cuda.is_available() else "cpu"
        device = "cpu" if kind == "cpu" else f"cuda:{index}"
        if kind == "cuda" and not torch.cuda.is_available():
            raise ModelError("--device cuda: no CUDA GPU is visible to PyTorch")
        if (self.fp16 or self.cuda_graphs) and kind != "cuda":
            raise ModelError("FP16 and CUDA graphs need a CUDA GPU; run FP32 on the CPU")
        if self.cuda_lib == "sim" and kind == "cuda":
            raise ModelError("cuda_lib sim simulates the GPU path on the CPU: use it with device cpu")
        if self.threads:
            torch.set_num_threads(self.threads)
        model, _ = load_checkpoint(self.path, map_location=device)
        if self.fp16:
            model = model.half()
        if self.channels_last:
            model = model.to(memory_format=torch.channels_last)
        self.model, self._device = model.eval(), device
        self._dtype = torch.float16 if self.fp16 else torch.float32
        self._names = [s["name"] for s in self.contract["inputs"]]
        self._outputs = [s["name"] for s in self.contract["outputs"]]

    def _tensors(self, feeds: dict[str, np.ndarray]) -> list:
        import torch

        out = []
        for name in self._names:
            t = torch.from_numpy(np.ascontiguousarray(feeds[name], dtype=np.float32)).to(self._device, self._dtype,
                                                                                          non_blocking=True)
            if t.dim() == 4 and self.channels_last:
                t = t.contiguous(memory_format=torch.channels_last)
            out.append(t)
        return out

    def _forward(self, inputs: list) -> list:
        out = self.model(*inputs)
        return list(out) if isinstance(out, (tuple, list)) else [out]

    def infer_impl(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        import torch

        if self._enqueued is not None:  # enqueue() work on another stream may still use the graphs' buffers
            self._enqueued.synchronize()
        with torch.inference_mode():
            if self.cuda_graphs:
                outputs = self._replay(self._tensors(feeds))
            else:
                outputs = self._forward(self._tensors(feeds))
            return {name: t.float().cpu().numpy() for name, t in zip(self._outputs, outputs)}

    def _replay(self, inputs: list) -> list:
        """One CUDA graph per input shape (captured on first use): copy ``inputs`` into its static inputs, replay,
        return its static outputs."""
        import torch

        key = tuple(tuple(t.shape) for t in inputs)
        entry = self._graphs.get(key)
        if entry is None:
            static = [t.clone() for t in inputs]
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                for _ in range(2):  # warm-up outside the graph (cuDNN autotuning, lazy allocations)
                    self._forward(static)
            torch.cuda.current_stream().wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            try:
                with torch.cuda.graph(graph):
                    outputs = self._forward(static)
            except Exception as exc:  # an operation capture does not allow: run without graphs from now on
                log.warning("CUDA graph capture of %s failed (%s); running it without CUDA graphs", self.path.name,
                            str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
                self.cuda_graphs = False
                self._graphs.clear()
                return self._forward(inputs)
            entry = (graph, static, outputs)
            self._graphs.put(key, entry)
        graph, static, outputs = entry
        for dst, src in zip(static, inputs):
            dst.copy_(src)
        graph.replay()
        return outputs

    def deactivate_impl(self) -> None:
        if self._enqueued is not None:
            self._enqueued.synchronize()
            self._enqueued.free()
            self._enqueued = None
        self._graphs.clear()
        self.model = None
        if self._device.startswith("cuda"):
            import torch

            torch.cuda.empty_cache()  # the released graphs' pools go back to the driver

    # -- on device buffers (the overlapped executor) ------------------------------------------------------------

    def executor_cuda(self) -> Cuda | None:
        """The CUDA layer of ``cuda_lib`` on this runner's GPU; ``sim`` on the CPU; else None."""
        if self.model is None:
            return None
        from ..cuda import get_cuda

        if self._device.startswith("cuda"):
            return get_cuda(self.cuda_lib, parse_device(self._device)[1])
        return get_cuda("sim") if self.cuda_lib == "sim" else None

    def enqueue(self, shapes: Mapping[str, tuple[int, ...]], addresses: Mapping[str, int],
                stream: Stream) -> dict[str, tuple[int, ...]]:
        """Run the model on float32 device buffers in ``stream``'s order (see ``Runner.enqueue``).

        The inputs are read as float32 (cast to FP16 on the GPU when ``fp16``), the outputs written as float32.
        """
        cuda = self.executor_cuda()
        if cuda is None:
            raise RuntimeError(f"{type(self).__name__} is not active on a GPU")
        self._check_enqueue(shapes, addresses, self._names, self._outputs)
        out_shapes = self.output_shapes(shapes)
        view = _host_view if cuda.host_memory else _device_view

        def work() -> None:
            import torch

            with torch.inference_mode(), self._on(stream):
                inputs = []
                for name in self._names:
                    t = view(addresses[name], shapes[name], self._device).to(self._dtype)
                    if t.dim() == 4 and self.channels_last:
                        t = t.contiguous(memory_format=torch.channels_last)
                    inputs.append(t)
                results = self._replay(inputs) if self.cuda_graphs else self._forward(inputs)
                for name, result in zip(self._outputs, results):
                    if tuple(result.shape) != tuple(out_shapes[name]):
                        raise ModelError(f"output {name!r} came out {tuple(result.shape)}, not "
                                         f"{tuple(out_shapes[name])}")
                    view(addresses[name], out_shapes[name], self._device).copy_(result)

        cuda.run_in_order(stream, work, synchronous=False)
        if self._enqueued is None:
            self._enqueued = cuda.event(timing=False)
        self._enqueued.record(stream)  # infer() waits for it: the graphs' static buffers are shared
        return dict(out_shapes)

    def _on(self, stream: Stream) -> contextlib.AbstractContextManager:
        """PyTorch's current stream made ``stream`` (an external stream) for the block; nothing on the CPU."""
        if not self._device.startswith("cuda"):
            return contextlib.nullcontext()
        import torch

        return torch.cuda.stream(torch.cuda.ExternalStream(stream.handle, device=self._device))

    def io_metadata(self) -> tuple[list[TensorSpec], list[TensorSpec]]:
        def spec(s: dict) -> TensorSpec:
            shape = (-1, int(s["shape"][1])) if "shape" in s else (-1, int(s["channels"]), -1, -1)
            return TensorSpec(s["name"], shape, np.dtype(np.float32))

        return [spec(s) for s in self.contract["inputs"]], [spec(s) for s in self.contract["outputs"]]


def _release_graph(entry: tuple) -> None:
    """Free a captured graph: ``reset`` gives back its memory pool once nothing else holds its tensors."""
    graph, static, outputs = entry
    static.clear()
    outputs.clear()
    graph.reset()


def _device_view(ptr: int, shape: tuple[int, ...], device: str):
    """The float32 device memory at ``ptr`` as a tensor of ``shape`` on ``device`` (no copy)."""
    import torch

    tensor = torch.as_tensor(_DeviceArray(ptr, shape, np.dtype(np.float32)), device=device)
    if tensor.data_ptr() != ptr:
        raise RuntimeError("PyTorch copied a device buffer it was asked to wrap")
    return tensor


def _host_view(ptr: int, shape: tuple[int, ...], device: str):
    """The float32 host memory at ``ptr`` (a buffer of the simulated CUDA layer) as a CPU tensor (no copy)."""
    import torch

    count = int(np.prod(shape, dtype=np.int64))
    data = np.ctypeslib.as_array((ctypes.c_float * max(count, 1)).from_address(ptr))[:count]
    return torch.from_numpy(data.reshape(shape))


def _probe() -> str | None:
    import importlib.util

    for module, extra in (("torch", "train"), ("lightning", "train")):
        if importlib.util.find_spec(module) is None:
            return f"{module} is not installed (pip install 'edgelight[{extra}]')"
    return None


def _pick(folder: Path, precision: str = "auto") -> Path | None:
    """A run folder's ``best.ckpt`` (FP32 weights; ``--fp16`` runs them in half precision on a GPU)."""
    if precision not in ("auto", "fp32"):
        return None
    return folder / "best.ckpt" if (folder / "best.ckpt").is_file() else None


register_backend(Backend(
    name="torch", runner=TorchRunner, suffixes=(".ckpt",), artefact="a .ckpt checkpoint",
    options=frozenset({"device", "threads", "fp16", "cuda_graphs", "channels_last", "cuda_lib"}),
    capabilities=frozenset({"cpu", "cuda", "fp16", "cuda_graphs", "cuda_executor"}), probe=_probe, pick=_pick))
