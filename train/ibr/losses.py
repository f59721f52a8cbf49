"""Seed 001's training loss on normalised pixels: RGB MSE + luminance MSE + relative error."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["ibr_loss", "train_step"]


def ibr_loss(prediction, target, mse: float = 1.0, luminance: float = 1.0, rel: float = 0.01) -> dict:
    """The seed's loss on normalised (B, 3) pixels: RGB MSE + luminance MSE + relative error; total and terms."""
    from ..metrics import luminance as luma

    terms = {}
    if mse > 0:
        terms["mse"] = F.mse_loss(prediction, target)
    if luminance > 0:
        terms["luminance"] = F.mse_loss(luma(prediction[:, :, None, None]), luma(target[:, :, None, None]))
    if rel > 0:
        terms["rel"] = (prediction - target).norm() / target.norm().clamp_min(1e-8)
    weights = {"mse": mse, "luminance": luminance, "rel": rel}
    return {"loss": sum(weights[k] * v for k, v in terms.items()), **terms}


def train_step(model: nn.Module, seed: int) -> torch.Tensor:
    """The training loss (``ibr_loss`` with the command's default weights) on a batch of 256 pixels drawn by
    ``PixelSampler`` from a synthetic light stage of 8 lights at 16x16, normalised with the model's constants."""
    from .data import PixelSampler, normalise_lights, render_light_stage

    capture = render_light_stage(lights=8, size=(16, 16), seed=seed)
    c = model.config
    norm = lambda x: model.normalise(torch.from_numpy(x))  # noqa: E731
    sampler = PixelSampler(norm(capture.images), norm(capture.images.mean(0)),
                           torch.from_numpy(normalise_lights(capture.lights, c.light_low, c.light_high)), seed=seed)
    features, target = sampler.sample(256)
    device = next(model.parameters()).device
    return ibr_loss(model.forward_pixels(features.to(device)), target.to(device))["loss"]
