"""Held-out evaluation of SfSNet checkpoints (seed 002): decomposition metrics against simple baselines,
the test grid, relighting strips, and the run's metrics.json."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from runtime.core.errors import UserError
from runtime.core.io import atomic_path, write_json
from runtime.core.lighting import sh_light_path as light_sequence

from ..checkpoint import load_checkpoint, update_metadata
from ..metrics import image_metrics
from ..models.sh import sh_shading
from ..plots import save_image_grid, save_loss_curve, to_display
from .data import to_tensors

__all__ = ["SFSNET_CURVES", "angular_error_deg", "decomposition_metrics", "evaluate", "evaluate_relight_edge",
           "save_test_grid",
           "save_interpolation", "finish_run"]

SFSNET_CURVES = (
    (("train/loss", "train loss"), ("val/loss", "validation loss")),
    (("val/recon_psnr", "reconstruction"), ("val/relit_psnr", "relit with another light")),
)


def angular_error_deg(prediction: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean angle in degrees between unit normal maps (N, 3, H, W), over the mask's pixels."""
    cos = (F.normalize(prediction, dim=1) * F.normalize(target, dim=1)).sum(1, keepdim=True).clamp(-1.0, 1.0)
    angle = torch.rad2deg(torch.acos(cos))
    if mask is None:
        return angle.mean()
    return (angle * mask).sum() / mask.sum().clamp_min(1.0)


@torch.no_grad()
def decomposition_metrics(parts: dict[str, torch.Tensor], batch: dict[str, torch.Tensor], model=None) -> dict[str, float]:
    """Normal angular error, albedo and SH errors, reconstruction PSNR and, when the batch carries a
    second light, the PSNR of the image relit with it (against the full render and the SH-only one)."""
    mask = batch.get("mask")
    values = {
        "normal_deg": float(angular_error_deg(parts["normals"], batch["normals"], mask)),
        "normal_deg_face": float(angular_error_deg(parts["normals"], batch["normals"], batch.get("face", mask))),
        "albedo_mae": float((parts["albedo"] - batch["albedo"]).abs().mean()),
        "sh_mse": float(F.mse_loss(parts["sh"], batch["sh"])),
        # The SH vector is not identifiable from one view (over the visible normals several vectors
        # shade alike), so also compare the shading the two vectors give on the true normals.
        "sh_shading_mae": float((sh_shading(batch["normals"], parts["sh"]) - sh_shading(batch["normals"], batch["sh"]))
                                .abs().mean()),
        "recon_psnr": image_metrics(parts["reconstruction"], batch["image"])["psnr"],
    }
    if "mask" in parts and "person" in batch:
        predicted, person = parts["mask"] > 0.5, batch["person"] > 0.5
        values["mask_iou"] = float((predicted & person).sum() / (predicted | person).sum().clamp_min(1))
    if "relit_sh" in batch:
        relit = parts["albedo"] * sh_shading(parts["normals"], batch["relit_sh"])
        full = image_metrics(relit, batch["relit_image"])
        values.update(relit_psnr=full["psnr"], relit_ssim=full["ssim"],
                      relit_sh_psnr=image_metrics(relit, batch["relit_sh_image"])["psnr"])
    return values


def evaluate(model, arrays: dict[str, np.ndarray], batch_size: int = 8) -> tuple[dict, dict, dict]:
    """Held-out means of the decomposition metrics, of simple baselines, and the first batch's outputs."""
    tensors = to_tensors(arrays)
    n = len(tensors["image"])
    totals: dict[str, float] = {}
    base_totals: dict[str, float] = {}
    first = None
    flat = None
    with torch.no_grad():
        for i in range(0, n, batch_size):
            batch = {k: v[i : i + batch_size] for k, v in tensors.items()}
            parts = model.decompose(batch["image"])
            count = len(batch["image"])
            for k, v in decomposition_metrics(parts, batch).items():
                totals[k] = totals.get(k, 0.0) + v * count
            if flat is None:
                flat = torch.zeros_like(batch["normals"][:1])
                flat[:, 2] = 1.0
            baseline = {"normal_deg": float(angular_error_deg(flat.expand_as(batch["normals"]), batch["normals"],
                                                                 batch.get("mask"))),
                        "normal_deg_face": float(angular_error_deg(flat.expand_as(batch["normals"]), batch["normals"],
                                                                      batch.get("face", batch.get("mask"))))}
            if "relit_image" in batch:
                baseline["relit_psnr"] = image_metrics(batch["image"], batch["relit_image"])["psnr"]
            for k, v in baseline.items():
                base_totals[k] = base_totals.get(k, 0.0) + v * count
            if first is None:
                first = {**batch, **{f"pred_{k}": v for k, v in parts.items()}}
                if "relit_sh" in batch:
                    first["pred_relit"] = model.relight(batch["image"], batch["relit_sh"])
    means = {k: round(v / n, 4) for k, v in totals.items()}
    base = {k: round(v / n, 4) for k, v in base_totals.items()}
    return means, base, first


@torch.no_grad()
def evaluate_relight_edge(chain, arrays: dict[str, np.ndarray], batch_size: int = 8) -> dict[str, float]:
    """Held-out figures of a ``relight_edge`` chain on synthetic scenes (linear arrays): its normals (decided
    at 1/scale, upsampled) against the true ones, and the scene relit with its second light through the
    chain's own path (sRGB in and out, the background relit too) against the SH rendering and the full
    rendering of that light (PSNR in linear RGB, like ``decomposition_metrics``)."""
    from ..relight.model import linear_to_srgb, srgb_to_linear
    from .realeval import Relighter

    relighter = Relighter(chain)
    tensors = to_tensors(arrays)
    n = len(tensors["image"])
    totals: dict[str, float] = {}
    for i in range(0, n, batch_size):
        batch = {k: v[i : i + batch_size] for k, v in tensors.items()}
        count = len(batch["image"])
        srgb = linear_to_srgb(batch["image"])
        normals = relighter.decompose(srgb)["normals"]
        relit, _ = chain(srgb, batch["relit_sh"], torch.ones(count, 1), torch.zeros(count, 28))
        relit = srgb_to_linear(relit)
        values = {"normal_deg": float(angular_error_deg(normals, batch["normals"], batch.get("mask"))),
                  "normal_deg_face": float(angular_error_deg(normals, batch["normals"], batch.get("face"))),
                  "relit_psnr": image_metrics(relit, batch["relit_image"])["psnr"],
                  "relit_sh_psnr": image_metrics(relit, batch["relit_sh_image"])["psnr"]}
        for k, v in values.items():
            totals[k] = totals.get(k, 0.0) + v * count
    return {k: round(v / n, 4) for k, v in totals.items()}


def save_test_grid(path: Path, first: dict, rows: int = 4, title: str = "") -> Path:
    hwc = lambda t: t.detach().float().cpu().numpy().transpose(1, 2, 0)  # noqa: E731
    columns = [("input", lambda i: to_display(hwc(first["image"][i]))),
               ("normals", lambda i: (hwc(first["pred_normals"][i]) + 1) / 2),
               ("true normals", lambda i: (hwc(first["normals"][i]) + 1) / 2),
               ("albedo", lambda i: to_display(hwc(first["pred_albedo"][i]))),
               ("true albedo", lambda i: to_display(hwc(first["albedo"][i]))),
               ("residue", lambda i: np.clip(hwc(first["pred_residue"][i]) * 0.5 + 0.5, 0, 1)),
               ("reconstruction", lambda i: to_display(hwc(first["pred_reconstruction"][i])))]
    if "pred_relit" in first:
        columns += [("relit", lambda i: to_display(hwc(first["pred_relit"][i]))),
                    ("true relit", lambda i: to_display(hwc(first["relit_image"][i])))]
    grid = [[panel(r) for _, panel in columns] for r in range(min(rows, len(first["image"])))]
    save_image_grid(path, grid, [name for name, _ in columns], title)
    return path


def save_interpolation(path: Path, model, image: np.ndarray, lights: np.ndarray, labels: list[str],
                       linear_output: bool = True) -> Path:
    """One image relit along a sequence of SH lights, saved as a strip: input, then each light."""
    import cv2

    with torch.no_grad():
        x = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))[None].float()
        frames = [model.relight(x, torch.from_numpy(sh)[None])[0].numpy().transpose(1, 2, 0) for sh in lights]
    show = to_display if linear_output else (lambda a: np.clip(a, 0, 1))
    tiles = [show(image)] + [show(f) for f in frames]
    h, w = image.shape[:2]
    label_h = max(14, h // 8)
    strip = np.full((h + label_h, w * len(tiles), 3), 255, np.uint8)
    for i, (tile, label) in enumerate(zip(tiles, ["input", *labels])):
        strip[label_h:, i * w : (i + 1) * w] = (np.clip(tile, 0, 1) * 255 + 0.5).astype(np.uint8)
        cv2.putText(strip, label, (i * w + 3, label_h - 4), cv2.FONT_HERSHEY_SIMPLEX, label_h / 36, (0, 0, 0), 1,
                    cv2.LINE_AA)
    bgr = cv2.cvtColor(strip, cv2.COLOR_RGB2BGR)
    with atomic_path(path) as tmp:
        ok, data = cv2.imencode(".png", bgr)
        if not ok:
            raise UserError(f"cannot encode {path}")
        tmp.write_bytes(data.tobytes())
    return path


def finish_run(out: Path, test: dict[str, np.ndarray], extra: dict | None = None) -> dict:
    """Evaluate out/best.ckpt on held-out data; write metrics.json, test_grid.png, interpolation.png."""
    best = out / "best.ckpt"
    model, meta = load_checkpoint(best)
    network, baseline, first = evaluate(model, test)
    summary = {"model": meta["name"], "parameters": meta["parameters"], "checkpoint": str(best),
               "held_out_samples": int(len(test["image"])), "image_size": list(test["image"].shape[1:3]),
               "network": network,
               "baselines": {"flat_normals_deg": baseline.get("normal_deg"),
                             "flat_normals_deg_face": baseline.get("normal_deg_face"),
                             "unrelit_input_psnr": baseline.get("relit_psnr")},
               "validation_at_best": meta.get("metrics", {}).get("val", {}),
               "best_epoch": meta.get("metrics", {}).get("epoch"), **(extra or {})}
    update_metadata(best, metrics={"test": network})
    write_json(out / "metrics.json", summary)
    relit = f", relit {network['relit_psnr']:.2f} dB" if "relit_psnr" in network else ""
    save_test_grid(out / "test_grid.png", first,
                   title=f"held-out: normals {network['normal_deg']:.1f} deg, reconstruction {network['recon_psnr']:.2f} dB{relit}")
    lights, labels = light_sequence("sweep", 7)
    save_interpolation(out / "interpolation.png", model, test["image"][0], lights, labels)
    if (out / "metrics.csv").exists():
        save_loss_curve(out / "metrics.csv", out / "loss_curve.png", curves=SFSNET_CURVES)
    line = (f"held-out ({summary['held_out_samples']} images): normal error {network['normal_deg']:.2f} deg, "
            f"on faces {network['normal_deg_face']:.2f} deg (flat-normal baseline {baseline['normal_deg']:.2f}, "
            f"{baseline['normal_deg_face']:.2f}), albedo MAE {network['albedo_mae']:.4f}, "
            f"SH MSE {network['sh_mse']:.4f}, reconstruction {network['recon_psnr']:.2f} dB")
    if "relit_psnr" in network:
        line += (f", relit {network['relit_psnr']:.2f} dB (SH-only target {network['relit_sh_psnr']:.2f} dB; "
                 f"unrelit input {baseline['relit_psnr']:.2f} dB)")
    print(line)
    print(f"run folder {out}: best.ckpt, last.ckpt, metrics.json, test_grid.png, interpolation.png")
    return summary
