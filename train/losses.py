"""Training losses: MSE, VGG16 perceptual, luminance (seed 001) and their weighted sum."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .errors import UserError

__all__ = ["LossWeights", "PerceptualLoss", "PerceptualWeightsUnavailable", "luminance", "CombinedLoss"]

log = logging.getLogger(__name__)

# Rec. 709 luma weights for linear RGB.
_LUMA = (0.2126, 0.7152, 0.0722)


class PerceptualWeightsUnavailable(UserError):
    """The ImageNet VGG16 weights are neither cached nor downloadable."""


@dataclass(frozen=True)
class LossWeights:
    """Weights of the combined loss terms; a zero weight switches a term off."""

    mse: float = 1.0
    perceptual: float = 0.05
    luminance: float = 0.0

    def __post_init__(self) -> None:
        for name in ("mse", "perceptual", "luminance"):
            if getattr(self, name) < 0:
                raise ValueError(f"loss weight {name} must be >= 0, got {getattr(self, name)}")
        if self.mse + self.perceptual + self.luminance <= 0:
            raise ValueError("at least one loss weight must be positive")


def luminance(image: torch.Tensor) -> torch.Tensor:
    """Luma (N, 1, H, W) of a linear RGB batch (N, 3, H, W)."""
    w = image.new_tensor(_LUMA).view(1, 3, 1, 1)
    return (image * w).sum(dim=1, keepdim=True)


class PerceptualLoss(nn.Module):
    """MSE between VGG16 features (relu1_2, relu2_2, relu3_3) of prediction and target.

    Uses torchvision's ImageNet weights (``VGG16_Weights.IMAGENET1K_V1``), downloaded on first use
    into torch's hub cache. Raises PerceptualWeightsUnavailable when they cannot be had: random
    VGG weights are never used in their place.
    """

    _CUTS = (4, 9, 16)  # indices after relu1_2, relu2_2, relu3_3 in vgg16().features

    def __init__(self) -> None:
        super().__init__()
        from torchvision.models import VGG16_Weights, vgg16

        try:
            features = vgg16(weights=VGG16_Weights.IMAGENET1K_V1).features[: self._CUTS[-1]]
        except (OSError, RuntimeError) as exc:  # URLError is an OSError
            reason = str(getattr(exc, "reason", exc)).splitlines()[0]
            raise PerceptualWeightsUnavailable(
                f"ImageNet VGG16 weights are not cached and could not be downloaded ({reason}); "
                f"put vgg16-397923af.pth in {torch.hub.get_dir()}/checkpoints or set the perceptual weight to 0"
            ) from None
        features.eval().requires_grad_(False)
        self.features = features
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1), persistent=False)

    def _taps(self, x: torch.Tensor) -> list[torch.Tensor]:
        # Linear RGB to display-referred values before ImageNet normalisation.
        x = (x.clamp(0, 1) + 1e-6) ** (1 / 2.2)
        x = (x - self.mean) / self.std
        taps, start = [], 0
        for cut in self._CUTS:
            x = self.features[start:cut](x)
            taps.append(x)
            start = cut
        return taps

    def forward(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return sum(F.mse_loss(p, t) for p, t in zip(self._taps(prediction), self._taps(target)))


class CombinedLoss(nn.Module):
    """Weighted sum of MSE, perceptual and luminance terms; returns the total and each term.

    Args:
        weights: term weights.
        perceptual_required: when the VGG16 weights are unavailable, raise (True) or warn once
            and drop the perceptual term (False).
    """

    def __init__(self, weights: LossWeights = LossWeights(), perceptual_required: bool = False) -> None:
        super().__init__()
        self.perceptual: PerceptualLoss | None = None
        if weights.perceptual > 0:
            try:
                self.perceptual = PerceptualLoss()
            except PerceptualWeightsUnavailable as exc:
                if perceptual_required:
                    raise
                log.warning("perceptual loss disabled: %s", exc)
                weights = LossWeights(weights.mse, 0.0, weights.luminance) if weights.mse + weights.luminance > 0 \
                    else LossWeights(1.0, 0.0, weights.luminance)
        self.weights = weights

    def forward(self, prediction: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
        terms: dict[str, torch.Tensor] = {}
        if self.weights.mse > 0:
            terms["mse"] = F.mse_loss(prediction, target)
        if self.perceptual is not None:
            terms["perceptual"] = self.perceptual(prediction, target)
        if self.weights.luminance > 0:
            terms["luminance"] = F.mse_loss(luminance(prediction), luminance(target))
        total = sum(getattr(self.weights, name) * value for name, value in terms.items())
        return {"loss": total, **terms}
