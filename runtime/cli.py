"""``python -m runtime``: enhance or relight video in real time, or render a captured scene.

    python -m runtime enhance --model exports/lowlight --input clip.mp4 --output enhanced.mp4
    python -m runtime enhance --model model.fp16.engine --input 0 --show
    python -m runtime relight --model exports/relight --input rtsp://camera/stream --light-path orbit --show
    python -m runtime relight --model exports/relight_sh --input clip.mp4 --sh left --output relit.mp4
    python -m runtime ibr --model exports/ibr --light-path orbit --frames 120 --output scene.mp4
    python -m runtime demo-clip --out demo.mp4

Exit codes: 0 done (Ctrl-C on a camera or stream is a clean stop); 1 a live source was lost (after
reconnect attempts; the output so far is kept), or an output could not be written (a full disk: the
message names the path and the cause, and no file is left under the output's name); 2 bad input (a
missing or damaged file, a model for another task, a bad option; the output of a damaged file is kept
up to the damage); 130 Ctrl-C on a file, 143 SIGTERM, 129 SIGHUP (the frames processed so far are
written and finalised).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from .backends import PRECISIONS, list_backends
from .core.cli import (
    ArgumentParser,
    bounded_int,
    frame_rate,
    image_size,
    positive_int,
    random_seed,
    thread_count,
    timeout_seconds,
)
from .core.errors import UserError
from .runners.onnxruntime import DEFAULT_OPTIMIZATION, DEFAULT_SPINNING, OPTIMIZATION, SPINNING

__all__ = ["main", "build_parser"]


def _common(p: ArgumentParser, *, video_input: bool = True) -> None:
    p.add_argument("--model", required=True, metavar="PATH",
                   help="an engine (.engine/.plan), an ONNX file, a checkpoint (.ckpt) or an export/run folder")
    if video_input:
        p.add_argument("--input", required=True, metavar="SOURCE",
                       help="video file, camera index (0), URL (rtsp://, http://, udp://, ...) or image folder")
        p.add_argument("--output", metavar="PATH", help="video file (.mp4, .avi, .mkv, .mov) or image folder")
    else:
        p.add_argument("--output", required=True, metavar="PATH", help="video file (.mp4, .avi, .mkv, .mov)")
    p.add_argument("--show", action="store_true", help="show the frames in a window (q or Esc stops)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --output")
    b = p.add_argument_group("backend")
    b.add_argument("--backend", choices=["auto", *list_backends()], default="auto",
                   help="auto: by the model's suffix (an export folder: its engine if TensorRT can run here, "
                        "else ONNX)")
    b.add_argument("--precision", choices=PRECISIONS, default="auto",
                   help="which artefact of an export folder to run. auto: the FP16 ONNX with a GPU build of "
                        "ONNX Runtime; on the CPU, of model.onnx and model.int8.onnx the one the export timed "
                        "faster on this CPU model, else model.onnx")
    b.add_argument("--providers", metavar="LIST",
                   help="ONNX Runtime execution providers in order, e.g. tensorrt,cuda,cpu (default: those installed)")
    b.add_argument("--threads", type=thread_count, help="CPU threads for ONNX Runtime or PyTorch (default: all cores)")
    b.add_argument("--spinning", choices=SPINNING,
                   help="ONNX Runtime on the CPU: idle threads busy-wait for work (on), only while a frame runs "
                        f"(run) or never (off) (default: {DEFAULT_SPINNING})")
    b.add_argument("--optimization", choices=OPTIMIZATION,
                   help=f"ONNX Runtime graph optimisation level (default: {DEFAULT_OPTIMIZATION})")
    b.add_argument("--optimized-cache", action=argparse.BooleanOptionalAction, default=None,
                   help="ONNX Runtime on the CPU: keep the optimised model in ~/.cache/edgelight/ort and load "
                        "it on the next start (default: on)")
    b.add_argument("--cuda-lib", choices=["auto", "pycuda", "cuda-python", "sim"],
                   help="CUDA layer of the overlapped GPU executor and TensorRT engines (default: cuda-python, "
                        "else pycuda); sim: the GPU path simulated on the CPU (a dry run, slow)")
    b.add_argument("--device", metavar="DEVICE",
                   help="auto, cpu, cuda or cuda:N (default: auto; TensorRT engines run on the GPU)")
    b.add_argument("--fp16", action="store_true", help="PyTorch checkpoints: run in half precision (CUDA)")
    b.add_argument("--cuda-graphs", action="store_true",
                   help="PyTorch checkpoints and TensorRT engines: replay CUDA graphs per input shape")
    b.add_argument("--depth", type=bounded_int(1, 64), default=2, help="frames in flight on the GPU (at least 2)")
    s = p.add_argument_group("source and statistics")
    if video_input:
        s.add_argument("--live", action=argparse.BooleanOptionalAction, default=None,
                       help="treat the input as live (keep only the newest frame, count drops); default: cameras "
                            "and streams are live, files are not")
        s.add_argument("--reconnects", type=bounded_int(1, 10_000), default=3,
                       help="reopen attempts when a live source is lost")
        s.add_argument("--timeout", type=timeout_seconds, default=5.0,
                       help="seconds before a stalled source counts as lost")
        s.add_argument("--max-frames", type=positive_int, help="stop after N frames")
    s.add_argument("--fps", type=frame_rate, help="output frame rate (default: the source's, or 30)")
    s.add_argument("--output-size", type=image_size, metavar="HxW", help="output frame size (default: the input's)")
    s.add_argument("--stats", metavar="PATH", help="also write the statistics as JSON")
    s.add_argument("--quiet", action="store_true", help="no progress bar")


def build_parser() -> ArgumentParser:
    from .democlip import KINDS
    from .tasks import get_task, list_tasks

    p = ArgumentParser(prog="python -m runtime",
                       description="Enhance or relight video in real time, or render a captured scene.\n\n"
                       + __doc__.split("\n\n", 1)[1].replace("``", ""))
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in list_tasks():
        task = get_task(name)
        t = sub.add_parser(name, help=task.help, formatter_class=p.formatter_class,
                           description=(task.__doc__ or task.help).split("\n\n")[0])
        _common(t, video_input=task.video_input)
        task.add_arguments(t)
    d = sub.add_parser("demo-clip", help="write a generated demo clip (moving content, changing light)",
                       formatter_class=p.formatter_class, description="Write a generated demo clip.")
    d.add_argument("--out", required=True, metavar="PATH", help="video file to write (.mp4)")
    d.add_argument("--kind", choices=KINDS, default=KINDS[0],
                   help="lowlight: a dark, noisy scene for enhance; faces: a well-lit one for relight")
    d.add_argument("--frames", type=bounded_int(1, 1_000_000), default=150, help="frames")
    d.add_argument("--size", type=image_size, default=(360, 640), metavar="HxW", help="frame size (default: 360x640)")
    d.add_argument("--fps", type=frame_rate, default=30.0, help="frame rate")
    d.add_argument("--seed", type=random_seed, default=0, help="random seed")
    return p


def _runner(args):
    from .load import load

    options = {"providers": tuple(v.strip() for v in args.providers.split(",")) if args.providers else None,
               "threads": args.threads, "cuda_lib": args.cuda_lib, "device": args.device,
               "fp16": args.fp16 or None, "cuda_graphs": args.cuda_graphs or None, "spinning": args.spinning,
               "optimization": args.optimization, "optimized_cache": args.optimized_cache}
    return load(args.model, args.backend, args.precision, **options)


def _demo_clip(args) -> int:
    from .democlip import make_demo_clip

    if Path(args.out).exists():
        raise UserError(f"{args.out} exists; remove it or choose another --out")
    path = make_demo_clip(args.out, kind=args.kind, frames=args.frames, size=args.size, fps=args.fps, seed=args.seed)
    print(f"wrote {args.frames} frames of {args.size[0]}x{args.size[1]} at {args.fps:g} fps to {path}")
    return 0


def _check_outputs(args) -> None:
    """Refuse output paths that cannot be written before any work is done."""
    from .video import VIDEO_SUFFIXES

    for option, value in (("--output", args.output), ("--stats", args.stats)):
        if value is None:
            continue
        path = Path(value)
        if path.is_dir() and (option == "--stats" or path.suffix.lower() in VIDEO_SUFFIXES):
            raise UserError(f"{option} {path} is a folder")
        parent = next((p for p in path.parents if p.exists()), None)
        if parent is not None and not parent.is_dir():
            raise UserError(f"{option} {path}: {parent} is a file, not a folder")
        if parent is not None and not os.access(parent, os.W_OK):
            raise UserError(f"{option} {path}: cannot write in {parent}")
    if args.output_size and args.output and Path(args.output).suffix.lower() not in VIDEO_SUFFIXES:
        raise UserError("--output-size applies to a video file output, not an image folder")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "demo-clip":
        return _demo_clip(args)
    from .pipeline import Pipeline
    from .tasks import get_task
    from .video import open_sink, open_source

    _check_outputs(args)
    runner = _runner(args)
    kind = get_task(args.command)
    kind.check_model(runner)  # before reading the task's own settings from the sidecar
    task = kind.from_args(args, runner)
    source = sink = None
    ok = False
    try:
        if kind.video_input:
            source = open_source(args.input, live=args.live, reconnects=args.reconnects, timeout=args.timeout)
        fps = args.fps or (source.fps if source is not None else 30.0)
        pipeline = Pipeline(runner, task, source, None, max_frames=getattr(args, "max_frames", None),
                            progress=not args.quiet, depth=args.depth)  # checks the task before any output exists
        sink = open_sink(args.output, fps=fps, size=args.output_size, show=args.show, overwrite=args.overwrite)
        pipeline.sink = sink
        with runner:
            summary = pipeline.run()
        ok = True
    finally:  # on any failure (a full disk included) the sink discards its temporary file
        if sink is not None:
            sink.close(ok=ok)
        if source is not None:
            source.stop()
    print(pipeline.stats.table())
    if args.stats:
        pipeline.stats.write_json(args.stats)
    where = f" to {args.output}" if args.output else ""
    print(f"{summary['frames']} frames{where}; {runner.name} {runner.sidecar.precision.upper()} on {runner.backend} "
          f"({runner.device}), {summary['fps']:.1f} FPS end to end, {summary['dropped']} dropped")
    if pipeline.interrupted:  # Ctrl-C, SIGTERM, SIGHUP: a clean stop; what was processed is written
        signum = pipeline.stop_signal or signal.SIGINT
        print(f"{main.prog}: interrupted ({signal.Signals(signum).name}) after {summary['frames']} frames",
              file=sys.stderr)
        return 0 if source is not None and source.live and signum == signal.SIGINT else 128 + signum
    if pipeline.error:
        print(f"{main.prog}: stopped early: {pipeline.error}", file=sys.stderr)
        return 1 if source is not None and source.live else 2
    return 0


main.prog = "python -m runtime"  # type: ignore[attr-defined]
