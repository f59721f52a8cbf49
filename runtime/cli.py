"""``python -m runtime``: enhance or relight video in real time, or render a captured scene.

    python -m runtime enhance --model exports/lowlight --input clip.mp4 --output enhanced.mp4
    python -m runtime enhance --model model.fp16.engine --input 0 --show
    python -m runtime relight --model exports/relight --input rtsp://camera/stream --light-path orbit --show
    python -m runtime relight --model exports/relight_sh --input clip.mp4 --sh left --output relit.mp4
    python -m runtime ibr --model exports/ibr --light-path orbit --frames 120 --output scene.mp4
    python -m runtime demo-clip --out demo.mp4

Exit codes: 0 done (Ctrl-C on a camera or stream is a clean stop); 1 a live source was lost (after
reconnect attempts; the output so far is kept); 2 bad input (a missing or damaged file, a model
for another task, a bad option; the output of a damaged file is kept up to the damage); 130 Ctrl-C
on a file (the frames processed so far are written).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from train.cli import ArgumentParser, image_size, nonnegative_float, positive_float, positive_int

from .errors import UserError

__all__ = ["main", "build_parser"]


def _vector(count: int):
    def parse(text: str) -> tuple[float, ...]:
        try:
            values = tuple(float(v) for v in text.split(","))
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {count} comma-separated numbers") from None
        if len(values) != count:
            raise argparse.ArgumentTypeError(f"{text!r}: expected {count} comma-separated numbers")
        return values

    parse.__name__ = "light"
    return parse


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
    b.add_argument("--backend", choices=["auto", "tensorrt", "onnxruntime", "torch"], default="auto",
                   help="auto: by the model's suffix (an export folder: its engine if TensorRT is installed, "
                        "else ONNX)")
    b.add_argument("--providers", metavar="LIST",
                   help="ONNX Runtime execution providers in order, e.g. tensorrt,cuda,cpu (default: those installed)")
    b.add_argument("--threads", type=positive_int, help="CPU threads for ONNX Runtime or PyTorch (default: all cores)")
    b.add_argument("--cuda-lib", choices=["auto", "pycuda", "cuda-python"], default="auto",
                   help="CUDA layer for TensorRT engines (auto: cuda-python, else pycuda)")
    b.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto", help="PyTorch checkpoints: device")
    b.add_argument("--fp16", action="store_true", help="PyTorch checkpoints: run in half precision (CUDA)")
    b.add_argument("--depth", type=positive_int, default=2, help="frames in flight on the GPU (at least 2)")
    s = p.add_argument_group("source and statistics")
    if video_input:
        s.add_argument("--live", action=argparse.BooleanOptionalAction, default=None,
                       help="treat the input as live (keep only the newest frame, count drops); default: cameras "
                            "and streams are live, files are not")
        s.add_argument("--reconnects", type=positive_int, default=3, help="reopen attempts when a live source is lost")
        s.add_argument("--timeout", type=positive_float, default=5.0,
                       help="seconds before a stalled source counts as lost")
        s.add_argument("--max-frames", type=positive_int, help="stop after N frames")
    s.add_argument("--fps", type=positive_float, help="output frame rate (default: the source's, or 30)")
    s.add_argument("--output-size", type=image_size, metavar="HxW", help="output frame size (default: the input's)")
    s.add_argument("--stats", metavar="PATH", help="also write the statistics as JSON")
    s.add_argument("--quiet", action="store_true", help="no progress bar")


def build_parser() -> ArgumentParser:
    p = ArgumentParser(prog="python -m runtime",
                       description="Enhance or relight video in real time, or render a captured scene.\n\n"
                       + __doc__.split("\n\n", 1)[1].replace("``", ""))
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    e = sub.add_parser("enhance", help="low-light enhancement of a video, camera or stream (lowlight models)",
                       formatter_class=p.formatter_class, description="Enhance low-light video with a lowlight model.")
    _common(e)
    e.add_argument("--smooth", type=nonnegative_float, default=0.0, metavar="A",
                   help="temporal smoothing of the estimated illumination against flicker: 0 off .. 0.9 strong")
    r = sub.add_parser("relight", help="relight a video, camera or stream (relight models)",
                       formatter_class=p.formatter_class, description="Relight video with a relight chain.")
    _common(r)
    light = r.add_mutually_exclusive_group()
    light.add_argument("--light", type=_vector(3), metavar="X,Y,Z",
                       help="a fixed point light (relight_point): x right, y down over the frame (-1..1), z height")
    light.add_argument("--sh", metavar="NAME",
                       help="a named SH light (relight_sh): front, left, right, top, bottom, ambient")
    light.add_argument("--light-path", metavar="PATH",
                       help="orbit or sweep; a CSV with x,y,z columns (point lights); for SH models also a comma list "
                            "of SH light names to blend through (default: orbit)")
    r.add_argument("--period", type=positive_int, default=120, help="frames per cycle of --light-path")
    i = sub.add_parser("ibr", help="render a captured scene along a light path (ibr models)",
                       formatter_class=p.formatter_class, description="Render an ibr model's scene under moving light.")
    _common(i, video_input=False)
    i.add_argument("--light-path", default="orbit", metavar="PATH",
                   help="orbit, sweep or a CSV with x,y columns in capture units")
    i.add_argument("--frames", type=positive_int, default=120, help="frames to render")
    i.add_argument("--average", metavar="FILE.npy", help="the capture's average image (default: the export's asset)")
    i.add_argument("--white", type=positive_float, help="linear value shown as white (default: from the average)")
    d = sub.add_parser("demo-clip", help="write a generated demo clip (moving content, changing light)",
                       formatter_class=p.formatter_class, description="Write a generated demo clip.")
    d.add_argument("--out", required=True, metavar="PATH", help="video file to write (.mp4)")
    d.add_argument("--kind", choices=["lowlight", "faces"], default="lowlight",
                   help="lowlight: a dark, noisy scene for enhance; faces: a well-lit one for relight")
    d.add_argument("--frames", type=positive_int, default=150, help="frames")
    d.add_argument("--size", type=image_size, default=(360, 640), metavar="HxW", help="frame size (default: 360x640)")
    d.add_argument("--fps", type=positive_float, default=30.0, help="frame rate")
    d.add_argument("--seed", type=int, default=0, help="random seed")
    return p


def _runner(args):
    from .load import load

    providers = tuple(v.strip() for v in args.providers.split(",")) if args.providers else None
    return load(args.model, args.backend, providers=providers, threads=args.threads, cuda_lib=args.cuda_lib,
                device=args.device, fp16=args.fp16 or None)


def _task(args, runner):
    import numpy as np

    from .tasks import EnhanceTask, IBRTask, RelightTask

    if args.command == "enhance":
        return EnhanceTask(smoothing=args.smooth)
    if args.command == "relight":
        from train.lighting import point_light_path, read_light_csv, sh_light_path, sh_preset

        sh = runner.sidecar["config"].get("light") == "sh"
        if args.light is not None:
            lights = np.asarray([args.light], np.float32)
        elif args.sh is not None:
            try:
                lights = sh_preset(args.sh)[None]
            except ValueError as exc:
                raise UserError(str(exc)) from None
        else:
            spec = args.light_path or "orbit"
            if sh:
                lights, _ = sh_light_path(spec, args.period)
            elif spec in ("orbit", "sweep"):
                lights = point_light_path(spec, args.period)
            else:
                lights = read_light_csv(spec, ("x", "y", "z")).astype(np.float32)
        return RelightTask(lights=np.asarray(lights, np.float32))
    from train.lighting import ibr_light_path

    config = runner.sidecar["config"]
    average = _average(args, runner)
    lights = ibr_light_path(args.light_path, args.frames, config["light_low"], config["light_high"])
    return IBRTask(average=average, lights=lights, white=args.white)


def _average(args, runner):
    from train.ibr import read_average

    assets = runner.sidecar.get("assets", {})
    folder = Path(runner.sidecar.get("source", {}).get("checkpoint", "."))
    path = Path(args.average) if args.average else None
    if path is None and "average" in assets:
        path = Path(args.model if Path(args.model).is_dir() else Path(args.model).parent) / assets["average"]
    if path is None:
        path = folder.parent / "average.npy"
    return read_average(path)


def _demo_clip(args) -> int:
    from .democlip import make_demo_clip

    if Path(args.out).exists():
        raise UserError(f"{args.out} exists; remove it or choose another --out")
    path = make_demo_clip(args.out, kind=args.kind, frames=args.frames, size=args.size, fps=args.fps, seed=args.seed)
    print(f"wrote {args.frames} frames of {args.size[0]}x{args.size[1]} at {args.fps:g} fps to {path}")
    return 0


_FAMILIES = {"enhance": "lowlight", "relight": "relight", "ibr": "ibr"}


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
    from .errors import TaskError
    from .pipeline import Pipeline
    from .video import open_sink, open_source

    _check_outputs(args)
    runner = _runner(args)
    if runner.family != _FAMILIES[args.command]:  # before reading the family's own settings from the sidecar
        hint = next((c for c, f in _FAMILIES.items() if f == runner.family), None)
        raise TaskError(f"{runner.sidecar.get('artefact', runner.name)} is a {runner.family!r} model ({runner.name}); "
                        f"'{args.command}' needs a {_FAMILIES[args.command]} model"
                        + (f" (use python -m runtime {hint})" if hint else ""))
    task = _task(args, runner)
    source = sink = None
    ok = False
    try:
        if args.command != "ibr":
            source = open_source(args.input, live=args.live, reconnects=args.reconnects, timeout=args.timeout)
        fps = args.fps or (source.fps if source is not None else 30.0)
        pipeline = Pipeline(runner, task, source, None, max_frames=getattr(args, "max_frames", None),
                            progress=not args.quiet, depth=args.depth)  # checks the task before any output exists
        sink = open_sink(args.output, fps=fps, size=args.output_size, show=args.show, overwrite=args.overwrite)
        pipeline.sink = sink
        with runner:
            summary = pipeline.run()
        ok = True
    except OSError as exc:  # an output that cannot be written after all (disk full, permissions)
        raise UserError(f"{exc.filename or 'output'}: {exc.strerror or exc}") from None
    finally:
        if sink is not None:
            sink.close(ok=ok)
        if source is not None:
            source.stop()
    print(pipeline.stats.table())
    if args.stats:
        pipeline.stats.write_json(args.stats)
    where = f" to {args.output}" if args.output else ""
    print(f"{summary['frames']} frames{where}; {runner.name} on {runner.backend} ({runner.device}), "
          f"{summary['fps']:.1f} FPS end to end, {summary['dropped']} dropped")
    if pipeline.interrupted:  # Ctrl-C: a clean stop; what was processed is written
        print(f"{main.prog}: interrupted after {summary['frames']} frames", file=sys.stderr)
        return 0 if source is not None and source.live else 130
    if pipeline.error:
        print(f"{main.prog}: stopped early: {pipeline.error}", file=sys.stderr)
        return 1 if source is not None and source.live else 2
    return 0


main.prog = "python -m runtime"  # type: ignore[attr-defined]
