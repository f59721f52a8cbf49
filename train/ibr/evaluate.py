"""Held-out evaluation of an ibr model (seed 001): relative error and PSNR on linear HDR against the
nearest-light and 4-nearest-light baselines, the test grid, and the run's metrics.json."""

from __future__ import annotations

from pathlib import Path

__all__ = ["LOSS_CURVES", "psnr_hdr", "image_scores", "predict_frames", "nearest_baselines", "finish"]

LOSS_CURVES = (
    (("train/loss", "train loss"), ("val/loss", "validation loss")),
    (("val/psnr", "network"), ("val/baseline_psnr", "nearest-light baseline")),
)


def psnr_hdr(prediction, target, peak: float):
    """Mean per-image PSNR (dB) of linear HDR images against the peak value ``peak``."""
    import torch

    mse = ((prediction - target) ** 2).flatten(1).mean(1).clamp_min(1e-12)
    return float((10 * torch.log10(peak**2 / mse)).mean())


def image_scores(prediction, target, peak: float) -> dict:
    """Relative error (seed 001's figure, linear HDR) and PSNR of (N, 3, H, W) predictions."""
    from ..metrics import relative_error

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

    from .data import normalise_lights

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


def _save_grid(path: Path, truth, prediction, baseline, names: list[str], white: float, title: str, rows: int) -> None:
    import numpy as np

    from runtime.core.io import atomic_path

    from ..metrics import relative_error
    from ..plots import _pyplot, to_display

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


def finish(out: Path, data, extra: dict, grid_lights: int = 4, device: str = "cpu") -> dict:
    """Evaluate best.ckpt on the held-out test lights; write metrics.json, test_grid.png and loss_curve.png."""
    import torch

    from runtime.core.io import write_json

    from ..checkpoint import load_checkpoint, update_metadata
    from ..plots import save_loss_curve
    from .data import normalise_lights

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
