"""ONNX Runtime CPU session settings, each measured against PyTorch eager FP32 in one run on one machine.

    python -m benchmarks.ort_tuning --models lowlight_edge relight_edge unet_edge sfsnet_edge ibr_edge --resolution 360p

For every model (a registry preset with seeded weights, exported once by ``benchmarks.models.prepare``):

1. Start-up: seconds to create the session (``OnnxRuntimeRunner.startup_s``) at each optimisation level
   without the optimised-model cache, on a first start that writes the cache, and on a start that reads it.
2. Inference only, p50 ms: PyTorch eager FP32 (``TorchRunner`` on the CPU, channels-last as in
   ``python -m benchmarks`` and NCHW; the faster is the reference) and the runner's default beside one
   change at a time: threads 1 / all cores, spinning on / run / off, optimisation basic / extended, the
   cache off. The settings take turns (a block of about 0.2 s each per round, a pause between blocks so
   that spinning threads of the previous session have stopped), because this kind of virtual machine
   drifts by 20-40% over minutes; every figure is from the same rounds.
3. End to end (models whose task has a demo clip: ``lowlight_edge``, ``relight_edge``): the runtime
   pipeline (decode thread, preprocess, infer, postprocess, encode thread to MP4) on a generated clip,
   FPS, for the thread and spinning settings, again taking turns.

Prints the tables and the default's speed-up over PyTorch eager; writes ``ort_tuning.json`` and
``ort_tuning.md`` to ``--out``. ``--seconds`` and ``--e2e-seconds`` set the length: the defaults aim at
under 10 minutes for the five edge models on an idle 2-core CPU. The load average at the start and the
end is recorded: on a CPU shared with other work PyTorch's OpenMP threads slow down far more than ONNX
Runtime's, and the speed-ups mean little.
"""

from __future__ import annotations

import datetime as _dt
import os
import platform
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from runtime.core.cli import ArgumentParser, bounded_float, bounded_int

__all__ = ["main", "build_parser", "run"]

PAUSE_S = 0.1
"""Between blocks of different settings: ONNX Runtime's spinning threads keep a core busy for about 40 ms
after a run returns (``spinning on``), which would slow the next setting down."""
BLOCK_S = 0.2
"""Work per setting per round."""
TARGET = 1.5
"""ONNX Runtime FP32 over PyTorch eager FP32 that the issue asks for."""


@dataclass
class Setting:
    """One way to run the model: a runner kind and its options."""

    label: str
    kind: str  # "torch" or "ort"
    options: dict = field(default_factory=dict)
    runner: object = None
    times: list = field(default_factory=list)
    block: int = 1

    def make(self, prepared, onnx: Path):
        if self.kind == "torch":
            from runtime.runners.torch import TorchRunner

            return TorchRunner(prepared.checkpoint, device="cpu", **self.options)
        from runtime.runners.onnxruntime import OnnxRuntimeRunner

        return OnnxRuntimeRunner(onnx, device="cpu", **self.options)


def inference_settings(cores: int) -> list[Setting]:
    """PyTorch eager (two layouts), the runner's default and one change at a time."""
    from runtime.runners.onnxruntime import DEFAULT_OPTIMIZATION, DEFAULT_SPINNING, SPINNING

    settings = [Setting("torch eager, channels-last", "torch"),
                Setting("torch eager, NCHW", "torch", {"channels_last": False}),
                Setting("ORT default", "ort"),
                Setting("ORT threads 1", "ort", {"threads": 1}),
                Setting(f"ORT threads {cores}", "ort", {"threads": cores})]
    settings += [Setting(f"ORT spinning {s}", "ort", {"spinning": s}) for s in SPINNING if s != DEFAULT_SPINNING]
    settings += [Setting(f"ORT optimisation {level}", "ort", {"optimization": level})
                 for level in ("basic", "extended", "all") if level != DEFAULT_OPTIMIZATION]
    settings.append(Setting("ORT cache off", "ort", {"optimized_cache": False}))
    return settings


def e2e_settings() -> list[Setting]:
    """End to end: threads and spinning, where the pipeline's decode and encode threads compete for cores."""
    from runtime.runners.onnxruntime import DEFAULT_SPINNING, SPINNING

    settings = [Setting("torch eager, channels-last", "torch"), Setting("ORT default", "ort")]
    settings += [Setting(f"ORT spinning {s}", "ort", {"spinning": s}) for s in SPINNING if s != DEFAULT_SPINNING]
    settings.append(Setting("ORT threads 1", "ort", {"threads": 1}))
    return settings


def _p(values: list[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if values else None


def measure_startup(onnx: Path, repeats: int) -> list[dict]:
    """Session creation (ms): each level without the cache, a first start with it (writes), a start reading it."""
    from runtime.runners.onnxruntime import DEFAULT_OPTIMIZATION, OnnxRuntimeRunner

    cases = [(f"no cache, {level}", {"optimization": level, "optimized_cache": False}, False)
             for level in ("disable", "basic", "extended", "all")]
    cases += [(f"cache, first start ({DEFAULT_OPTIMIZATION}, writes it)", {}, True),
              (f"cache, later start ({DEFAULT_OPTIMIZATION}, reads it)", {}, False)]
    found: dict[str, list[float]] = {label: [] for label, _, _ in cases}
    hits: dict[str, bool] = {}
    with OnnxRuntimeRunner(onnx, device="cpu") as probe:  # also imports onnxruntime before anything is timed
        entries = {probe.optimized_path}  # the cache entry, removed before each first start
    for _ in range(repeats):
        for label, options, clear in cases:
            if clear:
                for entry in entries - {None}:
                    entry.unlink(missing_ok=True)
            runner = OnnxRuntimeRunner(onnx, device="cpu", **options)
            runner.activate()
            found[label].append(runner.startup_s * 1e3)
            hits[label] = runner.optimized_from_cache
            entries.add(runner.optimized_path)
            runner.deactivate()
            time.sleep(PAUSE_S)
    return [{"case": label, "p50_ms": _p(v, 50), "min_ms": min(v), "from_cache": hits[label], "n": len(v)}
            for label, v in found.items()]


def measure_inference(settings: list[Setting], prepared, onnx: Path, feeds: dict, seconds: float,
                      max_rounds: int) -> int:
    """Activate every setting, then time them in turns; return the rounds run."""
    for s in settings:
        s.runner = s.make(prepared, onnx).activate()
        for _ in range(2):
            s.runner.infer(feeds)
        t0 = time.perf_counter()
        s.runner.infer(feeds)
        one = time.perf_counter() - t0
        s.block = max(1, round(BLOCK_S / one))
        s.times = []
        time.sleep(PAUSE_S)
    per_round = sum(BLOCK_S + PAUSE_S for _ in settings)
    rounds = max(3, min(max_rounds, int(seconds / per_round)))
    for _ in range(rounds):
        for s in settings:
            time.sleep(PAUSE_S)
            for _ in range(s.block):
                t0 = time.perf_counter()
                s.runner.infer(feeds)
                s.times.append(time.perf_counter() - t0)
    return rounds


def measure_e2e(settings: list[Setting], prepared, onnx: Path, clip: Path, frames: int, rounds: int,
                feeds: dict) -> None:
    """The runtime pipeline on ``clip`` (first ``frames`` frames) per setting, in turns; FPS into ``times``.

    Each runner is activated and run twice on ``feeds`` first, so that PyTorch's first-call set-up does not
    count as pipeline time."""
    from runtime import Pipeline
    from runtime.tasks import task_for
    from runtime.video import open_sink, open_source

    for s in settings:
        s.times = []
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(rounds):
            for s in settings:
                runner = s.make(prepared, onnx).activate()
                for _ in range(2):
                    runner.infer(feeds)
                task = task_for(runner).for_benchmark(runner, frames)
                source = open_source(clip)
                sink = open_sink(Path(tmp) / "out.mp4", fps=source.fps, overwrite=True)
                summary = Pipeline(runner, task, source, sink, max_frames=frames).run()
                sink.close()
                source.stop()
                runner.deactivate()
                s.times.append(summary["fps"])
                time.sleep(PAUSE_S)


def _clip(runner, size: tuple[int, int], frames: int, cache: Path) -> Path | None:
    from runtime.democlip import make_demo_clip
    from runtime.tasks import task_for

    kind = task_for(runner)
    if kind is None or kind.demo_clip is None:
        return None
    clip = cache / "clips" / f"{kind.demo_clip}-{size[0]}x{size[1]}-{frames}.mp4"
    if not clip.is_file():
        make_demo_clip(clip, kind=kind.demo_clip, frames=frames, size=size)
    return clip


def run(args) -> dict:
    """Measure every model; return the results (the JSON written to ``ort_tuning.json``)."""
    import onnxruntime
    import torch

    from runtime.core.host import cpu_name
    from runtime.runners.onnxruntime import DEFAULT_OPTIMIZATION, DEFAULT_SPINNING
    from train.families import sample_inputs

    from .models import parse_resolution, prepare

    cache = Path(args.cache) if args.cache else Path(
        os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "edgelight" / "bench"
    size = parse_resolution(args.resolution)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    env = {"date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"), "host": platform.node(),
           "cpu": cpu_name(), "cores": cores, "python": platform.python_version(), "torch": torch.__version__,
           "torch_threads": torch.get_num_threads(), "onnxruntime": onnxruntime.__version__,
           "load_average_start": os.getloadavg(), "defaults": {"threads": None, "spinning": DEFAULT_SPINNING,
                                                              "optimization": DEFAULT_OPTIMIZATION,
                                                              "optimized_cache": True}}
    models = []
    started = time.perf_counter()
    for name in args.models:
        print(f"  {name}: exporting (cached) ...", file=sys.stderr, flush=True)
        prepared = prepare(name, cache)
        feeds = sample_inputs(prepared.meta, 1, *size, seed=0)
        onnx = prepared.onnx
        print(f"  {name}: start-up ...", file=sys.stderr, flush=True)
        startup = measure_startup(onnx, args.startup_repeats)
        print(f"  {name}: inference ...", file=sys.stderr, flush=True)
        settings = inference_settings(cores)
        rounds = measure_inference(settings, prepared, onnx, feeds, args.seconds, args.max_rounds)
        default = next(s for s in settings if s.label == "ORT default")
        clip = _clip(default.runner, size, args.e2e_frames, cache) if args.e2e_seconds else None
        infer_s = float(np.median(default.times))
        for s in settings:
            s.runner.deactivate()
            s.runner = None
        rows = [{"setting": s.label, "kind": s.kind, "options": s.options, "p50_ms": _p(s.times, 50) * 1e3,
                 "p90_ms": _p(s.times, 90) * 1e3, "n": len(s.times)} for s in settings]
        reference = min(r["p50_ms"] for r in rows if r["kind"] == "torch")
        for r in rows:
            r["speedup_vs_torch"] = reference / r["p50_ms"]
        e2e = []
        if clip is not None:
            frames = int(min(args.e2e_frames, max(10, args.e2e_seconds / infer_s)))
            print(f"  {name}: end to end ({frames} frames per run) ...", file=sys.stderr, flush=True)
            chosen = e2e_settings()
            measure_e2e(chosen, prepared, onnx, clip, frames, args.e2e_rounds, feeds)
            e2e = [{"setting": s.label, "kind": s.kind, "options": s.options, "frames": frames,
                    "fps_median": float(np.median(s.times)), "fps_runs": s.times} for s in chosen]
        default_row = next(r for r in rows if r["setting"] == "ORT default")
        models.append({"model": prepared.name, "resolution": list(size), "rounds": rounds, "startup": startup,
                       "inference": rows, "e2e": e2e, "torch_reference_ms": reference,
                       "default_speedup": default_row["speedup_vs_torch"],
                       "target_met": default_row["speedup_vs_torch"] >= TARGET})
    env["load_average_end"] = os.getloadavg()
    env["wall_s"] = time.perf_counter() - started
    return {"command": " ".join(["python -m benchmarks.ort_tuning", *sys.argv[1:]]), "environment": env,
            "target": TARGET, "models": models}


def markdown(results: dict) -> str:
    """The results as Markdown tables."""
    env = results["environment"]
    load = [", ".join(f"{v:.2f}" for v in env[k]) for k in ("load_average_start", "load_average_end")]
    lines = [(f"{env['cpu']}, {env['cores']} cores; torch {env['torch']} ({env['torch_threads']} threads), "
              f"onnxruntime {env['onnxruntime']}; {env['date']}; load average {load[0]} at the start, {load[1]} "
              f"at the end; {env['wall_s']:.0f} s."),
             "ORT default: threads {threads}, spinning {spinning}, optimisation {optimization}, cache {cache}.".format(
                 threads=env["defaults"]["threads"] or "ONNX Runtime's (one per physical core)",
                 spinning=env["defaults"]["spinning"], optimization=env["defaults"]["optimization"],
                 cache="on" if env["defaults"]["optimized_cache"] else "off"), ""]
    lines += [(f"| model, p50 ms | torch eager (best layout) | ORT default | speed-up | target {results['target']:g}x "
               "| fastest ORT setting, inference only | fastest end to end (FPS) |"), "|---|---:|---:|---:|---|---|---|"]
    for m in results["models"]:
        default = next(r for r in m["inference"] if r["setting"] == "ORT default")
        best = min((r for r in m["inference"] if r["kind"] == "ort"), key=lambda r: r["p50_ms"])
        fastest = max(m["e2e"], key=lambda r: r["fps_median"]) if m["e2e"] else None
        e2e = f"{fastest['setting']}: {fastest['fps_median']:.1f}" if fastest else "-"
        lines.append(f"| {m['model']} {m['resolution'][0]}x{m['resolution'][1]} | {m['torch_reference_ms']:.1f} | "
                     f"{default['p50_ms']:.1f} | {m['default_speedup']:.2f}x | "
                     f"{'met' if m['target_met'] else 'not met'} | {best['setting']}: {best['p50_ms']:.1f} ms, "
                     f"{best['speedup_vs_torch']:.2f}x | {e2e} |")
    for m in results["models"]:
        lines += ["", f"### {m['model']} ({m['resolution'][0]}x{m['resolution'][1]}, {m['rounds']} rounds)", "",
                  "| setting | p50 ms | p90 ms | runs | speed-up over torch eager |", "|---|---:|---:|---:|---:|"]
        lines += [f"| {r['setting']} | {r['p50_ms']:.1f} | {r['p90_ms']:.1f} | {r['n']} | {r['speedup_vs_torch']:.2f}x |"
                  for r in m["inference"]]
        lines += ["", "| start-up (session creation) | p50 ms | min ms | from cache |", "|---|---:|---:|---|"]
        lines += [f"| {r['case']} | {r['p50_ms']:.1f} | {r['min_ms']:.1f} | {'yes' if r['from_cache'] else 'no'} |"
                  for r in m["startup"]]
        if m["e2e"]:
            lines += ["", "| end to end (pipeline to MP4) | frames | FPS median | FPS per run |", "|---|---:|---:|---|"]
            lines += [f"| {r['setting']} | {r['frames']} | {r['fps_median']:.1f} | "
                      f"{', '.join(f'{v:.1f}' for v in r['fps_runs'])} |" for r in m["e2e"]]
    return "\n".join(lines) + "\n"


def build_parser() -> ArgumentParser:
    from .models import DEFAULT_MODELS

    p = ArgumentParser(prog="python -m benchmarks.ort_tuning", description=__doc__.split("\n\n")[0])
    p.add_argument("--models", nargs="+", default=[m for m in DEFAULT_MODELS if m.endswith("_edge")],
                   metavar="MODEL", help="registry names (seeded weights) or checkpoints")
    p.add_argument("--resolution", default="360p", help="360p, 720p, 1080p or HxW")
    p.add_argument("--seconds", type=bounded_float(1.0, 3600.0), default=40.0,
                   help="inference-only timing per model, all settings together (at least 3 rounds)")
    p.add_argument("--max-rounds", type=bounded_int(3, 100_000), default=40, help="most rounds per model")
    p.add_argument("--startup-repeats", type=bounded_int(1, 1000), default=5, help="start-ups per case")
    p.add_argument("--e2e-seconds", type=bounded_float(0.0, 600.0), default=4.0,
                   help="about this long per end-to-end run (0: none)")
    p.add_argument("--e2e-frames", type=bounded_int(10, 100_000), default=60, help="frames of the generated clip")
    p.add_argument("--e2e-rounds", type=bounded_int(1, 100), default=2, help="end-to-end runs per setting")
    p.add_argument("--out", default="benchmarks/out/ort_tuning", metavar="DIR", help="where the JSON and Markdown go")
    p.add_argument("--cache", metavar="DIR", help="exported models (default: ~/.cache/edgelight/bench)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    from runtime.core.io import write_json, write_text

    from .models import parse_resolution

    args = build_parser().parse_args(argv)
    try:
        parse_resolution(args.resolution)
    except ValueError as exc:
        build_parser().error(f"--resolution: {exc}")
    results = run(args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "ort_tuning.json", results)
    text = markdown(results)
    write_text(out / "ort_tuning.md", text)
    print(text)
    print(f"wrote {out / 'ort_tuning.json'}, {out / 'ort_tuning.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
