"""``python -m benchmarks``: every backend against the PyTorch reference, with percentiles, parity and the floor.

    python -m benchmarks                                         # edge models, 360p, every backend here
    python -m benchmarks --models lowlight_edge unet_edge --resolutions 360p,720p --iters 50
    python -m benchmarks --models runs/lowlight --backends torch,ort-cpu,tensorrt --out bench/

Rows: model x backend x precision x resolution, batch 1: p50 / p95 / p99 latency, FPS, speed-up
over PyTorch eager FP32 (the reference), parity PSNR against the reference on realistic inputs,
artefact size, peak memory, and the physical floor (the best time the device allows from the
model's operation count and minimum bytes moved) as a share of the measured time. End-to-end rows
run the runtime pipeline on a generated clip next to the inference-only figure. Backends that
cannot run here are listed once with the reason. Writes results.json, results.md and latency.png.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import os
import platform
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from runtime.core.cli import ArgumentParser, bounded_float, bounded_int, thread_count
from runtime.core.sidecar import MAX_SIDE, PRECISIONS

from .backends import BACKENDS, backend_names
from .models import DEFAULT_MODELS, parse_resolution

__all__ = ["main", "build_parser", "run_benchmarks"]


def _list(text: str) -> list[str]:
    return [v.strip() for v in text.split(",") if v.strip()]


def _resolutions(text: str) -> list[str]:
    """A comma list of resolutions, each checked (360p, 720p, 1080p or HxW with sides up to 8192)."""
    names = _list(text)
    if not names:
        raise argparse.ArgumentTypeError(f"{text!r}: expected 360p, 720p, 1080p or HxW, comma-separated")
    for name in names:
        try:
            h, w = parse_resolution(name)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
        if max(h, w) > MAX_SIDE:
            raise argparse.ArgumentTypeError(f"{name!r}: both sides must be at most {MAX_SIDE}")
    return names


_resolutions.numeric = True  # type: ignore[attr-defined]


def build_parser() -> ArgumentParser:
    p = ArgumentParser(prog="python -m benchmarks", description="Benchmark" + __doc__.split(
        "``python -m benchmarks``: every backend", 1)[1].replace("``", ""))
    p.add_argument("--models", nargs="+", default=list(DEFAULT_MODELS), metavar="MODEL",
                   help="registry names (seeded weights) or checkpoints / run folders (default: every family's "
                        "edge preset)")
    p.add_argument("--backends", type=_list, default=backend_names(), metavar="LIST",
                   help=f"comma list from {', '.join(backend_names())} (default: all; those unavailable are "
                        "listed with the reason)")
    p.add_argument("--resolutions", type=_resolutions, default=["360p"], metavar="LIST",
                   help="360p, 720p, 1080p or HxW, comma-separated (default: 360p)")
    p.add_argument("--precisions", type=_list, default=list(PRECISIONS), metavar="LIST",
                   help="fp32, fp16, int8 (default: all three; INT8 rows run python -m export --int8's file, "
                        "calibrated on the family's generated inputs)")
    p.add_argument("--warmup", type=bounded_int(0, 1_000_000), default=3, help="untimed runs before timing")
    p.add_argument("--iters", type=bounded_int(1, 1_000_000), default=20, help="timed runs per row")
    p.add_argument("--e2e-frames", type=bounded_int(0, 1_000_000), default=60,
                   help="frames of the generated clip for end-to-end rows (0: none)")
    p.add_argument("--live-seconds", type=bounded_float(0.0, 3600.0), default=5.0,
                   help="per end-to-end row, also run the pipeline on a live H.264 stream on loopback (UDP, "
                        f"{_LIVE_FPS:g} FPS in real time, the row's size) for this long and report capture-to-output "
                        "latency p50/p95/p99, dropped frames and output FPS (python -m benchmarks.live); 0: off. "
                        "5 s counts 150 frames (p99 is then the second worst) and adds about 8 s per row; give "
                        "more for steadier tails")
    p.add_argument("--threads", type=thread_count, help="CPU threads for PyTorch and ONNX Runtime (default: all)")
    p.add_argument("--out", default="benchmarks/out", metavar="DIR", help="where results.json/.md/latency.png go")
    p.add_argument("--cache", metavar="DIR", help="exported models and engines (default: ~/.cache/edgelight/bench)")
    return p


# -- environment -------------------------------------------------------------------------------------------------

def environment(threads: int | None) -> dict:
    """CPU, GPU, driver, library versions and thread counts, for the header."""
    import torch

    try:
        import onnxruntime
    except ImportError:
        onnxruntime = None

    from runtime.core.host import cpu_name

    if threads:
        torch.set_num_threads(threads)
    env = {"date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"), "host": platform.node(),
           "cpu": cpu_name(), "cores": os.cpu_count(), "python": platform.python_version(),
           "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
           "onnxruntime": onnxruntime.__version__ if onnxruntime else None,
           "ort_providers": onnxruntime.get_available_providers() if onnxruntime else [],
           "ort_threads": threads or "default (one per core)", "gpu": None}
    if torch.cuda.is_available():
        # FP32 means FP32: TF32 tensor cores would make the reference faster than its stated FP32 floor.
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        props = torch.cuda.get_device_properties(0)
        env["gpu"] = {"name": props.name, "compute_capability": f"{props.major}.{props.minor}",
                      "memory_gb": round(props.total_memory / 2**30, 1), "cuda": torch.version.cuda,
                      "driver": _driver()}
    try:
        import tensorrt

        env["tensorrt"] = getattr(tensorrt, "__version__", None)
    except ImportError:
        env["tensorrt"] = None
    return env


def _driver() -> str | None:
    import subprocess

    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=10)
        return out.stdout.strip().splitlines()[0] if out.returncode == 0 and out.stdout.strip() else None
    except (OSError, subprocess.SubprocessError):
        return None


# -- measuring ---------------------------------------------------------------------------------------------------

class _PeakRSS:
    """Samples the process's resident memory every 5 ms while a row runs (loading, timing, end to end)."""

    def __init__(self) -> None:
        self.peak, self._stop = 0.0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def rss_mb() -> float:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20

    def _run(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, self.rss_mb())

    def __enter__(self) -> _PeakRSS:
        self.peak = self.rss_mb()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def _time(runner, feeds: dict, warmup: int, iters: int) -> list[float]:
    """Seconds per run: CUDA events for PyTorch on a GPU, a monotonic clock otherwise (runs are synchronous)."""
    for _ in range(warmup):
        runner.infer(feeds)
    times = []
    if runner.backend == "torch" and runner.device == "cuda":
        import torch

        for _ in range(iters):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            runner.infer(feeds)
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end) / 1e3)
        return times
    for _ in range(iters):
        t0 = time.perf_counter()
        runner.infer(feeds)
        times.append(time.perf_counter() - t0)
    return times


def _gpu_peak_mb(runner) -> float | None:
    if runner.device != "cuda" or runner.backend != "torch":
        return None
    import torch

    return torch.cuda.max_memory_allocated() / 2**20


def _psnr(reference: dict, got: dict, contract: dict, precision: str) -> float | None:
    from export.parity import compare

    values = [r.psnr for r in compare("row", precision, reference, got, contract)]
    if any(v is None for v in values):
        finite = [v for v in values if v is not None]
        return min(finite) if finite else float("inf")
    return min(values)


def _artefact_size(runner) -> int | None:
    path = getattr(runner, "path", None) or getattr(runner, "engine_path", None)
    return Path(path).stat().st_size if path and Path(path).is_file() else None


_LIVE_FPS = 30.0
"""Frame rate of the live stream of end-to-end rows (``--live-seconds``)."""


def _e2e(runner, size: tuple[int, int], frames: int, clips: Path, live_seconds: float = 0.0) -> dict | None:
    """The runtime pipeline on a generated clip (decode, fit, infer, encode to MP4): FPS and stage stats.

    The model's task (from its sidecar) says which clip it takes; tasks without one (``ibr``) and
    families no task drives have no end-to-end row. With ``live_seconds``, the summary's ``live`` holds
    :func:`benchmarks.live.live_latency` on a live loopback stream of the clip's frames (or ``{"error": ...}``
    when it could not run: the row keeps its file figures).
    """
    from runtime import Pipeline
    from runtime.democlip import make_demo_clip
    from runtime.tasks import task_for
    from runtime.video import open_sink, open_source

    kind = task_for(runner)
    if kind is None or kind.demo_clip is None:
        return None
    task = kind.for_benchmark(runner, frames)
    clip = clips / f"{kind.demo_clip}-{size[0]}x{size[1]}-{frames}.mp4"
    if not clip.is_file():
        make_demo_clip(clip, kind=kind.demo_clip, frames=frames, size=size)
    with tempfile.TemporaryDirectory() as tmp:
        source = open_source(clip)
        sink = open_sink(Path(tmp) / "out.mp4", fps=source.fps)
        pipeline = Pipeline(runner, task, source, sink)
        summary = pipeline.run()
        sink.close()
    if live_seconds > 0:
        summary["live"] = _live(runner, kind, size, clip, live_seconds)
    return summary


def _live(runner, kind, size: tuple[int, int], clip: Path, seconds: float) -> dict:
    """Live latency on a loopback stream of ``clip``'s first frames, or ``{"error": ...}``."""
    from runtime.video import open_source

    from .live import live_latency

    try:
        with open_source(clip) as source:
            # A third of a second of content, looped: its frames count towards the row's peak memory.
            frames = [frame.image for _, frame in zip(range(round(_LIVE_FPS / 3)), source)]
        task = kind.for_benchmark(runner, round(seconds * _LIVE_FPS))
        return live_latency(runner, task, size, seconds, _LIVE_FPS, frames=frames)
    except Exception as exc:  # the file figures of the row stand without it
        return {"error": f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"}


def _live_fields(live: dict | None) -> dict:
    """The ``live_*`` fields of an end-to-end row (None when not measured or when it failed)."""
    live = live or {}
    return {"live_p50_ms": live.get("p50_ms"), "live_p95_ms": live.get("p95_ms"), "live_p99_ms": live.get("p99_ms"),
            "live_dropped": live.get("dropped"), "live_sent": live.get("sent"), "live_fps": live.get("output_fps"),
            "live_queue_grew": live.get("queue_grew"), "live_error": live.get("error")}


def _floor(model, size: tuple[int, int], precision: str, peaks: dict | None) -> dict | None:
    """The roofline floor at ``precision``; a CPU states no FP16 peak (ONNX Runtime computes FP16 nodes in
    FP32 there), so FP16 rows on a CPU are held to the FP32 floor."""
    from .floor import floor_ms, model_cost

    if not peaks:
        return None
    if not peaks.get(f"{precision}_tflops"):
        precision = "fp32"
    cost = model_cost(model, *size, precision=precision)
    return {**floor_ms(cost, peaks, precision), "macs": cost["macs"]}


def run_benchmarks(args) -> dict:
    """Measure every requested row; return the results (the JSON written to ``results.json``)."""
    from train.families import sample_inputs
    from runtime.runners.torch import TorchRunner
    from train.checkpoint import load_checkpoint

    from .floor import cpu_peaks, gpu_peaks
    from .models import prepare

    cache = Path(args.cache) if args.cache else Path(
        os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "edgelight" / "bench"
    env = environment(args.threads)
    sizes = [parse_resolution(r) for r in args.resolutions]
    chosen = [b for b in BACKENDS if b.name in args.backends and b.precision in args.precisions]
    unknown = sorted(set(args.backends) - set(backend_names()))
    if unknown:
        raise ValueError(f"unknown backends {unknown}; choose from {backend_names()}")
    if bad := sorted(set(args.precisions) - set(PRECISIONS)):
        raise ValueError(f"unknown precisions {bad}; choose from {', '.join(PRECISIONS)}")
    unavailable = [{"backend": b.name, "label": b.label, "reason": r} for b in chosen if (r := b.unavailable())]
    runnable = [b for b in chosen if not b.unavailable()]
    device_peaks = gpu_peaks(env["gpu"]["name"]) if env["gpu"] else None
    host_peaks = cpu_peaks()
    rows, e2e, errors = [], [], []
    for spec in args.models:
        prepared = prepare(spec, cache, int8=any(b.precision == "int8" for b in runnable),
                           onnx_files=any(b.artefact != "checkpoint" for b in runnable))
        model, meta = load_checkpoint(prepared.checkpoint)
        if prepared.onnx_int8 is None and prepared.int8_note:
            unavailable += [{"backend": b.name, "label": b.label, "reason": f"{meta['name']}: {prepared.int8_note}"}
                            for b in runnable if b.artefact == "onnx_int8"]
        reference_runner = TorchRunner(prepared.checkpoint, device="cpu", channels_last=False).activate()
        for size in sizes:
            feeds = sample_inputs(meta, 1, *size, seed=0)
            reference = reference_runner.infer(feeds)
            reference_p50 = None
            for backend in runnable:
                if backend.artefact == "onnx_int8" and prepared.onnx_int8 is None:
                    continue
                print(f"  {meta['name']} {size[0]}x{size[1]} {backend.name} ...", file=sys.stderr, flush=True)
                try:
                    if backend.device == "cuda" or (backend.device == "auto" and env["gpu"]):
                        import torch

                        torch.cuda.reset_peak_memory_stats()
                    base = _PeakRSS.rss_mb()
                    runner = backend.make(prepared, sizes, cache, args.threads)
                    with _PeakRSS() as rss, runner:
                        times = _time(runner, feeds, args.warmup, args.iters)
                        outputs = runner.infer(feeds)
                        summary = _e2e(runner, size, args.e2e_frames, cache / "clips", args.live_seconds) \
                            if args.e2e_frames else None
                except Exception as exc:  # one failing row must not lose the others
                    errors.append({"model": meta["name"], "backend": backend.name, "resolution": list(size),
                                   "error": f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"})
                    continue
                ms = np.asarray(times) * 1e3
                p50 = float(np.percentile(ms, 50))
                if backend.name == "torch":
                    reference_p50 = p50
                device = runner.device
                floor = _floor(model, size, backend.precision, device_peaks if device == "cuda" else host_peaks)
                row = {
                    "model": meta["name"], "backend": backend.name, "label": backend.label,
                    "precision": backend.precision, "device": device, "resolution": list(size),
                    "p50_ms": p50, "p95_ms": float(np.percentile(ms, 95)), "p99_ms": float(np.percentile(ms, 99)),
                    "mean_ms": float(ms.mean()), "fps": 1e3 / p50,
                    "speedup": (reference_p50 / p50) if reference_p50 else None,
                    "parity_psnr_db": _psnr(reference, outputs, meta["contract"], backend.precision),
                    "artefact_bytes": _artefact_size(runner), "peak_rss_mb": rss.peak,
                    "added_rss_mb": max(0.0, rss.peak - base),
                    "peak_gpu_mb": _gpu_peak_mb(runner), "gmacs": floor["macs"] / 1e9 if floor else None,
                    "floor_ms": floor["floor_ms"] if floor else None,
                    "floor_bound": floor["bound"] if floor else None,
                    "floor_pct": (100 * floor["floor_ms"] / p50) if floor else None,
                    "iters": args.iters, "warmup": args.warmup,
                }
                rows.append(row)
                if summary is not None:
                    e2e.append({"model": meta["name"], "backend": backend.name, "resolution": list(size),
                                "frames": summary["frames"], "e2e_fps": summary["fps"], "infer_fps": row["fps"],
                                "efficiency_pct": 100 * summary["fps"] / row["fps"],
                                "stages": {k: v["p50_ms"] for k, v in summary["stages"].items()},
                                **_live_fields(summary.get("live"))})
        reference_runner.deactivate()
    return {"command": " ".join(["python -m benchmarks", *sys.argv[1:]]), "environment": env,
            "peaks": {"cpu": host_peaks, "gpu": device_peaks}, "unavailable": unavailable, "errors": errors,
            "rows": rows, "e2e": e2e}


def main(argv: Sequence[str] | None = None) -> int:
    from .report import markdown, plot, table

    args = build_parser().parse_args(argv)
    out = Path(args.out)
    parent = next((p for p in [out, *out.parents] if p.exists()), None)
    if out.exists() and not out.is_dir() or (parent is not None and not os.access(parent, os.W_OK)):
        from runtime.core.errors import UserError

        raise UserError(f"--out {out}: not a writable folder")
    try:
        results = run_benchmarks(args)
    except ValueError as exc:
        from runtime.core.errors import UserError

        raise UserError(str(exc)) from None
    out.mkdir(parents=True, exist_ok=True)
    from runtime.core.io import atomic_path, write_json

    write_json(out / "results.json", results)
    with atomic_path(out / "results.md") as tmp:
        tmp.write_text(markdown(results))
    chart = plot(results, out / "latency.png")
    print(table(results))
    print(f"\nwrote {out / 'results.json'}, {out / 'results.md'}" + (f", {chart}" if chart else ""))
    return 1 if results["errors"] else 0


main.prog = "python -m benchmarks"  # type: ignore[attr-defined]
