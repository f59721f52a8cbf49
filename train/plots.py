"""Figures people would rather look at than read: comparison grids and loss curves."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np

from runtime.core.io import atomic_path

__all__ = ["to_display", "save_image_grid", "save_comparison_grid", "save_loss_curve"]


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def to_display(image: np.ndarray) -> np.ndarray:
    """Linear RGB (H, W, 3) to display values (gamma 1/2.2), clipped to [0, 1]."""
    return np.clip(image, 0.0, 1.0) ** (1 / 2.2)


def _hwc(t) -> np.ndarray:
    a = t.detach().float().cpu().numpy() if hasattr(t, "detach") else np.asarray(t, dtype=np.float32)
    return a.transpose(1, 2, 0) if a.ndim == 3 else a


def save_image_grid(path: str | os.PathLike, rows: list[list], columns: list[str], title: str = "",
                    cell: tuple[float, float] = (1.9, 2.0), dpi: int = 90) -> Path:
    """A grid of images with the column names over the first row, written atomically as a PNG.

    Args:
        rows: one list of panels per row. A panel is an (H, W, 3) array of display values (clipped to
            [0, 1]), or ``(array, cmap)`` for one channel shown with a colour map over [0, 1], or
            ``(array, cmap, None)`` for one stretched over its own range.
        cell: inches per panel (width, height).
    """
    plt = _pyplot()
    fig, axes = plt.subplots(len(rows), len(columns), figsize=(cell[0] * len(columns), cell[1] * len(rows) + 0.4),
                             squeeze=False)
    for r, panels in enumerate(rows):
        for c, panel in enumerate(panels):
            image, cmap, vrange = (panel, None, (0, 1)) if isinstance(panel, np.ndarray) else (*panel, (0, 1))[:3]
            if image.ndim == 3 and image.shape[-1] == 1:
                image = image[..., 0]
            ax = axes[r][c]
            low, high = vrange if vrange is not None else (None, None)
            ax.imshow(np.clip(image, 0, 1) if cmap is None else image, cmap=cmap, vmin=low, vmax=high)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(columns[c], fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)
    plt.close(fig)
    return Path(path)


def save_comparison_grid(
    path: str | os.PathLike, batch: dict, prediction, baseline, title: str = "", max_rows: int = 4
) -> Path:
    """One row per sample: the four inputs, the Lambertian baseline, the prediction, the target and
    the prediction's absolute error (x4, so small errors show)."""
    columns = ["distances", "cosines", "albedo", "normals", "Lambertian baseline", "prediction", "target", "|error| x4"]
    rows = []
    for r in range(min(max_rows, len(prediction))):
        target = _hwc(batch["targets"][r])
        pred = _hwc(prediction[r])
        rows.append([
            (_hwc(batch["distances"][r])[..., 0], "viridis", None),
            (_hwc(batch["cosines"][r])[..., 0], "gray"),
            to_display(_hwc(batch["albedo"][r])),
            (_hwc(batch["normals"][r]) + 1) / 2,
            to_display(_hwc(baseline[r])),
            to_display(pred),
            to_display(target),
            (np.clip(np.abs(pred.clip(0, 1) - target).mean(-1) * 4, 0, 1), "inferno"),
        ])
    return save_image_grid(path, rows, columns, title, cell=(2.1, 2.2), dpi=80)


def _read_metrics_csv(csv_path: Path) -> dict[str, list[tuple[int, float]]]:
    series: dict[str, dict[int, float]] = {}
    with open(csv_path, newline="") as f:
        for row in csv.DictReader(f):
            if not row.get("epoch"):
                continue
            epoch = int(float(row["epoch"]))
            for key, value in row.items():
                if key in ("epoch", "step") or value in ("", None):
                    continue
                series.setdefault(key, {})[epoch] = float(value)
    return {k: sorted(v.items()) for k, v in series.items()}


RELIGHTING_CURVES = (
    (("train/loss", "train loss"), ("val/loss", "validation loss")),
    (("val/psnr", "network"), ("val/baseline_psnr", "Lambertian baseline")),
)
LOWLIGHT_CURVES = (
    (("train/3_total", "train total loss"), ("valid/3_total", "validation total loss")),
    (("valid/psnr", "network"),),
)


def save_loss_curve(csv_path: str | os.PathLike, path: str | os.PathLike, curves=RELIGHTING_CURVES) -> Path | None:
    """Plot training and validation loss and validation PSNR per epoch from a Lightning CSV log.

    Args:
        curves: (loss curves, PSNR curves), each a sequence of (CSV column, legend label).

    Returns None when the CSV holds no epoch yet.
    """
    series = _read_metrics_csv(Path(csv_path))
    if not any(series.get(key) for key, _ in curves[0]):
        return None
    plt = _pyplot()
    fig, (ax_loss, ax_psnr) = plt.subplots(1, 2, figsize=(10, 3.8))
    panels = ((ax_loss, "loss", curves[0]), (ax_psnr, "validation PSNR (dB)", curves[1]))
    for ax, ylabel, curves in panels:
        for key, label in curves:
            if series.get(key):
                epochs, values = zip(*series[key])
                ax.plot(np.array(epochs) + 1, values, marker="o", label=label)
        ax.set_xlabel("epoch")
        ax.set_ylabel(ylabel)
        ax.legend()
        ax.grid(alpha=0.3)
    ax_loss.set_yscale("log")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=90)
    plt.close(fig)
    return Path(path)
