"""``python -m train.ibr``: image-based relighting (seed 001): learn one scene's light transport from
a capture (the scene under ~200 point lights) and render it under lights it was never shown.

    python -m train.ibr                                       # edge preset, synthetic light stage
    python -m train.ibr --data captures/bull --preset seed    # your capture: images + lights.csv
    python -m train.ibr make-capture --out captures/synthetic # write the synthetic capture to disk
    python -m train.ibr render --model runs/ibr --light-path orbit --output orbit.mp4

Training draws batches of single pixels from ALL training images at once (the seed's key point),
with an MSE + luminance + relative-error loss on log-normalised HDR, Adam, ReduceLROnPlateau on the
validation lights' relative error and the seed's extra step: after --batch-reduce-after rate cuts
(or once the rate reaches --min-lr) the batch size is halved, at most --batch-reductions times.

The run folder (--out) receives best.ckpt and last.ckpt (the checkpoint contract of
train.checkpoint), average.npy (the training images' linear HDR average: the model's input, needed
to render), metrics.csv, loss_curve.png, and at the end metrics.json (relative error and PSNR on the
held-out test lights, for the network and for the nearest-light and 4-nearest-light baselines) and
test_grid.png.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from runtime.core.cli import (ArgumentParser, bounded_int, budget_minutes, frame_rate, image_size, learning_rate,
                              loss_weight, open_fraction, positive_float, random_seed, thread_count)
from runtime.core.errors import UserError

from ..io import check_run_folder, clear_run_folder
from .data import AVERAGE_FILE

if TYPE_CHECKING:
    import torch

log = logging.getLogger("train.ibr")

RUN_FILES = ("best.ckpt", "last.ckpt", "average.npy", "metrics.csv", "metrics.json", "loss_curve.png", "test_grid.png")
VIDEO_SUFFIXES = (".mp4", ".mov", ".m4v", ".avi")


# ------------------------------------------------------------------------------------------------ parsers


def _add_capture_options(group, prefix: str = "") -> None:
    group.add_argument("--lights", type=bounded_int(1, 100_000), default=200,
                       help=f"{prefix}lights on the dome (the seed: 200+)")
    group.add_argument("--size", type=image_size, default="60x80", metavar="N|HxW", help=f"{prefix}image size")


def build_parser() -> ArgumentParser:
    from ..models import list_models

    presets = [name.split("_", 1)[1] for name in list_models("ibr")]
    p = ArgumentParser(
        prog="python -m train.ibr",
        description=__doc__.replace("``", "")
        + "\nmake-capture options: python -m train.ibr make-capture --help"
        + "\nrender options:       python -m train.ibr render --help",
        epilog="Capture folder format for --data: see train/ibr/capture.py "
               "(images + lights.csv with header image,x,y[,z]).",
    )
    g = p.add_argument_group("model")
    g.add_argument("--preset", choices=presets, default="edge",
                   help="'seed': 5 x 600 units (1.45M parameters, the seed's network), 'edge': 3 x 96 with a sin/cos "
                        "position encoding (22k, for video), "
                        "'test': tiny")
    g.add_argument("--widths", type=bounded_int(1, 16384), nargs="+", default=None, metavar="N",
                   help="hidden layer widths, replacing the preset's")
    g = p.add_argument_group("data")
    g.add_argument("--data", default="synthetic", metavar="synthetic|DIR",
                   help="'synthetic' renders a light-stage capture in memory; otherwise a capture folder")
    _add_capture_options(g, "synthetic: ")
    g.add_argument("--scene-seed", type=random_seed, default=0,
                   help="synthetic: seed of the procedural scene (default: 0)")
    g.add_argument("--test-every", type=bounded_int(2, 1_000_000), default=10,
                   help="every Nth light (rows N/2, N/2+N, ...) is held out for the final test")
    g.add_argument("--val-every", type=bounded_int(2, 1_000_000), default=20,
                   help="every Nth light (rows 0, N, ...) is held out for validation (schedule, best.ckpt)")
    g.add_argument("--median-target", type=open_fraction, default=0.3,
                   help="HDR normalisation: exposure is fitted so the training median maps here (0..1)")
    g = p.add_argument_group("optimisation")
    g.add_argument("--steps", type=bounded_int(1, 100_000_000), default=80_000,
                   help="maximum optimiser steps (batches of pixels)")
    g.add_argument("--eval-every", type=bounded_int(1, 100_000_000), default=2000,
                   help="steps per epoch: validation, LR schedule, checkpoints and a metrics.csv row")
    g.add_argument("--max-minutes", type=budget_minutes, default=None, help="stop training after this many minutes")
    g.add_argument("--batch-size", type=bounded_int(1, 1 << 24), default=4096, help="pixels per batch at the start")
    g.add_argument("--min-batch-size", type=bounded_int(1, 1 << 24), default=512,
                   help="the batch size never drops below this")
    g.add_argument("--batch-reductions", type=bounded_int(0, 64), default=3,
                   help="at most this many batch-size halvings (the seed's extra step; 0 turns it off)")
    g.add_argument("--batch-reduce-after", type=bounded_int(1, 1000), default=2,
                   help="halve the batch size after this many learning-rate cuts (or when the rate hits --min-lr)")
    g.add_argument("--lr", type=learning_rate, default=3e-3, help="Adam learning rate")
    g.add_argument("--min-lr", type=learning_rate, default=1e-5, help="floor of ReduceLROnPlateau")
    g.add_argument("--plateau-patience", type=bounded_int(0, 1_000_000), default=2,
                   help="epochs without a better validation relative error before the rate is cut")
    g.add_argument("--plateau-factor", type=open_fraction, default=0.5, help="ReduceLROnPlateau factor")
    g.add_argument("--mse-weight", type=loss_weight, default=1.0, help="weight of the RGB MSE term")
    g.add_argument("--luminance-weight", type=loss_weight, default=1.0,
                   help="weight of the luminance MSE term (keeps channels from dying, the seed)")
    g.add_argument("--rel-weight", type=loss_weight, default=0.01,
                   help="weight of the relative-error term ||p - t|| / ||t|| over the batch")
    g.add_argument("--seed", type=random_seed, default=0, help="seed for weights and the pixel order (default: 0)")
    g.add_argument("--threads", type=thread_count, default=None, help="CPU threads for PyTorch (default: all cores)")
    g.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda:0")
    g = p.add_argument_group("output")
    g.add_argument("--out", type=Path, default=Path("runs/ibr"), metavar="DIR", help="run folder")
    g.add_argument("--overwrite", action="store_true", help="replace a previous run in --out")
    g.add_argument("--grid-lights", type=bounded_int(1, 256), default=4, help="held-out lights shown in test_grid.png")
    g.add_argument("--quiet", action="store_true", help="no progress bar or progress messages; results and errors only")
    return p


def build_capture_parser() -> ArgumentParser:
    p = ArgumentParser(
        prog="python -m train.ibr make-capture",
        description="Render the synthetic light-stage capture (one procedural scene under point lights on a "
                    "dome) and write it as a capture folder that --data reads: images and lights.csv.",
    )
    p.add_argument("--out", type=Path, required=True, metavar="DIR", help="new folder to create")
    _add_capture_options(p)
    p.add_argument("--seed", type=random_seed, default=0, help="seed of the procedural scene (default: 0)")
    p.add_argument("--format", choices=["npy", "hdr"], default="npy",
                   help="npy: lossless float32 arrays; hdr: Radiance RGBE files (about 1%% precision)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def build_render_parser() -> ArgumentParser:
    p = ArgumentParser(
        prog="python -m train.ibr render",
        description="Render the trained scene along a light path as a video (mp4v), tone-mapped for display. "
                    "The model's input, the capture's average image, is read from average.npy beside the "
                    "checkpoint (the run folder) unless --average names another file.",
    )
    p.add_argument("--model", required=True, metavar="CKPT|RUN_DIR",
                   help="an ibr checkpoint, or a run folder (its best.ckpt)")
    p.add_argument("--light-path", default="orbit", metavar="orbit|sweep|FILE.csv",
                   help="orbit: a circle at 3/4 of the lights' extent; sweep: left to right through the centre; "
                        "or a CSV with header x,y (capture units, like lights.csv), one frame per row")
    p.add_argument("--output", type=Path, required=True, metavar="OUT.mp4",
                   help="video file to write (.mp4, .mov, .m4v, .avi); replaced atomically if it exists")
    p.add_argument("--frames", type=bounded_int(1, 1_000_000), default=120,
                   help="frames of an orbit or sweep (a CSV path has one per row)")
    p.add_argument("--fps", type=frame_rate, default=30.0, help="frames per second")
    p.add_argument("--average", type=Path, default=None, metavar="FILE.npy",
                   help="the capture's average image (default: average.npy beside the checkpoint)")
    p.add_argument("--white", type=positive_float, default=None,
                   help="linear value shown as white (default: the checkpoint's display_white, the training "
                        "images' 99.5th percentile)")
    p.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda:0")
    p.add_argument("--threads", type=thread_count, default=None, help="CPU threads for PyTorch (default: all cores)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


# ------------------------------------------------------------------------------------------------ train


def _check_args(args) -> None:
    if args.data != "synthetic" and not Path(args.data).exists():
        raise UserError(f"data path does not exist: {args.data}")
    if args.min_batch_size > args.batch_size:
        raise UserError(f"--min-batch-size {args.min_batch_size} exceeds --batch-size {args.batch_size}")
    if not 0 < args.median_target < 1:
        raise UserError(f"--median-target must be between 0 and 1, got {args.median_target}")
    if not 0 < args.plateau_factor < 1:
        raise UserError(f"--plateau-factor must be between 0 and 1, got {args.plateau_factor}")
    if args.min_lr > args.lr:
        raise UserError(f"--min-lr {args.min_lr} exceeds --lr {args.lr}")
    if args.mse_weight + args.luminance_weight + args.rel_weight <= 0:
        raise UserError("at least one of --mse-weight, --luminance-weight, --rel-weight must be positive")
    if args.test_every < 2 or args.val_every < 2:
        raise UserError("--test-every and --val-every must be at least 2")


def train(argv: Sequence[str] | None) -> int:
    args = build_parser().parse_args(argv)
    check_run_folder(args.out, RUN_FILES, overwrite=args.overwrite)
    _check_args(args)

    import numpy as np
    import torch

    from runtime.core.io import atomic_path

    from ..models import create_model
    from .evaluate import finish
    from .module import fit, load_capture, prepare

    if args.quiet:
        logging.getLogger().setLevel(logging.WARNING)
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        torch.device(args.device)
    except RuntimeError as exc:
        raise UserError(f"--device {args.device!r}: {exc}") from None
    start = time.perf_counter()
    capture = load_capture(args)
    try:
        data = prepare(capture, args.test_every, args.val_every, args.median_target)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    torch.manual_seed(args.seed)
    overrides = {"hdr_scale": data.scale, "hdr_exposure": data.exposure, "light_low": data.light_low,
                 "light_high": data.light_high}
    if args.widths:
        overrides["widths"] = tuple(args.widths)
    try:
        model = create_model(f"ibr_{args.preset}", **overrides)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    log.info("%s: %d parameters; %d training, %d validation, %d test lights of %dx%d; pixels per pass %d",
             f"ibr_{args.preset}", sum(p.numel() for p in model.parameters()), len(data.train.names),
             len(data.val.names), len(data.test.names), *data.train.size,
             len(data.train.names) * data.train.size[0] * data.train.size[1])
    clear_run_folder(args.out, RUN_FILES)
    args.out.mkdir(parents=True, exist_ok=True)
    with atomic_path(args.out / AVERAGE_FILE) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, data.average)
    summary = fit(model, data, args, args.out)
    if not (args.out / "best.ckpt").is_file():
        raise UserError("training diverged (the validation error was never finite), so no checkpoint was written; "
                        "lower --lr")
    extra = {"args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
             "threads": torch.get_num_threads(), "total_seconds": None, **summary}
    extra["total_seconds"] = round(time.perf_counter() - start, 1)
    log.info("trained %d steps in %.1f min; stopped by the %s", summary["steps"], summary["train_seconds"] / 60,
             summary["stopped_by"])
    finish(args.out, data, extra, args.grid_lights, args.device)
    return 0


# ----------------------------------------------------------------------------------------- make-capture


def make_capture(argv: Sequence[str] | None) -> int:
    from .capture import write_capture
    from .data import render_light_stage

    args = build_capture_parser().parse_args(argv)
    if args.out.exists():
        raise UserError(f"{args.out} already exists; choose a new folder")
    start = time.perf_counter()
    capture = render_light_stage(args.lights, args.size, seed=args.seed, progress=not args.quiet)
    write_capture(args.out, capture, args.format)
    print(f"wrote {args.lights} images of {args.size[0]}x{args.size[1]} and lights.csv to {args.out} "
          f"in {time.perf_counter() - start:.1f}s")
    return 0


# ---------------------------------------------------------------------------------------------- render


def light_path(spec: str, frames: int, model) -> torch.Tensor:
    """Normalised (F, 2) light positions for ``orbit``, ``sweep`` or a CSV of capture-unit x, y."""
    import torch

    from runtime.core.lighting import ibr_light_path

    return torch.from_numpy(ibr_light_path(spec, frames, model.config.light_low, model.config.light_high))


def _load_ibr(spec: str, device: str):
    from ..checkpoint import checkpoint_path, load_checkpoint

    path = checkpoint_path(spec)
    model, meta = load_checkpoint(path, map_location=device, family="ibr",
                                  purpose="render (train one with python -m train.ibr)")
    return model, meta, path


def read_average(path: Path):
    """A capture's average image (H, W, 3) float32 from ``path``; UserError naming the problem otherwise."""
    from runtime.core.io import read_float_image

    return read_float_image(path, "average image", f"pass --average FILE.npy (the run folder's {AVERAGE_FILE})")


def render(argv: Sequence[str] | None) -> int:
    import tempfile

    import cv2
    import numpy as np
    import torch
    from tqdm import tqdm

    from ..plots import to_display

    args = build_render_parser().parse_args(argv)
    if args.output.suffix.lower() not in VIDEO_SUFFIXES:
        raise UserError(f"--output must end in {', '.join(VIDEO_SUFFIXES)}, got {args.output.name!r}")
    if args.output.is_dir():
        raise UserError(f"--output {args.output} is a folder")
    if args.threads:
        torch.set_num_threads(args.threads)
    model, meta, ckpt = _load_ibr(args.model, args.device)
    average = read_average(args.average or ckpt.parent / AVERAGE_FILE)
    lights = light_path(args.light_path, args.frames, model)
    white = args.white or float(meta.get("data", {}).get("display_white") or np.percentile(average, 99.5) * 2)
    h, w = average.shape[:2]
    args.output.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{args.output.stem}.", suffix=f".tmp{args.output.suffix}",
                                    dir=args.output.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    writer = None
    try:
        writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), args.fps, (w, h))
        if not writer.isOpened():
            raise UserError(f"OpenCV cannot write {args.output.suffix} video here (mp4v codec)")
        avg = torch.from_numpy(average).permute(2, 0, 1)[None].to(args.device)
        with torch.no_grad():
            for light in tqdm(lights, desc="render", unit="frame", disable=args.quiet, leave=False):
                frame = model(avg, light[None].to(args.device))[0].permute(1, 2, 0).float().cpu().numpy()
                writer.write(np.round(to_display(frame / white) * 255).astype(np.uint8)[..., ::-1].copy())
        writer.release()
        writer = None
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(tmp, 0o666 & ~mask)
        os.replace(tmp, args.output)
    finally:
        if writer is not None:
            writer.release()
        tmp.unlink(missing_ok=True)
    print(f"wrote {len(lights)} frames of {h}x{w} at {args.fps:g} fps to {args.output}")
    return 0


# ------------------------------------------------------------------------------------------------ main


def main(argv: Sequence[str] | None = None) -> int:
    import sys

    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "make-capture":
        return make_capture(argv[1:])
    if argv and argv[0] == "render":
        return render(argv[1:])
    return train(argv)


main.prog = "python -m train.ibr"
