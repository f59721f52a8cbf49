"""The backend registry: each backend is declared once, next to its runner, and everything else reads it.

A ``Backend`` says what a backend is called, which files it runs (suffixes), how to pick its file in
an export or run folder, whether it can run on this machine (and why not), what it can do
(capabilities) and which constructor options its runner takes. ``runtime.load``, the CLI's
``--backend`` choices, the pipeline (``cuda_executor``) and the benchmarks all read it, so a new
backend is one runner module plus one ``register_backend`` call in it.

Every runner speaks one option vocabulary (``OPTIONS``); an option the chosen runner does not take
is an error that names it, never silently dropped.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .core.errors import ModelError
from .core.sidecar import PRECISIONS as ARTEFACT_PRECISIONS

PRECISIONS = ("auto", *ARTEFACT_PRECISIONS)
"""What ``--precision`` chooses in an export folder; ``auto`` is each backend's own rule (``pick``)."""

__all__ = ["PRECISIONS", "Backend", "OPTIONS", "CAPABILITIES", "register_backend", "get_backend", "list_backends", "capabilities",
           "backend_for_file", "pick_file"]

OPTIONS = {
    "device": "where to run: auto, cpu, cuda or cuda:N",
    "threads": "CPU threads (ONNX Runtime intra-op, PyTorch)",
    "providers": "ONNX Runtime execution providers in order (tensorrt, cuda, cpu or full names)",
    "cuda_lib": "the CUDA layer of TensorRT engines and of the overlapped GPU executor: auto, pycuda, cuda-python "
                "or sim (the GPU path simulated on the CPU, for dry runs)",
    "fp16": "run a checkpoint in half precision (CUDA)",
    "cuda_graphs": "capture and replay CUDA graphs per input shape (CUDA)",
    "channels_last": "the channels-last memory format for PyTorch",
    "stream": "a CUDA stream handle to compute on (ONNX Runtime CUDA provider)",
    "spinning": "ONNX Runtime CPU threads busy-wait for work: on, run (only while a frame runs) or off",
    "optimization": "ONNX Runtime graph optimisation level: disable, basic, extended, layout or all",
    "optimized_cache": "keep ONNX Runtime's optimised model in ~/.cache/edgelight/ort and load it on the next "
                       "start (CPU provider)",
}
"""The one constructor vocabulary of every runner: option -> what it means."""

CAPABILITIES = {
    "cpu": "runs on the CPU",
    "cuda": "runs on an NVIDIA GPU",
    "fp16": "can compute in FP16 from an FP32 model",
    "cuda_graphs": "can replay CUDA graphs",
    "cuda_executor": "can be driven by the overlapped GPU executor (device buffers, enqueue on a stream)",
}


@dataclass(frozen=True)
class Backend:
    """One backend: its runner, its files, its availability and its capabilities.

    Args:
        name: the ``--backend`` value (``onnxruntime``).
        runner: the runner class; its module imports the backend's library only when a runner activates.
        suffixes: file suffixes it runs (``.onnx``), lower case.
        artefact: how messages name its files (``an .onnx file``).
        options: the ``OPTIONS`` its runner takes.
        capabilities: keys of ``CAPABILITIES``.
        probe: why it cannot run on this machine, or None (imports the backend's library).
        pick: ``pick(folder, precision)``: the file it would run in an export or run folder for ``precision``
            (``auto``, ``fp32``, ``fp16``, ``int8``), or None.
        auto: whether ``backend="auto"`` may pick it for a folder when it can run here.
    """

    name: str
    runner: Callable[..., object]
    suffixes: tuple[str, ...]
    artefact: str
    options: frozenset[str]
    capabilities: frozenset[str]
    probe: Callable[[], str | None]
    pick: Callable[[Path, str], Path | None]
    auto: bool = True

    def __post_init__(self) -> None:
        unknown = sorted((set(self.options) - set(OPTIONS)) | (set(self.capabilities) - set(CAPABILITIES)))
        if unknown:
            raise ValueError(f"backend {self.name!r} declares unknown options or capabilities: {', '.join(unknown)}")

    def unavailable(self) -> str | None:
        """Why this backend cannot run on this machine, or None."""
        return self.probe()

    def create(self, path: str | os.PathLike, **options):
        """The runner for ``path`` (not yet active); unknown options are a ModelError naming them."""
        given = {k: v for k, v in options.items() if v is not None}
        extra = sorted(set(given) - self.options)
        if extra:
            raise ModelError(f"the {self.name} backend ({Path(path).name}) does not take {', '.join(extra)}; "
                             f"it takes {', '.join(sorted(self.options)) or 'no options'}")
        return self.runner(path, **given)


_BACKENDS: dict[str, Backend] = {}


def register_backend(backend: Backend) -> Backend:
    """Add ``backend`` to the registry; registering a name twice is an error."""
    if backend.name in _BACKENDS or backend.name == "auto":
        raise ValueError(f"backend {backend.name!r} is already registered")
    _BACKENDS[backend.name] = backend
    return backend


def _registered() -> dict[str, Backend]:
    from . import runners  # noqa: F401  (each runner module registers its backend)

    return _BACKENDS


def list_backends() -> list[str]:
    """Registered backend names, in the order ``auto`` tries them for a folder."""
    return list(_registered())


def get_backend(name: str) -> Backend:
    try:
        return _registered()[name]
    except KeyError:
        raise ModelError(f"unknown backend {name!r}; choose from auto, {', '.join(list_backends())}") from None


def capabilities(name: str) -> frozenset[str]:
    """The capabilities of a registered backend; none for a runner outside the registry."""
    backend = _registered().get(name)
    return backend.capabilities if backend else frozenset()


def backend_for_file(path: Path) -> Backend:
    """The backend that runs a file, by its suffix."""
    suffix = path.suffix.lower()
    for backend in _registered().values():
        if suffix in backend.suffixes:
            return backend
    kinds = ", ".join(f"{'/'.join(b.suffixes)} ({b.name})" for b in _registered().values())
    raise ModelError(f"{path.name}: unknown model type; expected {kinds} or a folder")


def pick_file(folder: Path, backend: str = "auto", precision: str = "auto") -> Path:
    """The model file an export or run folder holds that ``backend`` (or, for auto, this machine) runs best.

    ``auto`` tries the backends in registration order and takes the first that can run here and
    finds its file: a run folder's ``best.ckpt`` (PyTorch), an engine when TensorRT can run, else an
    ONNX file: the FP16 one where ONNX Runtime has a GPU provider; on the CPU, of ``model.onnx`` and
    ``model.int8.onnx``, the one the export timed faster on this CPU model (else ``model.onnx``).
    ``precision`` (``fp32``, ``fp16``, ``int8``) insists on the artefact of that precision.
    """
    if precision not in PRECISIONS:
        raise ModelError(f"unknown precision {precision!r}; choose from {', '.join(PRECISIONS)}")
    wanted = "" if precision == "auto" else f"{precision.upper()} "
    if backend != "auto":
        chosen = get_backend(backend)
        found = chosen.pick(folder, precision)
        if found is None:
            raise ModelError(f"{folder} holds no {wanted}model for the {chosen.name} backend ({chosen.artefact}); "
                             f"export one with python -m export{' --' + precision if wanted else ''}")
        return found
    reasons = []
    for candidate in _registered().values():
        found = candidate.pick(folder, precision) if candidate.auto else None
        if found is not None:
            reason = candidate.unavailable()
            if reason is None:
                return found
            reasons.append(f"{found.name}: {reason}")
    if reasons:
        raise ModelError(f"{folder}: no {wanted}model there can run on this machine ({'; '.join(reasons)})")
    if wanted:
        raise ModelError(f"{folder} holds no {wanted}model; export one with python -m export --{precision}"
                         if precision != "fp32" else f"{folder} holds no FP32 model; export one with python -m export")
    names = ", ".join(b.artefact for b in _registered().values())
    raise ModelError(f"{folder} holds no model ({names}); export one with python -m export")
