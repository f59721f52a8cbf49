"""Training losses: MSE, VGG16 perceptual, luminance (seed 001) and their weighted sum."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from runtime.core.errors import UserError

from ..metrics import luminance

__all__ = ["LossWeights", "PerceptualLoss", "PerceptualWeightsUnavailable", "luminance", "CombinedLoss",
           "INPUT_NAMES", "predict", "train_step"]

log = logging.getLogger(__name__)


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


INPUT_NAMES = ("distances", "cosines", "albedo", "normals")


def predict(model: nn.Module, batch: dict, channels_last: bool = False) -> torch.Tensor:
    """The model's image for a batch of scene tensors (``INPUT_NAMES``), optionally in the NHWC memory format."""
    inputs = (batch[name] for name in INPUT_NAMES)
    if channels_last:
        inputs = (x.contiguous(memory_format=torch.channels_last) for x in inputs)
    return model(*inputs)


def train_step(model: nn.Module, seed: int) -> torch.Tensor:
    """The training loss (``CombinedLoss`` on ``predict``, as ``RelightingModule`` trains) on two rendered 32x32
    scenes. The perceptual term is left out: its VGG16 weights are a download."""
    from ..data.render import RenderConfig, render_dataset

    from .data import to_tensors

    arrays = render_dataset(2, seed=seed, cfg=RenderConfig(height=32, width=32), workers=1)
    if model.config.albedo_channels == 1:
        arrays["albedo"] = arrays["albedo"].mean(-1, keepdims=True)
    device = next(model.parameters()).device
    batch = {k: v.to(device) for k, v in to_tensors(arrays).items()}
    criterion = CombinedLoss(LossWeights(mse=1.0, perceptual=0.0, luminance=0.0))
    return criterion(predict(model, batch), batch["targets"])["loss"]
