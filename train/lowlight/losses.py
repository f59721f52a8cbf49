"""The low-light training loss (seed 003): MAE + MSE (+ 1 - SSIM) and StableLLVE's temporal consistency."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["random_warp", "reconstruction_terms", "training_terms", "train_step"]


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


def reconstruction_terms(prediction: torch.Tensor, target: torch.Tensor, mae_weight: float = 1.0,
                         mse_weight: float = 1.0, ssim_weight: float = 0.0) -> dict[str, torch.Tensor]:
    """``1_mae``, ``2_mse`` (and ``ssim``: 1 - SSIM) and their weighted sum ``3_total``."""
    terms = {"1_mae": F.l1_loss(prediction, target), "2_mse": F.mse_loss(prediction, target)}
    total = mae_weight * terms["1_mae"] + mse_weight * terms["2_mse"]
    if ssim_weight > 0:
        from torchmetrics.functional.image import structural_similarity_index_measure

        terms["ssim"] = 1 - structural_similarity_index_measure(prediction.clamp(0, 1), target, data_range=1.0)
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
