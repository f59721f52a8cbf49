"""Held-out evaluation of a trained relighting checkpoint against the Lambertian baseline."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from runtime.core.io import write_json

from ..checkpoint import load_checkpoint, update_metadata
from ..data.render import lambertian_baseline
from ..metrics import image_metrics
from ..plots import save_comparison_grid, save_loss_curve
from .data import to_tensors
from .losses import INPUT_NAMES

__all__ = ["evaluate_relighting", "finish_run"]

@torch.no_grad()
def evaluate_relighting(model: torch.nn.Module, arrays: dict[str, np.ndarray], light_intensity: float,
                        batch_size: int = 4) -> tuple[dict, dict, dict]:
    """Mean per-image PSNR, SSIM and relative error of ``model`` and of the analytic baseline.

    Returns:
        ``(network_metrics, baseline_metrics, first_batch)`` where ``first_batch`` holds the
        tensors, the prediction and the baseline of the first batch, for figures.
    """
    tensors = to_tensors(arrays)
    device = next(model.parameters()).device
    n = len(tensors["distances"])
    totals = {"network": {}, "baseline": {}}
    first = None
    for start in range(0, n, batch_size):
        batch = {k: v[start : start + batch_size].to(device) for k, v in tensors.items()}
        prediction = model(*(batch[k] for k in INPUT_NAMES))
        baseline = lambertian_baseline(batch["distances"], batch["cosines"], batch["albedo"], light_intensity)
        count = len(prediction)
        for key, image in (("network", prediction), ("baseline", baseline)):
            for name, value in image_metrics(image, batch["targets"]).items():
                totals[key][name] = totals[key].get(name, 0.0) + value * count
        if first is None:
            first = {**batch, "prediction": prediction, "baseline": baseline}
    means = {key: {name: round(total / n, 4) for name, total in values.items()} for key, values in totals.items()}
    return means["network"], means["baseline"], first


def finish_run(out: Path, test_arrays: dict[str, np.ndarray], light_intensity: float, extra: dict | None = None,
               grid_images: int = 4) -> dict:
    """Evaluate ``out/best.ckpt`` on held-out data and write metrics.json, test_grid.png and loss_curve.png."""
    best = out / "best.ckpt"
    model, meta = load_checkpoint(best)
    network, baseline, first = evaluate_relighting(model, test_arrays, light_intensity)
    summary = {
        "model": meta["name"],
        "parameters": meta["parameters"],
        "checkpoint": str(best),
        "held_out_samples": int(len(test_arrays["distances"])),
        "image_size": list(test_arrays["distances"].shape[1:3]),
        "network": network,
        "lambertian_baseline": baseline,
        "psnr_gain_db": round(network["psnr"] - baseline["psnr"], 2),
        "validation_at_best": meta.get("metrics", {}).get("val", {}),
        "best_epoch": meta.get("metrics", {}).get("epoch"),
        **(extra or {}),
    }
    update_metadata(best, metrics={"test": network, "test_baseline": baseline})
    write_json(out / "metrics.json", summary)
    save_comparison_grid(out / "test_grid.png", first, first["prediction"], first["baseline"],
                         title=f"held-out: network {network['psnr']:.2f} dB, baseline {baseline['psnr']:.2f} dB",
                         max_rows=grid_images)
    curve = save_loss_curve(out / "metrics.csv", out / "loss_curve.png") if (out / "metrics.csv").exists() else None
    print(
        f"held-out ({summary['held_out_samples']} scenes): PSNR {network['psnr']:.2f} dB "
        f"(Lambertian baseline {baseline['psnr']:.2f} dB, gain {summary['psnr_gain_db']:+.2f} dB), "
        f"SSIM {network['ssim']:.4f}, relative error {network['rel_error']:.4f}"
    )
    print(f"run folder {out}: best.ckpt, last.ckpt, metrics.json, test_grid.png"
          f"{', loss_curve.png' if curve else ''}, grids/, metrics.csv")
    return summary
