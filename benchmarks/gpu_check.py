"""The GPU check: one prepared run that proves the GPU path on an NVIDIA machine and writes everything to one folder.

Made for a bare machine with no network whose Python already has PyTorch with CUDA, cuda-bindings (or
pycuda), Lightning, OpenCV, scikit-image (the real photos of the input generators), NumPy and pytest: it runs
from the source tree and installs nothing. In order:

1. every ``needs_cuda`` test (``tests.xml``, ``tests.log``);
2. for every ``edge`` model with seeded weights, at 720p and 1080p, PyTorch FP32, FP16 and FP16 with CUDA
   graphs: inference only on device-resident buffers (``runner.enqueue`` between CUDA events, what the
   executor's infer stage runs), the host round trip (``runner.infer``), and FP16 parity against FP32 on the GPU;
3. for the models a video task drives (enhance, relight), frames held in memory (no decoder or encoder in
   the way) through the overlapped executor alone (uint8 frames in and out: the GPU path) and through the whole
   pipeline (fitting, the task's host steps, the writer thread), with the executor's per-stage CUDA-event
   timings, and the overlap efficiency: the executor's FPS over inference-only FPS;
4. ``results.json``, ``summary.md`` and ``check.log`` in ``--out``.

It keeps to ``--budget`` seconds (default 450, under 8 minutes with start-up): rows that would start later are
listed as skipped, most important first (lowlight_edge leads).

``--dry-run`` runs the same script on the CPU against the simulated CUDA layer (``runtime.cuda.sim``) at a tenth of
the sizes with a few iterations, so CI keeps it working; its figures time nothing real.

    make gpu-check                                   # python3 -m benchmarks.gpu_check --out runs/gpu-check
    python -m benchmarks.gpu_check --dry-run --out /tmp/gpu-check
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from runtime.core.cli import ArgumentParser, bounded_int

__all__ = ["main", "MODELS", "SIZES", "TARGETS"]

MODELS = ("lowlight_edge", "relight_edge", "unet_edge", "sfsnet_edge", "ibr_edge")
"""In the order they run: the video models first (their end-to-end rows), ibr_edge (slow inputs) last."""
ROW_MARGIN_S = 60
"""No row starts later than this before the end of ``--budget`` (a 1080p row with its clip and end-to-end runs)."""
SIZES = {"720p": (720, 1280), "1080p": (1080, 1920)}
DRY_SIZES = {"720p/10": (72, 128), "1080p/10": (108, 192)}
ROWS = (("torch", "fp32", {}), ("torch-fp16", "fp16", {"fp16": True}),
        ("torch-fp16-graphs", "fp16", {"fp16": True, "cuda_graphs": True}))
TARGETS = {"efficiency_pct": 90.0, "fp16_psnr_db": 45.0, "lowlight_1080p_graphs_fps": 500.0}
"""What the check is held to on an H100/H200: end to end >= 90% of inference-only throughput, FP16 parity >= 45 dB
for every family, lowlight_edge at 1080p FP16 with CUDA graphs >= 500 FPS inference only."""


def build_parser() -> ArgumentParser:
    p = ArgumentParser(prog="python -m benchmarks.gpu_check", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="runs/gpu-check", metavar="DIR", help="the folder everything is written to")
    p.add_argument("--dry-run", action="store_true",
                   help="on the CPU, against the simulated CUDA layer, at a tenth of the sizes (what CI runs)")
    p.add_argument("--models", nargs="+", default=list(MODELS), metavar="MODEL", help="registry presets")
    p.add_argument("--iters", type=bounded_int(1, 100_000), help="timed runs per row (default 50; dry run 2)")
    p.add_argument("--frames", type=bounded_int(2, 100_000),
                   help="frames per end-to-end run (default 300; dry run 4)")
    p.add_argument("--skip-tests", action="store_true", help="do not run the needs_cuda tests")
    p.add_argument("--budget", type=bounded_int(30, 86_400), default=450, metavar="SECONDS",
                   help=f"seconds for the whole check: no row starts in the last {ROW_MARGIN_S} (default 450: "
                        "within 8 minutes with start-up)")
    return p


class _Log:
    """Prints to stderr and to ``check.log``."""

    def __init__(self, path: Path) -> None:
        self.file = path.open("w")

    def __call__(self, text: str) -> None:
        print(text, file=sys.stderr, flush=True)
        self.file.write(text + "\n")
        self.file.flush()


def _tests(out: Path, log: _Log, timeout: float) -> dict:
    """Every needs_cuda test, in a child process from the source tree, within ``timeout`` seconds."""
    root = Path(__file__).resolve().parent.parent
    command = [sys.executable, "-m", "pytest", "-m", "needs_cuda", "-q", "-p", "no:cacheprovider", "-rs",
               f"--junitxml={out / 'tests.xml'}", str(root / "tests")]
    log(f"tests: {' '.join(command)}")
    start = time.perf_counter()
    try:
        proc = subprocess.run(command, cwd=root, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        text = (exc.stdout or b"").decode(errors="replace") if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        (out / "tests.log").write_text(text)
        log(f"tests: stopped after {timeout:.0f} s")
        return {"command": " ".join(command), "returncode": None, "summary": f"timed out after {timeout:.0f} s",
                "passed": False}
    (out / "tests.log").write_text(proc.stdout + proc.stderr)
    summary = next((line for line in reversed(proc.stdout.strip().splitlines()) if line.strip()), "")
    log(f"tests: {summary} ({time.perf_counter() - start:.0f} s)")
    return {"command": " ".join(command), "returncode": proc.returncode, "summary": summary,
            "passed": proc.returncode in (0, 5)}  # 5: nothing selected (no needs_cuda test left unskipped)


def _version(package: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def _checkpoint(name: str, folder: Path) -> Path:
    """Seeded weights of ``name`` (speed and FP16 parity do not depend on training)."""
    import torch

    from train.checkpoint import save_checkpoint
    from train.models import create_model

    path = folder / f"{name}.ckpt"
    if not path.is_file():
        torch.manual_seed(0)
        save_checkpoint(path, create_model(name).eval())
    return path


def _infer_only(runner, cuda, feeds: dict[str, np.ndarray], warmup: int, iters: int, dry: bool) -> list[float]:
    """Seconds per run of ``runner.enqueue`` on device buffers uploaded once, between CUDA events on one stream
    (wall-clock time on the simulated layer)."""
    stream = cuda.stream()
    shapes = {name: array.shape for name, array in feeds.items()}
    outs = runner.output_shapes(shapes)
    dtypes = {spec.name: np.dtype(spec.dtype) for spec in (*runner.input_metadata(), *runner.output_metadata())}
    buffers = {name: cuda.device_buffer(int(np.prod(shape)) * dtypes[name].itemsize)
               for name, shape in {**shapes, **outs}.items()}
    start, end = cuda.event(), cuda.event()
    try:
        for name, array in feeds.items():
            cuda.htod_async(buffers[name], np.ascontiguousarray(array, dtypes[name]), stream)
        addresses = {name: buffer.ptr for name, buffer in buffers.items()}
        for _ in range(warmup):
            runner.enqueue(shapes, addresses, stream)
        stream.synchronize()
        times = []
        for _ in range(iters):
            t0 = time.perf_counter()
            start.record(stream)
            runner.enqueue(shapes, addresses, stream)
            end.record(stream)
            end.synchronize()
            times.append(time.perf_counter() - t0 if dry else end.elapsed_ms(start) / 1e3)
        return times
    finally:
        stream.synchronize()
        for buffer in buffers.values():
            buffer.free()
        for item in (start, end, stream):
            item.free()


def _frames(kind, size: tuple[int, int], folder: Path, count: int = 30) -> list[np.ndarray]:
    """``count`` decoded frames of the task's generated demo clip at ``size``, held in memory."""
    from runtime.democlip import make_demo_clip
    from runtime.video import open_source

    clip = folder / f"{kind.demo_clip}-{size[0]}x{size[1]}-{count}.mp4"
    if not clip.is_file():
        make_demo_clip(clip, kind=kind.demo_clip, frames=count, size=size)
    with open_source(clip) as source:
        return [frame.image for frame in source]


class _Reader:
    """Frames from memory for ``runtime.video.Source``: ``frames`` cycled to ``total``."""

    def __init__(self, frames: list[np.ndarray], total: int) -> None:
        self.frames, self.total, self.index = frames, total, 1

    def read(self):
        if self.index >= self.total:
            return None
        self.index += 1
        return self.frames[(self.index - 1) % len(self.frames)]

    def release(self) -> None:
        pass


def _executor_only(runner, kind, frames: list[np.ndarray], total: int) -> dict:
    """uint8 frames from memory through the overlapped executor alone (depth 3): FPS and per-stage p50s (ms)."""
    from runtime.cuda_executor import CudaFrameExecutor

    task = kind.for_benchmark(runner, total)
    task.check(runner)
    extras = task.extras(0)
    with CudaFrameExecutor(runner, image_input=task.image_input, output=task.output, extra_inputs=tuple(extras),
                           depth=3) as executor:
        for index in range(3):  # warm-up: buffers, kernels, graphs
            executor.submit(index, frames[index % len(frames)], extras)
        executor.flush()
        executor.timings = {stage: type(h)() for stage, h in executor.timings.items()}
        done = 0
        start = time.perf_counter()
        for index in range(total):
            done += len(executor.submit(index, frames[index % len(frames)], extras))
        done += len(executor.flush())
        seconds = time.perf_counter() - start
        stages = {f"gpu_{k}": float(np.percentile(np.asarray(list(v)), 50)) * 1e3 for k, v in executor.timings.items()}
    return {"frames": done, "fps": done / seconds, "stages_ms": stages, "host_conversion": executor.host_conversion}


def _pipeline(runner, kind, frames: list[np.ndarray], total: int) -> dict:
    """The whole pipeline from memory through the overlapped executor to no output: FPS and stage p50s (ms)."""
    from runtime import Pipeline
    from runtime.video import open_sink
    from runtime.video.sources import Source

    source = Source("memory", _Reader(frames, total), frames[0], fps=30.0, live=False, frame_count=total,
                    queue_size=16)
    pipeline = Pipeline(runner, kind.for_benchmark(runner, total), source, open_sink(None, fps=30.0), depth=3)
    summary = pipeline.run()
    if "gpu_infer" not in summary["stages"]:
        raise RuntimeError("the pipeline did not use the overlapped GPU executor")
    return {"frames": summary["frames"], "fps": summary["fps"],
            "stages_ms": {k: v["p50_ms"] for k, v in summary["stages"].items()}}


def _measure(args, out: Path, log: _Log, dry: bool, deadline: float) -> dict:
    import torch

    from runtime.cuda import get_cuda
    from runtime.runners.torch import TorchRunner
    from runtime.tasks import task_for
    from train.checkpoint import read_checkpoint
    from train.families import sample_inputs

    from .cli import _psnr, _time

    device, lib = ("cpu", "sim") if dry else ("cuda", "auto")
    sizes = DRY_SIZES if dry else SIZES
    iters, total = args.iters or (2 if dry else 50), args.frames or (4 if dry else 300)
    warmup = 1 if dry else 10
    cuda = get_cuda(lib)
    rows, e2e, errors, skipped = [], [], [], []
    for name in args.models:
        checkpoint = _checkpoint(name, out / "models")
        meta = read_checkpoint(checkpoint)["edgelight"]
        for label, size in sizes.items():
            rows_here = [(row, precision, options) for row, precision, options in ROWS if not (options and dry)]
            feeds, reference = None, None  # FP16 and CUDA graphs need a GPU: the dry run has FP32 only
            for row, precision, options in rows_here:
                if time.monotonic() > deadline:
                    skipped.append({"model": name, "row": row, "resolution": label, "reason": "time budget"})
                    continue
                log(f"{name} {label} {row} ...")
                try:
                    if feeds is None:
                        feeds = sample_inputs(meta, 1, *size, seed=0)
                    with TorchRunner(checkpoint, device=device, cuda_lib=lib, channels_last=not dry,
                                     **options) as runner:
                        device_times = _infer_only(runner, cuda, feeds, warmup, iters, dry)
                        host_times = _time(runner, feeds, warmup, iters)
                        outputs = runner.infer(feeds)
                        if precision == "fp32":
                            reference = outputs
                        p50 = float(np.percentile(np.asarray(device_times) * 1e3, 50))
                        result = {"model": name, "family": meta["family"], "row": row, "precision": precision,
                                  "resolution": label, "size": list(size), "p50_ms": p50, "fps": 1e3 / p50,
                                  "p95_ms": float(np.percentile(np.asarray(device_times) * 1e3, 95)),
                                  "host_p50_ms": float(np.percentile(np.asarray(host_times) * 1e3, 50)),
                                  "psnr_vs_fp32_db": None if reference is None else _psnr(
                                      reference, outputs, meta["contract"], precision),
                                  "graphs": len(runner._graphs) if options.get("cuda_graphs") else None}
                        rows.append(result)
                        kind = task_for(runner)
                        if kind is not None and kind.demo_clip is not None:
                            frames = _frames(kind, size, out / "clips")
                            alone = _executor_only(runner, kind, frames, total)
                            whole = _pipeline(runner, kind, frames, total)
                            e2e.append({**{k: result[k] for k in ("model", "row", "resolution")}, **alone,
                                        "infer_fps": result["fps"],
                                        "efficiency_pct": 100 * alone["fps"] / result["fps"],
                                        "pipeline": whole})
                except Exception as exc:  # one failing row must not lose the others
                    errors.append({"model": name, "row": row, "resolution": label,
                                   "error": f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"})
                    log(f"  failed: {errors[-1]['error']}")
                if device == "cuda":
                    torch.cuda.empty_cache()
    return {"rows": rows, "e2e": e2e, "errors": errors, "skipped": skipped}


def _verdicts(results: dict) -> dict:
    """Each target: met, not met, or not measured (with the figure)."""
    rows, e2e = results["rows"], results["e2e"]
    parity = {}
    for row in rows:
        if row["precision"] == "fp16" and row["psnr_vs_fp32_db"] is not None:
            family = row["family"]
            parity[family] = min(parity.get(family, float("inf")), row["psnr_vs_fp32_db"])
    lowlight = [r["fps"] for r in rows if r["model"] == "lowlight_edge" and r["row"] == "torch-fp16-graphs"
                and r["resolution"] == "1080p"]
    efficiency = {f"{r['model']} {r['resolution']} {r['row']}": r["efficiency_pct"] for r in e2e}

    def verdict(values, target) -> str:
        if results["dry_run"]:
            return "not measured (dry run)"
        return "not measured" if not values else ("met" if min(values) >= target else "not met")

    return {"fp16_parity_db": {"by_family": parity, "target": TARGETS["fp16_psnr_db"],
                               "verdict": verdict(list(parity.values()), TARGETS["fp16_psnr_db"])},
            "lowlight_1080p_graphs_fps": {"fps": lowlight[0] if lowlight else None,
                                          "target": TARGETS["lowlight_1080p_graphs_fps"],
                                          "verdict": verdict(lowlight, TARGETS["lowlight_1080p_graphs_fps"])},
            "efficiency_pct": {"by_run": efficiency, "target": TARGETS["efficiency_pct"],
                               "verdict": verdict(list(efficiency.values()), TARGETS["efficiency_pct"])}}


def _markdown(results: dict) -> str:
    env, lines = results["environment"], []
    gpu = (env.get("gpu") or {}).get("name") or ("simulated (dry run)" if results["dry_run"] else "none")
    lines += [f"# GPU check, {env['date']}", "", f"`{results['command']}`", "",
              f"GPU: {gpu}; CPU: {env['cpu']}; PyTorch {env['torch']}; CUDA layer: {results['cuda_lib']}", ""]
    if results["dry_run"]:
        lines += ["**Dry run**: the simulated CUDA layer on the CPU at a tenth of the sizes; no figure here is a "
                  "GPU measurement.", ""]
    tests = results.get("tests")
    lines += [f"Tests (needs_cuda): {tests['summary'] if tests else 'not run'}", ""]
    lines += ["| model | size | row | inference p50 ms | FPS | host round trip ms | PSNR vs FP32 dB |",
              "|---|---|---|---|---|---|---|"]
    for r in results["rows"]:
        psnr = "" if r["psnr_vs_fp32_db"] is None else f"{r['psnr_vs_fp32_db']:.1f}"
        lines.append(f"| {r['model']} | {r['resolution']} | {r['row']} | {r['p50_ms']:.3f} | {r['fps']:.0f} | "
                     f"{r['host_p50_ms']:.2f} | {psnr} |")
    lines += ["", "| model | size | row | executor FPS | inference FPS | efficiency % | executor stages p50 ms | "
              "pipeline FPS |", "|---|---|---|---|---|---|---|---|"]
    for r in results["e2e"]:
        stages = ", ".join(f"{k[4:]} {v:.3f}" for k, v in r["stages_ms"].items() if k.startswith("gpu_"))
        if r["host_conversion"]:
            stages += " (frames converted on the CPU: no NVRTC)"
        lines.append(f"| {r['model']} | {r['resolution']} | {r['row']} | {r['fps']:.0f} | {r['infer_fps']:.0f} | "
                     f"{r['efficiency_pct']:.0f} | {stages} | {r['pipeline']['fps']:.0f} |")
    lines += ["", "Targets:"]
    for key, value in results["verdicts"].items():
        lines.append(f"- {key}: {value['verdict']} (target {value['target']})")
    for error in results["errors"]:
        lines.append(f"- error: {error['model']} {error['resolution']} {error['row']}: {error['error']}")
    for skip in results["skipped"]:
        lines.append(f"- skipped ({skip['reason']}): {skip['model']} {skip['resolution']} {skip['row']}")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    from runtime.core.errors import UserError

    from .cli import environment

    args = build_parser().parse_args(argv)
    out = Path(args.out)
    started = time.perf_counter()
    if not args.dry_run:
        import torch

        if not torch.cuda.is_available():
            raise UserError("no CUDA GPU is visible to PyTorch; on a machine without one run --dry-run")
    from runtime.cuda import get_cuda

    cuda = get_cuda("sim" if args.dry_run else "auto")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"--out {out}: {exc.strerror}") from None
    log = _Log(out / "check.log")
    deadline = time.monotonic() + args.budget - ROW_MARGIN_S - (time.perf_counter() - started)
    env = environment(None)
    env["cuda_layer"] = {"library": cuda.name, "version": _version("cuda-bindings" if cuda.name == "cuda-python"
                                                                   else cuda.name)}
    log(f"GPU check ({'dry run, simulated CUDA layer' if args.dry_run else cuda.device_name()}), CUDA layer "
        f"{cuda.name}, PyTorch {env['torch']}")
    results: dict = {"command": " ".join(["python -m benchmarks.gpu_check", *(argv if argv is not None
                                                                              else sys.argv[1:])]),
                     "dry_run": args.dry_run, "cuda_lib": cuda.name, "environment": env,
                     "tests": None if args.skip_tests else _tests(out, log, min(240.0, args.budget / 2))}
    results.update(_measure(args, out, log, args.dry_run, deadline))
    results["verdicts"] = _verdicts(results)
    results["seconds"] = round(time.perf_counter() - started, 1)
    from runtime.core.io import atomic_path, write_json

    write_json(out / "results.json", results)
    with atomic_path(out / "summary.md") as tmp:
        tmp.write_text(_markdown(results))
    log(f"wrote {out / 'results.json'} and {out / 'summary.md'} in {results['seconds']:.0f} s")
    failed = results["errors"] or (results["tests"] is not None and not results["tests"]["passed"])
    return 1 if failed else 0


main.prog = "python -m benchmarks.gpu_check"  # type: ignore[attr-defined]

if __name__ == "__main__":
    from runtime.core.cli import run

    raise SystemExit(run(main))
