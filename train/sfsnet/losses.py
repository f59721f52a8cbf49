"""SfSNet's training loss (seed 002): masked L1 on the reconstruction, normals, albedo (and the shading
residue where the data has one) plus MSE on the 27 SH coefficients."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["LOSS_NAMES", "DEFAULT_WEIGHTS", "masked_l1", "sfsnet_losses", "train_step"]

LOSS_NAMES = ("recon", "normal", "albedo", "sh", "residue", "mask")
DEFAULT_WEIGHTS = {"recon": 0.5, "normal": 0.5, "albedo": 0.5, "sh": 1.0, "residue": 0.5, "mask": 0.5}


def masked_l1(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference over the mask's pixels and every channel."""
    return ((a - b).abs() * mask).sum() / (mask.sum() * a.shape[1]).clamp_min(1.0)


def sfsnet_losses(parts: dict, batch: dict, weights: dict[str, float]) -> dict[str, torch.Tensor]:
    """Each term and their weighted sum ``loss``.

    Loss = w_recon * L1(albedo * shading, image) + w_normal * L1(normals) + w_albedo * L1(albedo)
    + w_sh * MSE(sh) (+ w_residue * L1(residue) when the batch has it and the weight is not zero)
    (+ w_mask * binary cross-entropy of the person mask, when the model predicts one and the batch has it).
    """
    mask = batch["mask"]
    terms = {
        "recon": masked_l1(parts["reconstruction"], batch["image"], mask),
        "normal": masked_l1(parts["normals"], batch["normals"], mask),
        "albedo": masked_l1(parts["albedo"], batch["albedo"], mask),
        "sh": F.mse_loss(parts["sh"], batch["sh"]),
    }
    if weights["residue"] > 0 and "residue" in batch:
        terms["residue"] = masked_l1(parts["residue"], batch["residue"], mask)
    if weights.get("mask", 0) > 0 and "mask" in parts and "person" in batch:
        terms["mask"] = F.binary_cross_entropy(parts["mask"].float().clamp(1e-6, 1 - 1e-6), batch["person"])
    terms["loss"] = sum(weights[k] * v for k, v in terms.items())
    return terms


def train_step(model: nn.Module, seed: int) -> torch.Tensor:
    """The training loss (``sfsnet_losses`` with the command's default weights) on two synthetic 32x32 faces."""
    import numpy as np

    from .data import face_samples, to_tensors

    faces = face_samples(2, 32, 32, seed)
    device = next(model.parameters()).device
    batch = {k: v.to(device) for k, v in to_tensors({k: np.stack([f[k] for f in faces]) for k in faces[0]}).items()}
    return sfsnet_losses(model.decompose(batch["image"]), batch, DEFAULT_WEIGHTS)["loss"]
