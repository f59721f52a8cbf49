"""PyTorch runner: the reference, straight from a checkpoint (FP32 or FP16, channels-last, CUDA graphs)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..backends import Backend, register_backend
from ..core.errors import ModelError
from ..core.sidecar import Sidecar
from .base import Runner, TensorSpec, parse_device

__all__ = ["TorchRunner"]


class TorchRunner(Runner):
    """Runs a checkpoint in PyTorch, as trained.

    Args:
        checkpoint: a ``.ckpt`` file or a run folder holding ``best.ckpt``.
        device: ``cpu``, ``cuda``, ``cuda:N`` or ``auto`` (CUDA when available).
        fp16: run in half precision (CUDA only); inputs and outputs stay FP32.
        channels_last: use the channels-last memory format (faster convolutions on GPUs and recent CPUs).
        cuda_graphs: capture one CUDA graph per input shape and replay it (CUDA only).
        threads: CPU threads for PyTorch (None: leave PyTorch's setting).
    """

    backend = "torch"

    def __init__(self, checkpoint: str | os.PathLike, *, device: str | int = "auto", fp16: bool = False,
                 channels_last: bool = True, cuda_graphs: bool = False, threads: int | None = None) -> None:
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
        self.model = None
        self._graphs: dict[tuple, tuple] = {}

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

        with torch.inference_mode():
            if self.cuda_graphs:
                outputs = self._replay(feeds)
            else:
                outputs = self._forward(self._tensors(feeds))
            return {name: t.float().cpu().numpy() for name, t in zip(self._outputs, outputs)}

    def _replay(self, feeds: dict[str, np.ndarray]) -> list:
        """One CUDA graph per input shape: copy into its static inputs, replay, read its static outputs."""
        import torch

        key = tuple(feeds[name].shape for name in self._names)
        if key not in self._graphs:
            static = self._tensors(feeds)
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                for _ in range(2):  # warm-up outside the graph (cuDNN autotuning, lazy allocations)
                    self._forward(static)
            torch.cuda.current_stream().wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                outputs = self._forward(static)
            self._graphs[key] = (graph, static, outputs)
        graph, static, outputs = self._graphs[key]
        for dst, src in zip(static, self._tensors(feeds)):
            dst.copy_(src)
        graph.replay()
        return outputs

    def deactivate_impl(self) -> None:
        self._graphs.clear()
        self.model = None

    def io_metadata(self) -> tuple[list[TensorSpec], list[TensorSpec]]:
        def spec(s: dict) -> TensorSpec:
            shape = (-1, int(s["shape"][1])) if "shape" in s else (-1, int(s["channels"]), -1, -1)
            return TensorSpec(s["name"], shape, np.dtype(np.float32))

        return [spec(s) for s in self.contract["inputs"]], [spec(s) for s in self.contract["outputs"]]


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
    options=frozenset({"device", "threads", "fp16", "cuda_graphs", "channels_last"}),
    capabilities=frozenset({"cpu", "cuda", "fp16", "cuda_graphs"}), probe=_probe, pick=_pick))
