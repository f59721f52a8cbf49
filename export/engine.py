"""FP16 ONNX -> TensorRT engine plan, with a build cache, a timing cache and a runner for parity checks.

The network is created strongly typed, so the precision of every layer comes from the ONNX file (a
mixed-precision FP16 ONNX written by ``export``, or the symmetric INT8 Q/DQ file ``model.int8.qdq.onnx``,
which TensorRT builds by explicit quantization): no precision builder flags are set. That one path
builds on TensorRT 10 and TensorRT 11, which removed weak typing.

``tensorrt`` (and ``torch``, for the GPU) are imported inside the functions that need them, so this
module imports on machines without either; ``unavailable_reason()`` says why an engine cannot be built.

Engine plans are written raw (nothing prepended, so ``trtexec --loadEngine`` reads them); what they
were built with goes in the sidecar, from the returned ``EngineBuild``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING


from runtime.core.io import atomic_path

from runtime.core.sidecar import file_sha256

if TYPE_CHECKING:
    import tensorrt

__all__ = ["EngineError", "Profile", "EngineBuild", "unavailable_reason", "tensorrt_version", "compute_capability",
           "device_name", "cache_key", "build_engine"]

Shape = tuple[int, ...]


class EngineError(RuntimeError):
    """TensorRT could not parse, build, load or run an engine; the message says what went wrong."""


def unavailable_reason() -> str | None:
    """Why no TensorRT engine can be built or run here, or None when one can.

    Returns:
        None when the ``tensorrt`` package imports and PyTorch sees a CUDA GPU; otherwise one
        sentence naming what is missing and how to get an engine.
    """
    try:
        import tensorrt as trt
    except ImportError as err:
        if getattr(err, "name", None) == "tensorrt":
            return "the tensorrt package is not installed (pip install tensorrt on a machine with an NVIDIA GPU)"
        return f"the tensorrt package is installed but does not load ({err}); reinstall it with pip install tensorrt"
    # tensorrt-stubs installs a bare tensorrt/ folder of .pyi files, which imports as an empty namespace package.
    if not hasattr(trt, "Builder"):
        return "the tensorrt package is not installed, only its type stubs (pip install tensorrt on a machine " \
               "with an NVIDIA GPU)"
    try:
        import torch
    except ImportError:
        return "PyTorch is not installed (pip install 'edgelight[export]'); it finds the GPU and holds the buffers"
    if not torch.cuda.is_available():
        return "no CUDA GPU is visible (build the engine on the machine, or one of the GPU type, that will run it)"
    return None


def tensorrt_version() -> str:
    """The installed TensorRT version, such as ``"10.13.0.35"``."""
    import tensorrt as trt

    return trt.__version__


def compute_capability() -> str:
    """The compute capability of the current CUDA device, such as ``"9.0"`` for an H100."""
    import torch

    major, minor = torch.cuda.get_device_capability()
    return f"{major}.{minor}"


def device_name() -> str:
    """The name of the current CUDA device, such as ``"NVIDIA L4"`` (GPUs of one compute capability differ)."""
    import torch

    return torch.cuda.get_device_name()


@dataclass(frozen=True)
class Profile:
    """One optimisation profile: the range of input shapes the engine accepts and the shape it is tuned for."""

    shapes: dict[str, tuple[Shape, Shape, Shape]]
    """Per input name, the full (min, opt, max) shapes, e.g. ``{"image": ((1, 3, 64, 64), (1, 3, 720, 1280), ...)}``."""

    def __post_init__(self) -> None:
        if not self.shapes:
            raise ValueError("an optimisation profile needs the shapes of at least one input")
        for name, (low, opt, high) in self.shapes.items():
            if not len(low) == len(opt) == len(high):
                raise ValueError(f"profile input {name!r}: min, opt and max shapes differ in rank: "
                                 f"{low}, {opt}, {high}")
            if not all(0 <= a <= b <= c for a, b, c in zip(low, opt, high)):
                raise ValueError(f"profile input {name!r}: needs 0 <= min <= opt <= max in every dimension, "
                                 f"got {low}, {opt}, {high}")

    def to_dict(self) -> dict[str, dict[str, list[int]]]:
        """JSON-friendly form: ``{name: {"min": [...], "opt": [...], "max": [...]}}``."""
        return {name: dict(zip(("min", "opt", "max"), map(list, shapes))) for name, shapes in self.shapes.items()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Mapping[str, list[int]]]) -> Profile:
        """The inverse of ``to_dict`` (for example, read back from a sidecar)."""
        return cls({name: (tuple(s["min"]), tuple(s["opt"]), tuple(s["max"])) for name, s in data.items()})


@dataclass
class EngineBuild:
    """What ``build_engine`` produced and what it was built with (for the engine's sidecar)."""

    path: Path
    cache_key: str
    reused: bool
    """True when the plan was copied from the engine cache instead of built."""
    seconds: float
    trt_version: str
    compute_capability: str
    profile: dict
    options: dict
    size_bytes: int
    device_name: str = ""
    """The GPU the plan was built on (``device_name()``), such as ``"NVIDIA L4"``."""


def cache_key(onnx_sha256: str, trt_version: str, compute_capability: str, profile: Profile, options: dict, *,
              device_name: str) -> str:
    """The engine cache key: a hex sha256 over everything that decides the plan.

    Args:
        onnx_sha256: hex sha256 of the ONNX file.
        trt_version: TensorRT version (plans do not load in another version unless version compatible).
        compute_capability: the GPU's compute capability (plans are built for one GPU architecture).
        profile: the optimisation profile.
        options: the build options (workspace, version and hardware compatibility, ...).
        device_name: the GPU's name: GPUs of one compute capability (an L4, an RTX 4090, an L40S) get
            different plans, tuned to their own kernels' timings.

    Returns:
        64 hex digits; any change in a component changes the key.
    """
    parts = {"onnx_sha256": onnx_sha256, "trt_version": trt_version, "compute_capability": compute_capability,
             "device_name": device_name, "profile": profile.to_dict(), "options": options}
    canonical = json.dumps(parts, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def _write_atomic(path: Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def build_engine(onnx_path: str | os.PathLike, engine_path: str | os.PathLike, profile: Profile, *,
                 workspace_gb: float = 4.0, timing_cache: Path | None = None, cache_dir: Path | None = None,
                 version_compatible: bool = False, exclude_lean_runtime: bool = False,
                 hardware_compatible: bool = False, progress: bool = True,
                 log: Callable[[str], object] = print) -> EngineBuild:
    """Build a TensorRT engine plan from an (FP16 mixed-precision) ONNX file, or reuse a cached one.

    Args:
        onnx_path: the ONNX file; its tensor types set the engine's precision (strongly typed network).
        engine_path: where the plan is written (raw bytes, atomically).
        profile: the optimisation profile: min / opt / max shapes of every input.
        workspace_gb: limit of the builder's workspace memory pool, in GiB.
        timing_cache: a timing cache file: read if it exists, written back (atomically) after a build.
            Layer timings are reused across builds, which makes rebuilds much faster.
        cache_dir: an engine cache folder: the plan is kept as ``<cache_key>.engine`` there and copied
            instead of rebuilt when the ONNX file, TensorRT version, GPU model, profile and options match.
        version_compatible: build a plan that later TensorRT versions of the same major can run
            (``BuilderFlag.VERSION_COMPATIBLE``). Such a plan embeds the lean runtime, which is host
            code: the loading runtime must allow it (the runtime's TensorRT runner allows it for
            version-compatible plans).
        exclude_lean_runtime: with ``version_compatible``, leave the lean runtime out of the plan
            (``BuilderFlag.EXCLUDE_LEAN_RUNTIME``); a newer runtime then loads the build version's lean
            runtime library with ``Runtime.load_runtime``.
        hardware_compatible: build for every Ampere or newer GPU (``HardwareCompatibilityLevel.AMPERE_PLUS``),
            possibly slower than a plan for this GPU alone.
        progress: print the builder's phases through ``log``.
        log: where progress lines go.

    Returns:
        An ``EngineBuild`` describing the plan (for the sidecar).

    Raises:
        EngineError: TensorRT or a GPU is missing, the ONNX file does not parse, the profile does
            not match its inputs, or the build fails.
    """
    reason = unavailable_reason()
    if reason:
        raise EngineError(f"cannot build a TensorRT engine: {reason}")
    if exclude_lean_runtime and not version_compatible:
        raise EngineError("exclude_lean_runtime only applies to version-compatible engines (version_compatible=True)")
    onnx_path, engine_path = Path(onnx_path), Path(engine_path)
    if not onnx_path.is_file():
        raise EngineError(f"no ONNX file at {onnx_path}")
    options = {"workspace_gb": float(workspace_gb), "version_compatible": version_compatible,
               "exclude_lean_runtime": exclude_lean_runtime, "hardware_compatible": hardware_compatible}
    trt_version, capability, gpu = tensorrt_version(), compute_capability(), device_name()
    key = cache_key(file_sha256(onnx_path), trt_version, capability, profile, options, device_name=gpu)
    cached = Path(cache_dir) / f"{key}.engine" if cache_dir is not None else None
    start = time.perf_counter()
    if cached is not None and cached.is_file():
        with atomic_path(engine_path) as tmp:
            shutil.copyfile(cached, tmp)
        reused = True
        log(f"TensorRT engine reused from the engine cache: {cached}")
    else:
        log(f"Building a TensorRT {trt_version} engine for the {gpu} (compute capability {capability}) from "
            f"{onnx_path.name} ...")
        plan = _build_plan(onnx_path, profile, options, timing_cache, log, progress)
        _write_atomic(engine_path, plan)
        if cached is not None:
            _write_atomic(cached, plan)
        reused = False
    seconds = time.perf_counter() - start
    if not reused:
        log(f"TensorRT engine built in {seconds:.1f} s: {engine_path}")
    return EngineBuild(path=engine_path, cache_key=key, reused=reused, seconds=seconds, trt_version=trt_version,
                       compute_capability=capability, profile=profile.to_dict(), options=options,
                       size_bytes=engine_path.stat().st_size, device_name=gpu)


def _build_plan(onnx_path: Path, profile: Profile, options: dict, timing_cache: Path | None,
                log: Callable[[str], object], progress: bool) -> bytes:
    import tensorrt as trt

    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    # Required on TensorRT 10 for the ONNX file's types to be kept; always on (and ignored) on TensorRT 11.
    network = builder.create_network(1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED))
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "\n".join(f"  {parser.get_error(i)}" for i in range(parser.num_errors))
        raise EngineError(f"TensorRT could not parse {onnx_path}:\n{errors}")
    inputs = sorted(network.get_input(i).name for i in range(network.num_inputs))
    if inputs != sorted(profile.shapes):
        raise EngineError(f"the optimisation profile gives shapes for {sorted(profile.shapes)} but {onnx_path.name} "
                          f"has the inputs {inputs}")

    config = builder.create_builder_config()
    shapes = builder.create_optimization_profile()
    for name, (low, opt, high) in profile.shapes.items():
        shapes.set_shape(name, trt.Dims(list(low)), trt.Dims(list(opt)), trt.Dims(list(high)))
    if config.add_optimization_profile(shapes) < 0:
        raise EngineError(f"TensorRT rejected the optimisation profile {profile.to_dict()}")
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(options["workspace_gb"] * (1 << 30)))
    if options["version_compatible"]:
        config.set_flag(trt.BuilderFlag.VERSION_COMPATIBLE)
        if options["exclude_lean_runtime"]:
            config.set_flag(trt.BuilderFlag.EXCLUDE_LEAN_RUNTIME)
    if options["hardware_compatible"]:
        config.hardware_compatibility_level = trt.HardwareCompatibilityLevel.AMPERE_PLUS
    if timing_cache is not None:
        _load_timing_cache(config, Path(timing_cache), log)
    monitor = _progress_monitor(log) if progress else None
    if monitor is not None:
        config.progress_monitor = monitor  # ``monitor`` keeps it alive until the build returns

    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise EngineError(f"TensorRT could not build an engine from {onnx_path} (its errors are printed above)")
    if timing_cache is not None:
        _write_atomic(Path(timing_cache), bytes(config.get_timing_cache().serialize()))
    return bytes(plan)


def _load_timing_cache(config: tensorrt.IBuilderConfig, path: Path, log: Callable[[str], object]) -> None:
    data = path.read_bytes() if path.is_file() else b""
    cache = config.create_timing_cache(data)
    if cache is not None and config.set_timing_cache(cache, ignore_mismatch=False):
        return
    # A cache from another GPU or TensorRT version, or a damaged file: start afresh (it is rewritten after the build).
    log(f"timing cache {path} does not match this GPU and TensorRT version; starting a new one")
    config.set_timing_cache(config.create_timing_cache(b""), ignore_mismatch=False)


def _progress_monitor(log: Callable[[str], object]) -> tensorrt.IProgressMonitor:
    import tensorrt as trt

    class Monitor(trt.IProgressMonitor):
        """Logs a line when an outer build phase (top level or one below) starts; never cancels."""

        def __init__(self) -> None:
            trt.IProgressMonitor.__init__(self)
            self._lock = threading.Lock()  # TensorRT may call from several threads
            self._depth: dict[str, int] = {}

        def phase_start(self, phase_name: str, parent_phase: str | None, num_steps: int) -> None:
            with self._lock:
                depth = self._depth.get(parent_phase, -1) + 1 if parent_phase else 0
                self._depth[phase_name] = depth
            if depth <= 1:
                log(f"  {'  ' * depth}{phase_name} ({num_steps} step{'s' if num_steps != 1 else ''})")

        def step_complete(self, phase_name: str, step: int) -> bool:
            return True  # False would cancel the build

        def phase_finish(self, phase_name: str) -> None:
            with self._lock:
                self._depth.pop(phase_name, None)

    return Monitor()
