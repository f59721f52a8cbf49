"""Training of an ibr model (seed 001): the capture split by light, the pixel-batch loop with Adam,
ReduceLROnPlateau on the validation lights and the seed's batch-size halving, and best/last checkpoints.

This is the one family trained by its own loop rather than a LightningModule, on purpose: the seed's
schedule draws every batch's pixels at random from all images and halves the batch right after the
second rate cut. Lightning prefetches the next batch one step early and steps ReduceLROnPlateau after
the epoch-end hooks, so the draws and the halving would shift by a step and an epoch; its checkpoint
callback would also keep a "best" of a diverged (NaN) run. The loop keeps the seed's behaviour and the
run folder's files (metrics.csv columns, checkpoints) exactly; it is about 200 lines.
"""

from __future__ import annotations

import csv
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from runtime.core.errors import UserError

from .data import AVERAGE_FILE, Capture

__all__ = ["Prepared", "load_capture", "prepare", "BatchSchedule", "CSV_FIELDS", "fit"]

log = logging.getLogger("train.ibr")

CSV_FIELDS = ("epoch", "step", "train/loss", "train/mse", "train/luminance", "train/rel", "val/loss", "val/rel_error",
              "val/psnr", "val/baseline_psnr", "lr", "batch_size", "seconds")


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
    from .capture import read_capture
    from .data import render_light_stage

    if args.data == "synthetic":
        log.info("rendering the synthetic light stage: %d lights, %dx%d, scene %d", args.lights, *args.size,
                 args.scene_seed)
        return render_light_stage(args.lights, args.size, seed=args.scene_seed, progress=not args.quiet)
    return read_capture(args.data, progress=not args.quiet)


def prepare(capture: Capture, test_every: int = 10, val_every: int = 20, median_target: float = 0.3) -> Prepared:
    """Split ``capture`` by light and fit the normalisation on its training images."""
    from .data import fit_normalisation, split_lights

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

    from ..checkpoint import save_checkpoint
    from .data import PixelSampler, hdr_to_normalised, normalise_lights
    from .evaluate import image_scores, nearest_baselines, predict_frames, psnr_hdr
    from .losses import ibr_loss

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
