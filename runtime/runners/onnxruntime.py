"""ONNX Runtime runner: TensorRT, CUDA or CPU execution providers; I/O binding on the GPU.

On the TensorRT provider the built engines are cached per ONNX file's content (``~/.cache/edgelight/ort-tensorrt/
<sha256[:16]>``; ONNX Runtime names an engine by the graph, not the weights, so two exports of one architecture
would otherwise share an engine) and the sidecar's optimisation profile is passed, so one engine serves every
input size the export takes. ``enqueue`` lets ``runtime.cuda_executor`` drive the session on device buffers.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..backends import Backend, register_backend
from ..core.errors import ModelError
from ..core.sidecar import Sidecar, cached_sha256, file_sha256, read_sidecar
from .base import Runner, TensorSpec, parse_device

if TYPE_CHECKING:
    from ..cuda import Cuda, Stream

__all__ = ["OnnxRuntimeRunner", "DEFAULT_PROVIDERS", "SPINNING", "OPTIMIZATION", "DEFAULT_SPINNING",
           "DEFAULT_OPTIMIZATION", "optimized_cache_dir"]

log = logging.getLogger("runtime")

Shape = tuple[int, ...]

DEFAULT_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")
"""Tried in this order; those the installed onnxruntime lacks are skipped."""

SPINNING = ("on", "run", "off")
"""``spinning``: CPU worker threads busy-wait for the next piece of work (``on``, ONNX Runtime's own default),
do so only while a frame runs and stop when it returns (``run``: ``session.force_spinning_stop``), or sleep
at once (``off``)."""

OPTIMIZATION = ("disable", "basic", "extended", "layout", "all")
"""``optimization``: ONNX Runtime's graph optimisation levels; ``layout`` and ``all`` add the NCHWc layout
(x86) and are specific to the CPU they ran on."""

DEFAULT_SPINNING = "run"
"""Spin only while a frame runs (``python -m benchmarks.ort_tuning``, benchmarks/RESULTS.md): as fast as
``on`` for inference and as fast as ``off`` end to end; ``on`` keeps spinning after each run and takes the
cores a pipeline's decode and encode threads need on a small machine, ``off`` sleeps between operators."""
DEFAULT_OPTIMIZATION = "all"

_TYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16}


def _cache_dir() -> Path:
    """The TensorRT provider's caches: its timing cache here, each model's engines in a folder of its digest."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "edgelight" / "ort-tensorrt"


def optimized_cache_dir() -> Path:
    """Where the CPU provider keeps optimised models: ``~/.cache/edgelight/ort`` (``$XDG_CACHE_HOME`` honoured).

    Not next to the ONNX file: export's parity check runs this runner in the folder it ships, which would
    then carry a file made for the exporting machine's CPU; entries are keyed by content, so a copied or
    moved export still finds its entry. Removing the folder is safe."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "edgelight" / "ort"


@functools.cache
def _cpu() -> str:
    """The CPU's model name and a digest of its feature flags: an NCHWc graph holds the block size of the
    vector width it was made for (AVX2 8, AVX-512 16), and virtual machines often give CPUs a vague name."""
    from ..core.host import cpu_name

    flags = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("flags", "Features"):
                flags = " ".join(sorted(value.split()))
                break
    except OSError:
        pass
    return f"{cpu_name()} [{hashlib.sha256(flags.encode()).hexdigest()[:8]}]"


def _cache_key(path: Path, level: str) -> str:
    """What an optimised model depends on: the ONNX file's bytes, ONNX Runtime's version, the CPU, the level."""
    import onnxruntime

    text = "|".join((cached_sha256(path), onnxruntime.__version__, _cpu(), level))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class OnnxRuntimeRunner(Runner):
    """Runs an exported ``.onnx`` file in ONNX Runtime.

    On the TensorRT provider, engines are cached in ``~/.cache/edgelight/ort-tensorrt/<digest>`` with the prefix
    ``edgelight_<digest>`` (the first 16 hex digits of the ONNX file's SHA-256: ONNX Runtime names a cached engine
    by the graph, not its weights, and every export is ``model.onnx``), the timing cache is shared, and the
    sidecar's profile is the engine's optimisation profile (``trt_profile_min_shapes`` and so on) when it covers
    every input of the file.

    On the CPU provider the session is tuned (benchmarks/RESULTS.md, ``python -m benchmarks.ort_tuning``), and
    the optimised model is kept: the first activation writes what ONNX Runtime made of the file to
    ``optimized_cache_dir()`` (``model.ort-all-<key>-<digest>.onnx``), keyed by the file's SHA-256, ONNX
    Runtime's version, the CPU and the optimisation level, and later activations load it with optimisations
    off. A damaged entry (its SHA-256 is in its name) is rebuilt with one warning.

    Args:
        path: the ONNX file (with its sidecar next to it).
        sidecar: the sidecar, if already read.
        providers: execution providers in order of preference (default ``DEFAULT_PROVIDERS``), or one
            of the short names ``tensorrt``, ``cuda``, ``cpu``.
        threads: intra-op threads on the CPU (None: ONNX Runtime's default, one per physical core).
        device: ``auto`` (the providers in order), ``cpu`` (the CPU provider only), ``cuda`` or ``cuda:N``
            (the GPU for the CUDA and TensorRT providers).
        stream: a CUDA stream handle (int) for the CUDA provider to compute on; None: its own.
        spinning: ``on``, ``run`` or ``off`` (``SPINNING``; default ``DEFAULT_SPINNING``): whether idle CPU
            threads busy-wait (faster within a run; between runs it takes the cores of a pipeline's other threads).
        optimization: the graph optimisation level, one of ``OPTIMIZATION`` (default ``all``).
        optimized_cache: keep the optimised model and load it on later activations (CPU provider only).
        cuda_lib: the CUDA layer ``executor_cuda`` returns on the CUDA and TensorRT providers: ``auto``,
            ``cuda-python`` or ``pycuda``; ``sim`` (``runtime.cuda.sim``) also on the CPU provider, a dry run of
            the GPU executor on a machine without a GPU.

    Attributes:
        optimized_from_cache: after activation, whether the session came from a kept optimised model.
        optimized_path: the kept optimised model read or written, or None.
        startup_s: seconds the session took to create (the cache's look-up and write included).
    """

    backend = "onnxruntime"

    def __init__(self, path: str | os.PathLike, sidecar: Sidecar | dict | None = None, *,
                 providers: tuple[str, ...] | list[str] | str | None = None, threads: int | None = None,
                 device: str | int = "auto", stream: int | None = None, spinning: str | bool = DEFAULT_SPINNING,
                 optimization: str = DEFAULT_OPTIMIZATION, optimized_cache: bool = True,
                 cuda_lib: str = "auto") -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise ModelError(f"no ONNX model at {self.path}")
        super().__init__(sidecar or read_sidecar(self.path))
        kind, self.device_id = parse_device(device)
        if kind == "cpu":
            if providers is not None and tuple([providers] if isinstance(providers, str) else providers) != ("cpu",):
                raise ModelError("device cpu runs the CPU execution provider only; drop --providers or the device")
            providers = ("cpu",)
        if isinstance(spinning, bool):
            spinning = "on" if spinning else "off"
        if spinning not in SPINNING:
            raise ModelError(f"spinning {spinning!r}: expected {', '.join(SPINNING)}")
        if optimization not in OPTIMIZATION:
            raise ModelError(f"optimization {optimization!r}: expected {', '.join(OPTIMIZATION)}")
        if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 0):
            raise ModelError(f"threads {threads!r}: expected a whole number of CPU threads (0: one per core)")
        self.requested = (providers,) if isinstance(providers, str) else tuple(providers or DEFAULT_PROVIDERS)
        self.threads, self.stream = threads, stream
        self.spinning, self.optimization, self.optimized_cache = spinning, optimization, bool(optimized_cache)
        self.optimized_from_cache, self.optimized_path, self.startup_s = False, None, 0.0
        self.cuda_lib = cuda_lib
        self.session = None
        self._bound: dict[str, object] = {}
        self._cuda: Cuda | None = None

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
                out.append((name, self._tensorrt_options()))
            elif name == "CUDAExecutionProvider":
                options = {"device_id": self.device_id}
                if self.stream is not None:
                    options.update(has_user_compute_stream=1, user_compute_stream=str(self.stream))
                out.append((name, options))
            else:
                out.append(name)
        return out

    def _tensorrt_options(self) -> dict:
        """The TensorRT provider's options: engines cached by the file's content, the sidecar's profile."""
        digest = cached_sha256(self.path)[:16]
        cache = _cache_dir()
        engines = cache / digest
        try:  # ONNX Runtime makes only the last folder of a cache path
            engines.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            log.debug("cannot make the TensorRT engine cache %s: %s", engines, exc)
        options = {"device_id": self.device_id, "trt_engine_cache_enable": True, "trt_engine_cache_path": str(engines),
                   "trt_engine_cache_prefix": f"edgelight_{digest}", "trt_timing_cache_enable": True,
                   "trt_timing_cache_path": str(cache)}
        return {**options, **self._tensorrt_profile()}

    def _tensorrt_profile(self) -> dict[str, str]:
        """``trt_profile_{min,opt,max}_shapes`` from the sidecar's profile (``image:1x3x32x32,light:1x27``), which
        covers every input the contract names, as the provider needs (the sidecar schema holds it to that)."""
        names = [spec["name"] for spec in self.contract["inputs"]]
        return {f"trt_profile_{kind}_shapes": ",".join(
            f"{name}:{'x'.join(str(int(d)) for d in getattr(self.profile[name], kind))}" for name in names)
            for kind in ("min", "opt", "max")}

    def session_options(self, level: str | None = None):
        """The ``onnxruntime.SessionOptions`` this runner creates its session with (``level``: another level)."""
        import onnxruntime as ort

        levels = {"disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
                  "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
                  "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
                  "layout": getattr(ort.GraphOptimizationLevel, "ORT_ENABLE_LAYOUT",
                                    ort.GraphOptimizationLevel.ORT_ENABLE_ALL),
                  "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL}
        options = ort.SessionOptions()
        options.graph_optimization_level = levels[level or self.optimization]
        options.log_severity_level = 3
        if self.threads:
            options.intra_op_num_threads = self.threads
        options.add_session_config_entry("session.intra_op.allow_spinning", "0" if self.spinning == "off" else "1")
        if self.spinning == "run":
            options.add_session_config_entry("session.force_spinning_stop", "1")
        return options

    def activate_impl(self) -> None:
        start = time.perf_counter()
        providers = self._provider_list()
        self.optimized_from_cache, self.optimized_path = False, None
        session = None
        if self.optimized_cache and self.optimization != "disable" and providers == ["CPUExecutionProvider"]:
            session = self._cached_session(providers)
        if session is None:
            session = self._create(self.path, self.session_options(), providers)
        self.startup_s = time.perf_counter() - start
        self.session = session
        self.providers = self.session.get_providers()
        self._types = {i.name: _TYPES.get(i.type, np.float32) for i in self.session.get_inputs()}
        self._outputs = [o.name for o in self.session.get_outputs()]
        self._output_types = {o.name: _TYPES.get(o.type, np.float32) for o in self.session.get_outputs()}

    def _create(self, path: Path, options, providers: list):
        import onnxruntime as ort

        try:
            return ort.InferenceSession(str(path), options, providers=providers)
        except ModelError:
            raise
        except Exception as exc:  # a corrupt or foreign file fails inside the ONNX parser
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelError(f"ONNX Runtime cannot load {path}: {first}") from None

    def _cached_session(self, providers: list):
        """The session from the kept optimised model, else a new one that keeps it; None when it cannot be kept."""
        import glob

        from ..core.io import publish, temp_file

        folder = optimized_cache_dir()
        stem = f"{self.path.stem}.ort-{self.optimization}-{_cache_key(self.path, self.optimization)}"
        for entry in sorted(folder.glob(f"{glob.escape(stem)}-*.onnx")) if folder.is_dir() else ():
            try:
                if cached_sha256(entry)[:16] == entry.stem.rsplit("-", 1)[1]:
                    session = self._create(entry, self.session_options("disable"), providers)
                    self.optimized_from_cache, self.optimized_path = True, entry
                    return session
                problem = "its SHA-256 does not match its name"
            except (OSError, ModelError) as exc:
                problem = str(exc)
            log.warning("ONNX Runtime's optimised model %s is damaged (%s); rebuilding it", entry, problem)
            try:
                entry.unlink(missing_ok=True)
            except OSError:
                pass
        try:
            tmp = temp_file(folder / f"{stem}.onnx", suffix=".onnx")
        except OSError as exc:
            log.debug("no optimised-model cache in %s: %s", folder, exc)
            return None
        options = self.session_options()
        options.optimized_model_filepath = str(tmp)
        try:
            session = self._create(self.path, options, providers)
        except ModelError:
            tmp.unlink(missing_ok=True)
            return None  # the plain session says what is wrong with the model, or runs it without a cache
        try:
            if tmp.stat().st_size == 0:
                raise OSError("ONNX Runtime wrote nothing")
            self.optimized_path = publish(tmp, folder / f"{stem}-{file_sha256(tmp)[:16]}.onnx", overwrite=True)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            log.warning("cannot keep ONNX Runtime's optimised model of %s in %s (%s); the next start "
                        "optimises it again", self.path.name, folder, exc)
        return session

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
        self.session, self._cuda = None, None

    def executor_cuda(self) -> Cuda | None:
        """``get_cuda(cuda_lib, device)`` on the CUDA and TensorRT providers; on the CPU provider the simulation
        for ``cuda_lib="sim"``, else None (also before activation).

        Raises:
            UserError: the session is on a GPU but no CUDA Python library is installed (the message says which).
        """
        if self.session is None:
            return None
        if self._cuda is None:
            from ..cuda import get_cuda

            if self.providers[0] in ("CUDAExecutionProvider", "TensorrtExecutionProvider"):
                if self.cuda_lib == "sim":
                    raise ModelError("cuda_lib sim simulates the GPU path on the CPU: use it with device cpu")
                self._cuda = get_cuda(self.cuda_lib, self.device_id)
            elif self.providers[0] == "CPUExecutionProvider" and self.cuda_lib == "sim":
                self._cuda = get_cuda("sim")
        return self._cuda

    def enqueue(self, shapes: Mapping[str, Shape], addresses: Mapping[str, int], stream: Stream) -> dict[str, Shape]:
        """Run once on device buffers owned by the caller, in ``stream``'s order (``Cuda.run_in_order``).

        ONNX Runtime computes on a stream of its own and has finished when its run returns, so the run waits for
        the work queued on ``stream`` before it and the work queued after it waits for the run.

        Args:
            shapes: the shape of every input.
            addresses: the device address of every input and output, each large enough for its shape and type
                (``input_metadata`` / ``output_metadata``: float32 or float16).
            stream: a stream of ``executor_cuda()``.

        Returns:
            The shape of every output (``output_shapes``).

        Raises:
            ValueError: a shape or an address is missing.
            RuntimeError: the runner is not active, or computes on host arrays only (``executor_cuda()`` is None).
        """
        if self.session is None:
            raise RuntimeError(f"{type(self).__name__} is not active")
        cuda = self.executor_cuda()
        if cuda is None:
            raise RuntimeError(f"{self._label()} runs on the {self.providers[0]} on host arrays; enqueue needs the "
                               "CUDA or TensorRT provider (or cuda_lib='sim' for a dry run)")
        self._check_enqueue(shapes, addresses, self._types, self._outputs)
        outputs = self.output_shapes({name: tuple(shapes[name]) for name in self._types})
        if missing := [name for name in self._outputs if name not in outputs]:
            raise ModelError(f"{self._label()}: the contract gives no shape for output {', '.join(missing)}")
        device, device_id = ("cpu", 0) if cuda.host_memory else ("cuda", self.device_id)
        bind_inputs = [(name, kind, tuple(int(d) for d in shapes[name]), int(addresses[name]))
                       for name, kind in self._types.items()]
        bind_outputs = [(name, self._output_types[name], tuple(int(d) for d in outputs[name]), int(addresses[name]))
                        for name in self._outputs]
        session = self.session

        def run() -> None:
            binding = session.io_binding()
            for name, kind, shape, address in bind_inputs:
                binding.bind_input(name, device, device_id, kind, shape, address)
            for name, kind, shape, address in bind_outputs:
                binding.bind_output(name, device, device_id, kind, shape, address)
            session.run_with_iobinding(binding)

        cuda.run_in_order(stream, run, synchronous=True)
        return {name: outputs[name] for name in self._outputs}

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


_FILES = {"fp32": "model.onnx", "fp16": "model.fp16.onnx", "int8": "model.int8.onnx"}


def _pick(folder: Path, precision: str = "auto") -> Path | None:
    """The export's file of ``precision``; for ``auto``: ``model.fp16.onnx`` first where ONNX Runtime has a GPU
    provider; on the CPU the faster of ``model.onnx`` and ``model.int8.onnx`` as the export timed them on this
    CPU model (``cpu_time`` in their sidecars), else ``model.onnx`` (FP16 runs slower on the CPU: ONNX Runtime
    wraps its nodes in casts)."""
    if precision != "auto":
        path = folder / _FILES.get(precision, "")
        return path if path.is_file() else None
    try:
        import onnxruntime

        gpu = "CUDAExecutionProvider" in onnxruntime.get_available_providers()
    except ImportError:
        gpu = False
    if gpu:
        names = ("model.fp16.onnx", "model.onnx", "model.int8.onnx")
    else:
        names = (*_fastest_here(folder, ("model.onnx", "model.int8.onnx")), "model.fp16.onnx")
    return next((folder / n for n in names if (folder / n).is_file()), None)


def _fastest_here(folder: Path, names: tuple[str, ...]) -> tuple[str, ...]:
    """``names`` fastest first by the export's CPU time, when every file present was timed on this CPU model."""
    from ..core.host import cpu_name

    times = {}
    for name in names:
        if not (folder / name).is_file():
            continue
        try:
            timing = read_sidecar(folder / name).extra.get("cpu_time") or {}
        except ModelError:
            return names
        if timing.get("cpu") != cpu_name() or not isinstance(timing.get("p50_ms"), (int, float)):
            return names
        times[name] = timing["p50_ms"]
    return tuple(sorted(times, key=times.get)) or names


register_backend(Backend(
    name="onnxruntime", runner=OnnxRuntimeRunner, suffixes=(".onnx",), artefact="an .onnx file",
    options=frozenset({"device", "threads", "providers", "stream", "spinning", "optimization", "optimized_cache",
                       "cuda_lib"}), capabilities=frozenset({"cpu", "cuda", "cuda_executor"}),
    probe=_probe, pick=_pick))
