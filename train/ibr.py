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

import csv
import logging
import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .cli import ArgumentParser, image_size, nonnegative_float, nonnegative_int, positive_float, positive_int, run
from .errors import UserError
from .io import check_run_folder, clear_run_folder

if TYPE_CHECKING:
    import numpy as np
    import torch

    from .data.ibr import Capture

log = logging.getLogger("train.ibr")

RUN_FILES = ("best.ckpt", "last.ckpt", "average.npy", "metrics.csv", "metrics.json", "loss_curve.png", "test_grid.png")
AVERAGE_FILE = "average.npy"
LOSS_CURVES = (
    (("train/loss", "train loss"), ("val/loss", "validation loss")),
    (("val/psnr", "network"), ("val/baseline_psnr", "nearest-light baseline")),
)
CSV_FIELDS = ("epoch", "step", "train/loss", "train/mse", "train/luminance", "train/rel", "val/loss", "val/rel_error",
              "val/psnr", "val/baseline_psnr", "lr", "batch_size", "seconds")
VIDEO_SUFFIXES = (".mp4", ".mov", ".m4v", ".avi")


# ------------------------------------------------------------------------------------------------ parsers


def _add_capture_options(group, prefix: str = "") -> None:
    group.add_argument("--lights", type=positive_int, default=200, help=f"{prefix}lights on the dome (the seed: 200+)")
    group.add_argument("--size", type=image_size, default="60x80", metavar="N|HxW", help=f"{prefix}image size")


def build_parser() -> ArgumentParser:
    from .models import list_models

    presets = [name.split("_", 1)[1] for name in list_models("ibr")]
    p = ArgumentParser(
        prog="python -m train.ibr",
        description=__doc__.replace("``", "")
        + "\nmake-capture options: python -m train.ibr make-capture --help"
        + "\nrender options:       python -m train.ibr render --help",
        epilog="Capture folder format for --data: see train/data/ibr.py "
               "(images + lights.csv with header image,x,y[,z]).",
    )
    g = p.add_argument_group("model")
    g.add_argument("--preset", choices=presets, default="edge",
                   help="'seed': 5 x 600 units (1.45M parameters, the seed's network), 'edge': 3 x 96 with a sin/cos "
                        "position encoding (22k, for video), "
                        "'test': tiny")
    g.add_argument("--widths", type=positive_int, nargs="+", default=None, metavar="N",
                   help="hidden layer widths, replacing the preset's")
    g = p.add_argument_group("data")
    g.add_argument("--data", default="synthetic", metavar="synthetic|DIR",
                   help="'synthetic' renders a light-stage capture in memory; otherwise a capture folder")
    _add_capture_options(g, "synthetic: ")
    g.add_argument("--scene-seed", type=nonnegative_int, default=0, help="synthetic: seed of the procedural scene (default: 0)")
    g.add_argument("--test-every", type=positive_int, default=10,
                   help="every Nth light (rows N/2, N/2+N, ...) is held out for the final test")
    g.add_argument("--val-every", type=positive_int, default=20,
                   help="every Nth light (rows 0, N, ...) is held out for validation (schedule, best.ckpt)")
    g.add_argument("--median-target", type=positive_float, default=0.3,
                   help="HDR normalisation: exposure is fitted so the training median maps here (0..1)")
    g = p.add_argument_group("optimisation")
    g.add_argument("--steps", type=positive_int, default=80_000, help="maximum optimiser steps (batches of pixels)")
    g.add_argument("--eval-every", type=positive_int, default=2000,
                   help="steps per epoch: validation, LR schedule, checkpoints and a metrics.csv row")
    g.add_argument("--max-minutes", type=positive_float, default=None, help="stop training after this many minutes")
    g.add_argument("--batch-size", type=positive_int, default=4096, help="pixels per batch at the start")
    g.add_argument("--min-batch-size", type=positive_int, default=512, help="the batch size never drops below this")
    g.add_argument("--batch-reductions", type=nonnegative_int, default=3,
                   help="at most this many batch-size halvings (the seed's extra step; 0 turns it off)")
    g.add_argument("--batch-reduce-after", type=positive_int, default=2,
                   help="halve the batch size after this many learning-rate cuts (or when the rate hits --min-lr)")
    g.add_argument("--lr", type=positive_float, default=3e-3, help="Adam learning rate")
    g.add_argument("--min-lr", type=positive_float, default=1e-5, help="floor of ReduceLROnPlateau")
    g.add_argument("--plateau-patience", type=nonnegative_int, default=2,
                   help="epochs without a better validation relative error before the rate is cut")
    g.add_argument("--plateau-factor", type=positive_float, default=0.5, help="ReduceLROnPlateau factor")
    g.add_argument("--mse-weight", type=nonnegative_float, default=1.0, help="weight of the RGB MSE term")
    g.add_argument("--luminance-weight", type=nonnegative_float, default=1.0,
                   help="weight of the luminance MSE term (keeps channels from dying, the seed)")
    g.add_argument("--rel-weight", type=nonnegative_float, default=0.01,
                   help="weight of the relative-error term ||p - t|| / ||t|| over the batch")
    g.add_argument("--seed", type=nonnegative_int, default=0, help="seed for weights and the pixel order (default: 0)")
    g.add_argument("--threads", type=positive_int, default=None, help="CPU threads for PyTorch (default: all cores)")
    g.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda:0")
    g = p.add_argument_group("output")
    g.add_argument("--out", type=Path, default=Path("runs/ibr"), metavar="DIR", help="run folder")
    g.add_argument("--overwrite", action="store_true", help="replace a previous run in --out")
    g.add_argument("--grid-lights", type=positive_int, default=4, help="held-out lights shown in test_grid.png")
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
    p.add_argument("--seed", type=nonnegative_int, default=0, help="seed of the procedural scene (default: 0)")
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
    p.add_argument("--frames", type=positive_int, default=120, help="frames of an orbit or sweep (a CSV path has one per row)")
    p.add_argument("--fps", type=positive_float, default=30.0, help="frames per second")
    p.add_argument("--average", type=Path, default=None, metavar="FILE.npy",
                   help="the capture's average image (default: average.npy beside the checkpoint)")
    p.add_argument("--white", type=positive_float, default=None,
                   help="linear value shown as white (default: the checkpoint's display_white, the training "
                        "images' 99.5th percentile)")
    p.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda:0")
    p.add_argument("--threads", type=positive_int, default=None, help="CPU threads for PyTorch (default: all cores)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


# ---------------------------------------------------------------------------------------------- data


@dataclass
class Prepared:
    """A capture split into train / val / test lights, with the fitted constants."""

    train: Capture
    val: Capture
    test: Capture
    average: np.ndarray
    """(H, W, 3) float32 linear HDR: the mean of the training images, the model's input."""
    scale: float
    exposure: float
    light_low: tuple[float, float]
    light_high: tuple[float, float]
    display_white: float
    summary: dict


def load_capture(args):
    from .data.ibr import read_capture, render_light_stage

    if args.data == "synthetic":
        log.info("rendering the synthetic light stage: %d lights, %dx%d, scene %d", args.lights, *args.size,
                 args.scene_seed)
        return render_light_stage(args.lights, args.size, seed=args.scene_seed, progress=not args.quiet)
    return read_capture(args.data, progress=not args.quiet)


def prepare(capture: Capture, test_every: int = 10, val_every: int = 20, median_target: float = 0.3) -> Prepared:
    """Split ``capture`` by light and fit the normalisation on its training images."""
    import numpy as np

    from .data.ibr import fit_normalisation, split_lights

    split = split_lights(len(capture.names), test_every, val_every)
    train, val, test = (capture.subset(split[k]) for k in ("train", "val", "test"))
    scale, exposure = fit_normalisation(train.images, median_target)
    low = tuple(float(v) for v in train.lights.min(0))
    high = tuple(float(v) for v in train.lights.max(0))
    if any(h - lo <= 1e-6 * max(1.0, abs(h)) for lo, h in zip(low, high)):
        raise UserError("the training lights do not vary in both x and y; the network needs lights spread over a plane")
    average = train.images.mean(0).astype(np.float32)
    display_white = float(np.percentile(train.images[:, ::2, ::2], 99.5))
    summary = {
        **capture.meta,
        "image_size": list(capture.size),
        "lights": len(capture.names),
        "split": {k: len(v) for k, v in split.items()},
        "test_lights": [capture.names[i] for i in split["test"]],
        "test_every": test_every, "val_every": val_every,
        "hdr_scale": scale, "hdr_exposure": exposure, "median_target": median_target,
        "light_low": list(low), "light_high": list(high),
        "average": AVERAGE_FILE, "display_white": display_white,
    }
    return Prepared(train, val, test, average, scale, exposure, low, high, display_white, summary)


# ------------------------------------------------------------------------------------- loss and metrics


def ibr_loss(prediction, target, mse: float = 1.0, luminance: float = 1.0, rel: float = 0.01) -> dict:
    """The seed's loss on normalised (B, 3) pixels: RGB MSE + luminance MSE + relative error; total and terms."""
    import torch.nn.functional as F

    from .losses import luminance as luma

    terms = {}
    if mse > 0:
        terms["mse"] = F.mse_loss(prediction, target)
    if luminance > 0:
        terms["luminance"] = F.mse_loss(luma(prediction[:, :, None, None]), luma(target[:, :, None, None]))
    if rel > 0:
        terms["rel"] = (prediction - target).norm() / target.norm().clamp_min(1e-8)
    weights = {"mse": mse, "luminance": luminance, "rel": rel}
    return {"loss": sum(weights[k] * v for k, v in terms.items()), **terms}


def psnr_hdr(prediction, target, peak: float):
    """Mean per-image PSNR (dB) of linear HDR images against the peak value ``peak``."""
    import torch

    mse = ((prediction - target) ** 2).flatten(1).mean(1).clamp_min(1e-12)
    return float((10 * torch.log10(peak**2 / mse)).mean())


def image_scores(prediction, target, peak: float) -> dict:
    """Relative error (seed 001's figure, linear HDR) and PSNR of (N, 3, H, W) predictions."""
    from .metrics import relative_error

    return {"rel_error": round(float(relative_error(prediction, target)), 5),
            "psnr": round(psnr_hdr(prediction, target, peak), 3)}


def predict_frames(model, average, lights, batch: int = 8):
    """Whole-frame predictions (N, 3, H, W) for normalised ``lights`` (N, 2), linear HDR, on the CPU."""
    import torch

    device = next(model.parameters()).device
    avg = torch.as_tensor(average).permute(2, 0, 1)[None].to(device)
    lights = torch.as_tensor(lights, dtype=torch.float32)
    out = []
    with torch.no_grad():
        for start in range(0, len(lights), batch):
            chunk = lights[start : start + batch].to(device)
            out.append(model(avg.expand(len(chunk), -1, -1, -1), chunk).float().cpu())
    return torch.cat(out)


def nearest_baselines(train, held_out, low, high) -> dict:
    """Classical answers for held-out lights: the nearest training light's image and an inverse-distance
    blend of the 4 nearest (by normalised light position). Returns (N, 3, H, W) tensors by name."""
    import numpy as np
    import torch

    from .data.ibr import normalise_lights

    a = normalise_lights(train.lights, low, high)
    b = normalise_lights(held_out.lights, low, high)
    d = np.sqrt(((b[:, None, :] - a[None]) ** 2).sum(-1))
    order = np.argsort(d, axis=1)
    k = min(4, len(a))
    near = order[:, :k]
    w = 1.0 / np.maximum(np.take_along_axis(d, near, 1), 1e-6)
    w /= w.sum(1, keepdims=True)
    blend = (train.images[near] * w[..., None, None, None]).sum(1)
    as_t = lambda x: torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).permute(0, 3, 1, 2)  # noqa: E731
    return {"nearest_light": as_t(train.images[order[:, 0]]), "nearest_4_lights": as_t(blend)}


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


class BatchSchedule:
    """The seed's batch-size step on top of ReduceLROnPlateau.

    After ``after`` learning-rate cuts since the last change, or when the rate has reached its floor,
    the batch size is halved (never below ``minimum``, at most ``reductions`` times). ``done`` is true
    when the rate is at its floor and no halving is left: the schedule has nothing more to try.
    """

    def __init__(self, batch_size: int, minimum: int, reductions: int, after: int, min_lr: float) -> None:
        self.batch_size, self.minimum, self.left = batch_size, minimum, reductions
        self.after, self.min_lr = after, min_lr
        self.cuts = 0
        self.events: list[dict] = []

    def _can_halve(self) -> bool:
        return self.left > 0 and self.batch_size // 2 >= self.minimum

    def update(self, old_lr: float, new_lr: float, step: int) -> str | None:
        """Record one scheduler step; returns a message when the batch size or rate changed."""
        messages = []
        if new_lr < old_lr:
            self.cuts += 1
            messages.append(f"learning rate {old_lr:.3g} -> {new_lr:.3g}")
            self.events.append({"step": step, "lr": new_lr, "batch_size": self.batch_size, "event": "lr cut"})
        at_floor = new_lr <= self.min_lr * (1 + 1e-6)
        if (self.cuts >= self.after or at_floor) and self._can_halve():
            reason = "the rate reached --min-lr" if at_floor and self.cuts < self.after else f"{self.cuts} rate cut{'s' * (self.cuts != 1)}"
            old = self.batch_size
            self.batch_size //= 2
            self.left -= 1
            self.cuts = 0
            messages.append(f"batch size {old} -> {self.batch_size} after {reason}")
            self.events.append({"step": step, "lr": new_lr, "batch_size": self.batch_size, "event": "batch halved"})
        return "; ".join(messages) or None

    def done(self, lr: float) -> bool:
        return lr <= self.min_lr * (1 + 1e-6) and not self._can_halve()


def _save_grid(path: Path, truth, prediction, baseline, names: list[str], white: float, title: str, rows: int) -> None:
    import numpy as np

    from .io import atomic_path
    from .metrics import relative_error
    from .plots import _pyplot, to_display

    plt = _pyplot()
    rows = min(rows, len(truth))
    columns = ["truth", "network", "nearest light", "|network - truth| x4"]
    fig, axes = plt.subplots(rows, 4, figsize=(2.6 * 4, 2.3 * rows * truth.shape[2] / truth.shape[3] + 0.6),
                             squeeze=False)
    for r in range(rows):
        t, p, b = (x[r].permute(1, 2, 0).numpy() for x in (truth, prediction, baseline))
        panels = [(to_display(t / white), None), (to_display(p / white), None), (to_display(b / white), None),
                  (np.clip(np.abs(p - t).mean(-1) / white * 4, 0, 1), "inferno")]
        for c, (image, cmap) in enumerate(panels):
            ax = axes[r][c]
            ax.imshow(image, cmap=cmap, vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(columns[c], fontsize=9)
        rel_net = float(relative_error(prediction[r : r + 1], truth[r : r + 1]))
        rel_base = float(relative_error(baseline[r : r + 1], truth[r : r + 1]))
        axes[r][0].set_ylabel(names[r], fontsize=8)
        axes[r][1].set_xlabel(f"rel. error {rel_net:.3f}", fontsize=8)
        axes[r][2].set_xlabel(f"rel. error {rel_base:.3f}", fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=80)
    plt.close(fig)


def _write_csv_row(path: Path, row: dict) -> None:
    new = not path.exists()
    with open(path, "a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_FIELDS)
        if new:
            writer.writeheader()
        writer.writerow({k: row.get(k, "") for k in CSV_FIELDS})


def fit(model, data: Prepared, args, out: Path) -> dict:
    """Train ``model`` on ``data``; writes best.ckpt, last.ckpt and metrics.csv to ``out``. Returns a summary."""
    import torch
    from tqdm import tqdm

    from .checkpoint import save_checkpoint
    from .data.ibr import PixelSampler, hdr_to_normalised, normalise_lights

    device = torch.device(args.device)
    norm = lambda x: hdr_to_normalised(torch.from_numpy(x), data.scale, data.exposure)  # noqa: E731
    sampler = PixelSampler(norm(data.train.images), norm(data.average),
                           torch.from_numpy(normalise_lights(data.train.lights, data.light_low, data.light_high)),
                           seed=args.seed)
    val_lights = normalise_lights(data.val.lights, data.light_low, data.light_high)
    val_truth = torch.from_numpy(data.val.images).permute(0, 3, 1, 2)
    val_truth_n = hdr_to_normalised(val_truth, data.scale, data.exposure)
    val_base = nearest_baselines(data.train, data.val, data.light_low, data.light_high)["nearest_light"]
    val_base_psnr = round(psnr_hdr(val_base, val_truth, data.scale), 3)

    model.to(device).train()
    optimiser = torch.optim.Adam(model.parameters(), lr=args.lr)
    plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(optimiser, mode="min", factor=args.plateau_factor,
                                                         patience=args.plateau_patience, min_lr=args.min_lr)
    schedule = BatchSchedule(args.batch_size, args.min_batch_size, args.batch_reductions, args.batch_reduce_after,
                             args.min_lr)
    weights = {"mse": args.mse_weight, "luminance": args.luminance_weight, "rel": args.rel_weight}
    metrics_csv = out / "metrics.csv"
    metrics_csv.unlink(missing_ok=True)
    start = time.perf_counter()
    deadline = start + args.max_minutes * 60 if args.max_minutes else None
    best = {"val/rel_error": math.inf}
    sums: dict[str, float] = {}
    count, epoch, step = 0, 0, 0
    stop_reason = "step budget (--steps)"
    bar = tqdm(total=args.steps, desc="ibr", unit="step", disable=args.quiet, dynamic_ncols=True, leave=False)
    while step < args.steps:
        features, target = sampler.sample(schedule.batch_size)
        terms = ibr_loss(model.forward_pixels(features.to(device)), target.to(device), **weights)
        optimiser.zero_grad(set_to_none=True)
        terms["loss"].backward()
        optimiser.step()
        step += 1
        count += 1
        for k, v in terms.items():
            sums[k] = sums.get(k, 0.0) + float(v.detach())
        bar.update(1)
        timed_out = deadline is not None and time.perf_counter() > deadline
        if step % args.eval_every and step < args.steps and not timed_out:
            continue
        # ---- end of an epoch: validate, schedule, checkpoint, log
        model.eval()
        prediction = predict_frames(model, data.average, val_lights)
        model.train()
        scores = image_scores(prediction, val_truth, data.scale)
        with torch.no_grad():
            pred_n = hdr_to_normalised(prediction, data.scale, data.exposure)
            val_loss = float(ibr_loss(pred_n.permute(0, 2, 3, 1).reshape(-1, 3),
                                      val_truth_n.permute(0, 2, 3, 1).reshape(-1, 3), **weights)["loss"])
        lr = optimiser.param_groups[0]["lr"]
        row = {"epoch": epoch, "step": step, **{f"train/{k}": round(v / count, 6) for k, v in sums.items()},
               "val/loss": round(val_loss, 6), "val/rel_error": scores["rel_error"], "val/psnr": scores["psnr"],
               "val/baseline_psnr": val_base_psnr, "lr": lr, "batch_size": schedule.batch_size,
               "seconds": round(time.perf_counter() - start, 1)}
        _write_csv_row(metrics_csv, row)
        metrics = {"val": {"val/rel_error": scores["rel_error"], "val/psnr": scores["psnr"], "val/loss": val_loss},
                   "epoch": epoch, "step": step}
        if scores["rel_error"] < best["val/rel_error"]:
            best = {**metrics["val"], "epoch": epoch, "step": step}
            save_checkpoint(out / "best.ckpt", model, data=data.summary, metrics=metrics)
        save_checkpoint(out / "last.ckpt", model, data=data.summary, metrics=metrics)
        bar.set_postfix(loss=f"{row['train/loss']:.4g}", val_rel=f"{scores['rel_error']:.4f}",
                        bs=schedule.batch_size, lr=f"{lr:.2g}")
        plateau.step(scores["rel_error"])
        message = schedule.update(lr, optimiser.param_groups[0]["lr"], step)
        if message:
            (bar.write if not args.quiet else log.debug)(f"step {step}: {message}")
        sums, count, epoch = {}, 0, epoch + 1
        if timed_out:
            stop_reason = "time limit (--max-minutes)"
            break
        if schedule.done(optimiser.param_groups[0]["lr"]):
            stop_reason = "end of the schedule (rate at --min-lr, no batch halving left)"
            break
    bar.close()
    return {"train_seconds": round(time.perf_counter() - start, 1), "steps": step, "epochs": epoch,
            "stopped_by": stop_reason, "best": best, "schedule": schedule.events,
            "final_batch_size": schedule.batch_size,
            "passes_over_training_pixels": round(sampler.drawn / len(sampler), 2)}


def finish(out: Path, data: Prepared, extra: dict, grid_lights: int = 4, device: str = "cpu") -> dict:
    """Evaluate best.ckpt on the held-out test lights; write metrics.json, test_grid.png and loss_curve.png."""
    import torch

    from .checkpoint import load_checkpoint, update_metadata
    from .data.ibr import normalise_lights
    from .io import write_json
    from .plots import save_loss_curve

    model, meta = load_checkpoint(out / "best.ckpt", map_location=device)
    truth = torch.from_numpy(data.test.images).permute(0, 3, 1, 2)
    lights = normalise_lights(data.test.lights, data.light_low, data.light_high)
    prediction = predict_frames(model, data.average, lights)
    network = image_scores(prediction, truth, data.scale)
    baselines = nearest_baselines(data.train, data.test, data.light_low, data.light_high)
    baseline_scores = {name: image_scores(b, truth, data.scale) for name, b in baselines.items()}
    avg = torch.from_numpy(data.average).permute(2, 0, 1)[None].expand_as(truth)
    baseline_scores["average_image"] = image_scores(avg, truth, data.scale)
    summary = {
        "model": meta["name"],
        "parameters": meta["parameters"],
        "checkpoint": str(out / "best.ckpt"),
        "held_out_lights": len(data.test.names),
        "image_size": list(data.test.size),
        "metrics": "rel_error = mean over images of ||p - t|| / ||t|| on linear HDR; "
                   f"psnr on linear HDR with peak {data.scale:.4g} (the training maximum)",
        "network": network,
        "baselines": baseline_scores,
        "validation_at_best": meta.get("metrics", {}).get("val", {}),
        "best_epoch": meta.get("metrics", {}).get("epoch"),
        "data": {k: v for k, v in data.summary.items() if k != "test_lights"},
        **extra,
    }
    update_metadata(out / "best.ckpt", metrics={"test": network, "test_baselines": baseline_scores})
    write_json(out / "metrics.json", summary)
    _save_grid(out / "test_grid.png", truth, prediction, baselines["nearest_light"], data.test.names,
               data.display_white, f"held-out lights: network rel. error {network['rel_error']:.4f}, nearest light "
               f"{baseline_scores['nearest_light']['rel_error']:.4f}", grid_lights)
    if (out / "metrics.csv").exists():
        save_loss_curve(out / "metrics.csv", out / "loss_curve.png", curves=LOSS_CURVES)
    near = baseline_scores["nearest_light"]
    blend = baseline_scores["nearest_4_lights"]
    print(f"held-out ({summary['held_out_lights']} lights): relative error {network['rel_error']:.4f}, "
          f"PSNR {network['psnr']:.2f} dB (nearest light {near['rel_error']:.4f} / {near['psnr']:.2f} dB, "
          f"4 nearest lights {blend['rel_error']:.4f} / {blend['psnr']:.2f} dB)")
    print(f"run folder {out}: best.ckpt, last.ckpt, average.npy, metrics.json, metrics.csv, loss_curve.png, "
          "test_grid.png")
    return summary


def train(argv: Sequence[str] | None) -> int:
    args = build_parser().parse_args(argv)
    check_run_folder(args.out, RUN_FILES, overwrite=args.overwrite)
    _check_args(args)

    import numpy as np
    import torch

    from .io import atomic_path
    from .models import create_model

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
    from .data.ibr import render_light_stage, write_capture

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

    from .lighting import ibr_light_path

    return torch.from_numpy(ibr_light_path(spec, frames, model.config.light_low, model.config.light_high))


def _load_ibr(spec: str, device: str):
    from .checkpoint import checkpoint_path, load_checkpoint

    path = checkpoint_path(spec)
    model, meta = load_checkpoint(path, map_location=device, family="ibr",
                                  purpose="render (train one with python -m train.ibr)")
    return model, meta, path


def read_average(path: Path):
    """A capture's average image (H, W, 3) float32 from ``path``; UserError naming the problem otherwise."""
    import numpy as np

    if not path.is_file():
        raise UserError(f"no average image at {path}: pass --average FILE.npy (the run folder's {AVERAGE_FILE})")
    try:
        average = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot read {path}: {str(exc).splitlines()[0]}") from None
    if not isinstance(average, np.ndarray):
        raise UserError(f"{path}: expected a .npy array, got an archive of {len(average.files)} arrays")
    if average.ndim != 3 or average.shape[2] != 3 or average.dtype.kind != "f" or not np.isfinite(average).all():
        raise UserError(f"{path}: expected a finite float (H, W, 3) array, got {average.dtype} {average.shape}")
    return average.astype(np.float32)


def render(argv: Sequence[str] | None) -> int:
    import tempfile

    import cv2
    import numpy as np
    import torch
    from tqdm import tqdm

    from .plots import to_display

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

if __name__ == "__main__":
    raise SystemExit(run(main))
