"""Image quality metrics: PSNR and SSIM (torchmetrics, explicit data range), relative error, and luma."""

from __future__ import annotations

import torch
from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure

__all__ = ["relative_error", "image_metrics", "luminance"]

# Rec. 709 luma weights for linear RGB.
_LUMA = (0.2126, 0.7152, 0.0722)


def luminance(image: torch.Tensor) -> torch.Tensor:
    """Luma (N, 1, H, W) of a linear RGB batch (N, 3, H, W) (the unet and ibr losses' luminance term)."""
    w = image.new_tensor(_LUMA).view(1, 3, 1, 1)
    return (image * w).sum(dim=1, keepdim=True)


def relative_error(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean over images of ||prediction - target||_2 / ||target||_2 (seed 001's figure)."""
    diff = (prediction - target).flatten(1).norm(dim=1)
    norm = target.flatten(1).norm(dim=1).clamp_min(1e-8)
    return (diff / norm).mean()


@torch.no_grad()
def image_metrics(prediction: torch.Tensor, target: torch.Tensor, data_range: float = 1.0) -> dict[str, float]:
    """PSNR (dB, per image then averaged), SSIM and relative error of images clipped to [0, data_range]."""
    prediction = prediction.float().clamp(0, data_range)
    target = target.float()
    psnr = peak_signal_noise_ratio(
        prediction, target, data_range=data_range, reduction="elementwise_mean", dim=(1, 2, 3)
    )
    ssim = structural_similarity_index_measure(prediction, target, data_range=data_range)
    return {"psnr": float(psnr), "ssim": float(ssim), "rel_error": float(relative_error(prediction, target))}
