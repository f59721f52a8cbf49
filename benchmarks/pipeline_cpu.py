"""End-to-end pipeline throughput against inference alone, and resident memory over a long run.

    python -m benchmarks.pipeline_cpu --model runs/demo/export --task enhance --clip clip.mp4
    python -m benchmarks.pipeline_cpu --model exports/relight --task relight --clip faces.mp4 --frames 5000

1. Inference only: ``runner.infer`` on one fitted frame, ``--iters`` times after warm-up -> FPS.
2. End to end: ``python -m runtime``'s pipeline on ``--clip`` (decode thread, fit, preprocess,
   infer, postprocess, encode to an MP4 in a temporary folder) -> FPS and the ratio to (1).
3. With ``--frames N``: the pipeline on the clip's frames replayed from memory N times over (decode
   excluded, encode included), sampling the process's resident memory every 100 frames; prints the
   growth after the first 500 frames (warm-up).
"""

from __future__ import annotations

import os
import platform
import resource
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from runtime.core.cli import ArgumentParser, bounded_int, thread_count


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _task(name: str | None, runner):
    from runtime.tasks import get_task

    kind = get_task(name or runner.sidecar.task or "")
    kind.check_model(runner)
    return kind.for_benchmark(runner, 120)


class _Replay:
    """A Source-like object replaying decoded frames from memory (for the long memory run)."""

    live, dropped, error, name = False, 0, None, "replay"

    def __init__(self, frames: list[np.ndarray], count: int, fps: float, on_frame) -> None:
        self.frames, self.frame_count, self.fps, self.on_frame, self.index = frames, count, fps, on_frame, 0

    def start(self):
        return self

    def read(self, timeout=None):
        from runtime.video import Frame

        if self.index >= self.frame_count:
            return None
        frame = Frame(self.index, self.frames[self.index % len(self.frames)], time.monotonic())
        self.index += 1
        self.on_frame(self.index)
        return frame

    def stop(self):
        pass


def main(argv: list[str] | None = None) -> int:
    p = ArgumentParser(prog="python -m benchmarks.pipeline_cpu", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, help="export folder, ONNX file or checkpoint")
    from runtime.tasks import get_task, list_tasks

    p.add_argument("--task", choices=[t for t in list_tasks() if get_task(t).video_input],
                   help="the task to run (default: the one the model's sidecar names)")
    p.add_argument("--clip", required=True, help="input video (e.g. python -m runtime demo-clip)")
    p.add_argument("--iters", type=bounded_int(1, 1_000_000), default=50, help="inference-only runs")
    p.add_argument("--frames", type=bounded_int(0, 10_000_000), default=0,
                   help="frames for the memory run (0: skip it)")
    p.add_argument("--memory-output", choices=["mp4", "none"], default="mp4",
                   help="where the memory run's frames go: an MP4 (FFmpeg's muxer keeps its index in memory "
                        "until the end) or nowhere (the pipeline alone)")
    p.add_argument("--threads", type=thread_count, default=None, help="ONNX Runtime / PyTorch threads")
    from runtime.runners.onnxruntime import OPTIMIZATION, SPINNING

    p.add_argument("--spinning", choices=SPINNING, help="ONNX Runtime CPU threads' spinning (default: the runner's)")
    p.add_argument("--optimization", choices=OPTIMIZATION, help="ONNX Runtime graph optimisation level "
                                                                "(default: the runner's)")
    args = p.parse_args(argv)

    from runtime import Pipeline, load
    from runtime.video import open_sink, open_source

    runner = load(args.model, threads=args.threads, spinning=args.spinning, optimization=args.optimization).activate()
    task = _task(args.task, runner)
    source = open_source(args.clip)
    frames = []
    with source:
        while (frame := source.read()) is not None:
            frames.append(frame.image)
    fps_in, size = source.fps, frames[0].shape[:2]
    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cores; {runner.name} on "
          f"{runner.backend} ({runner.device}); {size[0]}x{size[1]}, {len(frames)}-frame clip {args.clip}")

    pipeline = Pipeline(runner, task)
    task.check(runner)
    fitted = task.fit(runner, size).apply(frames[0])
    feeds = task.feeds(fitted, 0)
    for _ in range(5):
        runner.infer(feeds)
    times = []
    for _ in range(args.iters):
        t0 = time.perf_counter()
        runner.infer(feeds)
        times.append(time.perf_counter() - t0)
    infer_fps = 1.0 / float(np.median(times))
    print(f"inference only: median {np.median(times) * 1e3:.1f} ms, p95 {np.percentile(times, 95) * 1e3:.1f} ms "
          f"-> {infer_fps:.1f} FPS")

    with tempfile.TemporaryDirectory() as tmp:
        sink = open_sink(Path(tmp) / "out.mp4", fps=fps_in)
        pipeline = Pipeline(runner, task, open_source(args.clip), sink)
        summary = pipeline.run()
        sink.close()
        print(pipeline.stats.table())
        print(f"end to end (decode, fit, pre, infer, post, encode to MP4): {summary['fps']:.1f} FPS = "
              f"{100 * summary['fps'] / infer_fps:.0f}% of inference only")

        if args.frames:
            samples: list[tuple[int, float]] = []
            lock = threading.Lock()

            def sample(n: int) -> None:
                if n % 100 == 0:
                    with lock:
                        samples.append((n, _rss_mb()))

            sink = open_sink(Path(tmp) / "long.mp4" if args.memory_output == "mp4" else None, fps=fps_in)
            start = time.perf_counter()
            Pipeline(runner, task, _Replay(frames, args.frames, fps_in, sample), sink).run()
            sink.close()
            wall = time.perf_counter() - start
            after = [m for n, m in samples if n >= 500]
            growth = 100 * (max(after) - after[0]) / after[0]
            print(f"memory over {args.frames} frames ({wall:.0f} s, {args.frames / wall:.1f} FPS): RSS at frame 500 "
                  f"{after[0]:.1f} MB, max after it {max(after):.1f} MB, last {after[-1]:.1f} MB "
                  f"(+{growth:.1f}%); peak RSS of the process "
                  f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
            print("RSS every 500 frames (MB): " + ", ".join(f"{m:.0f}" for n, m in samples if n % 500 == 0))
    runner.deactivate()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
