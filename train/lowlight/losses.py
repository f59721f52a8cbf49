"""The low-light training loss (seed 003): MAE + MSE (+ 1 - SSIM) and StableLLVE's temporal consistency."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["random_warp", "ssim", "reconstruction_terms", "training_terms", "train_step"]


def random_warp(x: torch.Tensor, max_shift: float = 2.0, max_degrees: float = 1.0,
                generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Warp a batch by a small random similarity transform (a few pixels of camera motion).

    Returns the warped batch and the sampling grid, to warp other tensors the same way.
    """
    n, _, h, w = x.shape
    r = torch.rand(n, 4, generator=generator, device="cpu").to(x) * 2 - 1
    angle = r[:, 0] * math.radians(max_degrees)
    scale = 1 + 0.01 * r[:, 1]
    tx, ty = r[:, 2] * 2 * max_shift / w, r[:, 3] * 2 * max_shift / h
    cos, sin = torch.cos(angle) * scale, torch.sin(angle) * scale
    theta = torch.stack([torch.stack([cos, -sin, tx], 1), torch.stack([sin, cos, ty], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False), grid


def ssim(prediction: torch.Tensor, target: torch.Tensor, window: int = 7) -> torch.Tensor:
    """Mean SSIM (Wang et al. 2004) with a uniform ``window`` x ``window`` window over the valid region,
    data range 1, as scikit-image computes it by default.

    Local means and (co)variances come from one separable box filter, so the loss and its gradient
    cost little next to the 11x11 Gaussian convolutions of the metric; the figures reported
    (``train.metrics``) stay torchmetrics' Gaussian SSIM.
    """
    c1, c2 = 0.01**2, 0.03**2
    window = min(window, prediction.shape[-2], prediction.shape[-1])

    # the five local means in one separable box filter
    stacked = torch.cat([prediction, target, prediction * prediction, target * target, prediction * target], dim=1)
    channels = stacked.shape[1]
    row = stacked.new_full((channels, 1, 1, window), 1.0 / window)  # depthwise convolutions: faster than
    means = F.conv2d(F.conv2d(stacked, row, groups=channels), row.transpose(2, 3), groups=channels)  # avg_pool2d
    mu_p, mu_t, pp, tt, pt = torch.chunk(means, 5, dim=1)
    var_p, var_t, cov = pp - mu_p * mu_p, tt - mu_t * mu_t, pt - mu_p * mu_t
    n = window * window
    var_p, var_t, cov = (v * (n / max(n - 1, 1)) for v in (var_p, var_t, cov))  # sample (co)variances
    value = ((2 * mu_p * mu_t + c1) * (2 * cov + c2)) / ((mu_p * mu_p + mu_t * mu_t + c1) * (var_p + var_t + c2))
    return value.mean()


def reconstruction_terms(prediction: torch.Tensor, target: torch.Tensor, mae_weight: float = 1.0,
                         mse_weight: float = 1.0, ssim_weight: float = 0.0) -> dict[str, torch.Tensor]:
    """``1_mae``, ``2_mse`` (and ``ssim``: 1 - SSIM) and their weighted sum ``3_total``."""
    terms = {"1_mae": F.l1_loss(prediction, target), "2_mse": F.mse_loss(prediction, target)}
    total = mae_weight * terms["1_mae"] + mse_weight * terms["2_mse"]
    if ssim_weight > 0:
        terms["ssim"] = 1 - ssim(prediction.clamp(0, 1), target)
        total = total + ssim_weight * terms["ssim"]
    terms["3_total"] = total
    return terms


def training_terms(model: nn.Module, batch: dict, mae_weight: float = 1.0, mse_weight: float = 1.0,
                   ssim_weight: float = 0.0, temporal_weight: float = 0.0) -> dict[str, torch.Tensor]:
    """The training loss of a batch of ``low`` / ``high`` pairs: ``reconstruction_terms`` plus, with a
    ``temporal_weight``, ``4_temporal``: the L1 distance between enhancing a warped frame and warping the
    enhanced frame (StableLLVE). ``3_total`` is the loss to minimise."""
    low, high = batch["low"], batch["high"]
    prediction = model(low)
    terms = reconstruction_terms(prediction, high, mae_weight, mse_weight, ssim_weight)
    if temporal_weight > 0:
        warped_low, grid = random_warp(low)
        enhanced_warped = model(warped_low)
        warped_enhanced = F.grid_sample(prediction, grid, mode="bilinear", padding_mode="border", align_corners=False)
        m = 4  # ignore the border, where the warp invents pixels
        terms["4_temporal"] = F.l1_loss(enhanced_warped[..., m:-m, m:-m], warped_enhanced[..., m:-m, m:-m])
        terms["3_total"] = terms["3_total"] + temporal_weight * terms["4_temporal"]
    return terms


def train_step(model: nn.Module, seed: int) -> torch.Tensor:
    """The training loss (``training_terms`` with the command's default weights) on two synthetic 32x32 pairs."""
    from .data import SyntheticPairs, photo_split

    pairs = SyntheticPairs(photo_split("train"), 2, 32, seed=seed)
    device = next(model.parameters()).device
    items = [pairs[i] for i in range(len(pairs))]
    batch = {k: torch.stack([item[k] for item in items]).to(device) for k in ("low", "high")}
    return training_terms(model, batch)["3_total"]
