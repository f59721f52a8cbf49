"""ONNX Runtime runner: TensorRT, CUDA or CPU execution providers; I/O binding on the GPU."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..backends import Backend, register_backend
from ..core.errors import ModelError
from ..core.sidecar import Sidecar, read_sidecar
from .base import Runner, TensorSpec, parse_device

__all__ = ["OnnxRuntimeRunner", "DEFAULT_PROVIDERS"]

DEFAULT_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")
"""Tried in this order; those the installed onnxruntime lacks are skipped."""

_TYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16}


def _cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "edgelight" / "ort-tensorrt"


class OnnxRuntimeRunner(Runner):
    """Runs an exported ``.onnx`` file in ONNX Runtime.

    Args:
        path: the ONNX file (with its sidecar next to it).
        sidecar: the sidecar, if already read.
        providers: execution providers in order of preference (default ``DEFAULT_PROVIDERS``), or one
            of the short names ``tensorrt``, ``cuda``, ``cpu``.
        threads: intra-op threads on the CPU (None: ONNX Runtime's default, one per core).
        device: ``auto`` (the providers in order), ``cpu`` (the CPU provider only), ``cuda`` or ``cuda:N``
            (the GPU for the CUDA and TensorRT providers).
        stream: a CUDA stream handle (int) for the CUDA provider to compute on; None: its own.
    """

    backend = "onnxruntime"

    def __init__(self, path: str | os.PathLike, sidecar: Sidecar | dict | None = None, *,
                 providers: tuple[str, ...] | list[str] | str | None = None, threads: int | None = None,
                 device: str | int = "auto", stream: int | None = None) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise ModelError(f"no ONNX model at {self.path}")
        super().__init__(sidecar or read_sidecar(self.path))
        kind, self.device_id = parse_device(device)
        if kind == "cpu":
            if providers is not None and tuple([providers] if isinstance(providers, str) else providers) != ("cpu",):
                raise ModelError("device cpu runs the CPU execution provider only; drop --providers or the device")
            providers = ("cpu",)
        self.requested = (providers,) if isinstance(providers, str) else tuple(providers or DEFAULT_PROVIDERS)
        self.threads, self.stream = threads, stream
        self.session = None
        self._bound: dict[str, object] = {}

    @property
    def device(self) -> str:
        return "cuda" if self.session is not None and self.providers[0] != "CPUExecutionProvider" else "cpu"

    def _provider_list(self) -> list:
        import onnxruntime as ort

        short = {"tensorrt": "TensorrtExecutionProvider", "cuda": "CUDAExecutionProvider",
                 "cpu": "CPUExecutionProvider"}
        wanted = [short.get(p.lower(), p) for p in self.requested]
        available = ort.get_available_providers()
        chosen = [p for p in wanted if p in available]
        if not chosen:
            raise ModelError(f"none of the execution providers {wanted} is available in this onnxruntime "
                             f"(it has {available}); install onnxruntime-gpu for CUDA and TensorRT")
        out: list = []
        for name in chosen:
            if name == "TensorrtExecutionProvider":
                cache = _cache_dir()
                out.append((name, {"device_id": self.device_id, "trt_engine_cache_enable": True,
                                   "trt_engine_cache_path": str(cache), "trt_timing_cache_enable": True,
                                   "trt_timing_cache_path": str(cache)}))
            elif name == "CUDAExecutionProvider":
                options = {"device_id": self.device_id}
                if self.stream is not None:
                    options.update(has_user_compute_stream=1, user_compute_stream=str(self.stream))
                out.append((name, options))
            else:
                out.append(name)
        return out

    def activate_impl(self) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        if self.threads:
            options.intra_op_num_threads = self.threads
        try:
            self.session = ort.InferenceSession(str(self.path), options, providers=self._provider_list())
        except ModelError:
            raise
        except Exception as exc:  # a corrupt or foreign file fails inside the ONNX parser
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelError(f"ONNX Runtime cannot load {self.path}: {first}") from None
        self.providers = self.session.get_providers()
        self._types = {i.name: _TYPES.get(i.type, np.float32) for i in self.session.get_inputs()}
        self._outputs = [o.name for o in self.session.get_outputs()]

    def infer_impl(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        feeds = {name: np.ascontiguousarray(feeds[name], dtype=kind) for name, kind in self._types.items()}
        if self.device == "cpu":
            return dict(zip(self._outputs, self.session.run(self._outputs, feeds)))
        return self._infer_bound(feeds)

    def _infer_bound(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """GPU path: inputs live in device OrtValues allocated once per shape and updated in place."""
        import onnxruntime as ort

        binding = self.session.io_binding()
        for name, array in feeds.items():
            value = self._bound.get(name)
            if value is None or tuple(value.shape()) != array.shape:
                value = ort.OrtValue.ortvalue_from_numpy(array, "cuda", self.device_id)
                self._bound[name] = value
            else:
                value.update_inplace(array)
            binding.bind_ortvalue_input(name, value)
        for name in self._outputs:
            binding.bind_output(name, "cuda", self.device_id)
        self.session.run_with_iobinding(binding)
        return dict(zip(self._outputs, binding.copy_outputs_to_cpu()))

    def deactivate_impl(self) -> None:
        self._bound.clear()
        self.session = None

    def io_metadata(self) -> tuple[list[TensorSpec], list[TensorSpec]]:
        def spec(v) -> TensorSpec:
            shape = tuple(d if isinstance(d, int) else -1 for d in v.shape)
            return TensorSpec(v.name, shape, np.dtype(_TYPES.get(v.type, np.float32)))

        if self.session is None:
            raise RuntimeError("activate the runner first")
        return [spec(i) for i in self.session.get_inputs()], [spec(o) for o in self.session.get_outputs()]


def _probe() -> str | None:
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return "onnxruntime is not installed (pip install onnxruntime, or onnxruntime-gpu on an NVIDIA machine)"
    return None


def _pick(folder: Path) -> Path | None:
    """``model.onnx``, or ``model.fp16.onnx`` first where ONNX Runtime has a GPU provider (on the CPU it wraps
    FP16 nodes in casts and runs slower)."""
    try:
        import onnxruntime

        gpu = "CUDAExecutionProvider" in onnxruntime.get_available_providers()
    except ImportError:
        gpu = False
    names = ("model.fp16.onnx", "model.onnx") if gpu else ("model.onnx", "model.fp16.onnx")
    return next((folder / n for n in names if (folder / n).is_file()), None)


register_backend(Backend(
    name="onnxruntime", runner=OnnxRuntimeRunner, suffixes=(".onnx",), artefact="an .onnx file",
    options=frozenset({"device", "threads", "providers", "stream"}), capabilities=frozenset({"cpu", "cuda"}),
    probe=_probe, pick=_pick))
