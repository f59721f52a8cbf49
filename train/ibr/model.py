"""ImageBasedRelighting (seed 001): a dense per-pixel network that predicts a scene under a new light.

For every pixel the network sees 7 numbers, like Ren et al. (2015): the scene's average image (RGB),
the pixel position and the light position, all normalised; it returns the pixel's RGB. The layers are
"several Dense layers with relu activations", written as 1x1 convolutions so that a whole frame runs
(and exports to ONNX / TensorRT) in one call, while training runs the same weights on batches of
single pixels drawn from every training image (``forward_pixels``).

Presets (widths are the hidden layers):

* ``seed``: five hidden layers of 600, ReLU, raw 7 inputs (1,449,003 parameters). These are the
  widths of the seed's own code (``create_per_pixel_model(n_hidden=600, n_layers=4)``: a first Dense
  layer and four Dense blocks), which its README sizes to "approximately the same number of
  parameters as Ren et al." (their ensemble of small per-cluster networks); we take the seed's figure
  rather than re-deriving Ren et al.'s. One departure: the output layer is linear (``output_relu``).
* ``edge``: three hidden layers of 96 (21,987 parameters, about 5 GMAC per 640x360 frame) on the 7
  inputs plus a fixed sin/cos encoding of the pixel (4 octaves) and light (2 octaves) positions,
  predicting the change from the average image (``residual``). Without the encoding and the residual
  a network this small stays near 10% held-out relative error on the synthetic light stage; with
  them it reaches about 5.6% in under ten minutes on one CPU thread (benchmarks/RESULTS.md).
* ``test``: two hidden layers of 8, for tests.

The HDR normalisation (train.ibr.data) lives inside the model as config constants fitted on the
training images: ``forward`` takes and returns linear HDR.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import nn

from ..models.registry import config_dict
from .data import hdr_to_normalised, normalised_to_hdr

__all__ = ["IBRConfig", "ImageBasedRelighting", "IBR_PRESETS", "FEATURES"]

FEATURES = ("average_r", "average_g", "average_b", "pixel_x", "pixel_y", "light_x", "light_y")


@dataclass(frozen=True)
class IBRConfig:
    """Sizes of the network and the normalisation constants fitted on the training capture."""

    widths: tuple[int, ...] = (64, 64, 64, 64)
    """Widths of the hidden (1x1 conv / Dense) layers, each followed by a ReLU."""
    output_relu: bool = False
    """ReLU on the output layer, as in the seed's code. Off by default: a ReLU output can die during
    training (an all-black image, the failure the seed's luminance loss fights); the inverse
    normalisation clamps negative values to 0 anyway, so inference gives the same non-negative images."""
    position_frequencies: int = 0
    """Octaves of a fixed sin/cos encoding of the pixel position appended to the 7 inputs (0: the seed's
    raw inputs). Octave k adds sin(2^k pi p) and cos(2^k pi p) of x and y: the sharp shading and shadow
    detail that a small ReLU network on raw coordinates learns slowly."""
    light_frequencies: int = 0
    """Octaves of the same encoding for the light position (0: raw light x, y only)."""
    residual: bool = False
    """Add the normalised average image to the output, so the layers learn how the light changes the
    average rather than reproducing its texture."""
    hdr_scale: float = 1.0
    """Largest linear value of the training images: divides the data into [0, 1]."""
    hdr_exposure: float = 16.0
    """Exposure compensation before the log: n = log(1 + e x / scale) / log(1 + e)."""
    light_low: tuple[float, float] = (-1.0, -1.0)
    """Capture-unit light (x, y) that maps to normalised (-1, -1): the training lights' minimum."""
    light_high: tuple[float, float] = (1.0, 1.0)
    """Capture-unit light (x, y) that maps to normalised (1, 1): the training lights' maximum."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "widths", tuple(int(w) for w in self.widths))
        object.__setattr__(self, "light_low", tuple(float(v) for v in self.light_low))
        object.__setattr__(self, "light_high", tuple(float(v) for v in self.light_high))
        for name in ("position_frequencies", "light_frequencies"):
            if not 0 <= getattr(self, name) <= 16:
                raise ValueError(f"{name} must be between 0 and 16, got {getattr(self, name)}")
        if not self.widths or any(w < 1 for w in self.widths):
            raise ValueError(f"widths must be one or more positive integers, got {self.widths}")
        for name in ("hdr_scale", "hdr_exposure"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a positive number, got {value}")
        if len(self.light_low) != 2 or len(self.light_high) != 2:
            raise ValueError("light_low and light_high must be (x, y) pairs")
        if any(hi <= lo for lo, hi in zip(self.light_low, self.light_high)):
            raise ValueError(f"light_high {self.light_high} must exceed light_low {self.light_low} on both axes")


IBR_PRESETS: dict[str, IBRConfig] = {
    # The seed's network: a Dense layer and four Dense blocks of 600 units, ReLU output (1.45M parameters).
    "seed": IBRConfig(widths=(600,) * 5),
    # Real-time on whole frames, and fits a 200-light capture in minutes on one CPU thread: three layers
    # of 96 on the 7 inputs plus a sin/cos encoding of pixel (4 octaves) and light (2 octaves) positions,
    # predicting the change from the average image (22k parameters).
    "edge": IBRConfig(widths=(96, 96, 96), position_frequencies=4, light_frequencies=2, residual=True),
    # Tiny, for tests.
    "test": IBRConfig(widths=(8, 8)),
}


class ImageBasedRelighting(nn.Module):
    """Seed 001's per-pixel relighting network.

    ``forward(average, light)``: average (N, 3, H, W) linear HDR average image of the capture and
    light (N, 2) normalised light position in [-1, 1] -> image (N, 3, H, W) linear HDR, any H and W.
    """

    family = "ibr"

    def __init__(self, config: IBRConfig | None = None, **overrides) -> None:
        super().__init__()
        config = replace(config or IBRConfig(), **overrides)
        self.config = config
        sizes = (len(FEATURES) + 4 * (config.position_frequencies + config.light_frequencies), *config.widths, 3)
        self.layers = nn.ModuleList(nn.Conv2d(a, b, 1) for a, b in zip(sizes[:-1], sizes[1:]))

    # -- normalisation ------------------------------------------------------------------------------

    def normalise(self, hdr: torch.Tensor) -> torch.Tensor:
        """Linear HDR -> normalised values, with this model's constants."""
        return hdr_to_normalised(hdr, self.config.hdr_scale, self.config.hdr_exposure)

    def denormalise(self, normalised: torch.Tensor) -> torch.Tensor:
        """Normalised values -> linear HDR (negative inputs give 0)."""
        return normalised_to_hdr(normalised, self.config.hdr_scale, self.config.hdr_exposure)

    def normalise_light(self, xy: torch.Tensor) -> torch.Tensor:
        """Light (..., 2) in capture units -> normalised [-1, 1] over the training lights' extent."""
        low = xy.new_tensor(self.config.light_low)
        high = xy.new_tensor(self.config.light_high)
        return (xy[..., :2] - low) / (high - low) * 2 - 1

    # -- the network --------------------------------------------------------------------------------

    def _encode(self, x: torch.Tensor) -> torch.Tensor:
        parts = [x]
        for k in range(self.config.position_frequencies):
            parts += [torch.sin(x[:, 3:5] * (math.pi * 2**k)), torch.cos(x[:, 3:5] * (math.pi * 2**k))]
        for k in range(self.config.light_frequencies):
            parts += [torch.sin(x[:, 5:7] * (math.pi * 2**k)), torch.cos(x[:, 5:7] * (math.pi * 2**k))]
        return torch.cat(parts, dim=1) if len(parts) > 1 else x

    def forward_pixels(self, features: torch.Tensor) -> torch.Tensor:
        """Per-pixel path for training: (B, 7) normalised features (see FEATURES) -> (B, 3) normalised RGB."""
        x = self._encode(features)
        last = len(self.layers) - 1
        for i, layer in enumerate(self.layers):
            x = F.linear(x, layer.weight.flatten(1), layer.bias)
            if i < last or self.config.output_relu:
                x = F.relu(x)
        return x + features[:, :3] if self.config.residual else x

    def forward_normalised(self, features: torch.Tensor) -> torch.Tensor:
        """Whole-frame path on normalised feature planes: (N, 7, H, W) -> (N, 3, H, W) normalised RGB."""
        x = self._encode(features)
        last = len(self.layers) - 1
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < last or self.config.output_relu:
                x = F.relu(x)
        return x + features[:, :3] if self.config.residual else x

    def feature_planes(self, average: torch.Tensor, light: torch.Tensor) -> torch.Tensor:
        """(N, 7, H, W) normalised input planes: average image, pixel x, pixel y, light x, light y."""
        n, _, h, w = average.shape
        xs = (torch.arange(w, device=average.device, dtype=average.dtype) * 2 + 1) / w - 1
        ys = (torch.arange(h, device=average.device, dtype=average.dtype) * 2 + 1) / h - 1
        px = xs.view(1, 1, 1, w).expand(n, 1, h, w)
        py = ys.view(1, 1, h, 1).expand(n, 1, h, w)
        lights = light.to(average.dtype).view(n, 2, 1, 1).expand(n, 2, h, w)
        return torch.cat([self.normalise(average), px, py, lights], dim=1)

    def forward(self, average: torch.Tensor, light: torch.Tensor) -> torch.Tensor:
        return self.denormalise(self.forward_normalised(self.feature_planes(average, light)))

    # -- contract -----------------------------------------------------------------------------------

    def io_contract(self) -> dict:
        """Names, channels, value ranges and normalisation of the inputs and the output."""
        c = self.config
        return {
            "layout": "NCHW",
            "dtype": "float32",
            "inputs": [
                {"name": "average", "channels": 3, "range": [0.0, None],
                 "normalisation": "none: the capture's linear HDR average image (run folder's average.npy); "
                                  f"normalised inside: log1p({c.hdr_exposure:.6g} * x / {c.hdr_scale:.6g}) "
                                  f"/ log1p({c.hdr_exposure:.6g})"},
                {"name": "light", "channels": 2, "shape": ["N", 2], "range": [-1.0, 1.0],
                 "normalisation": "light (x, y) mapped linearly from [light_low, light_high] of the config "
                                  f"({list(c.light_low)} .. {list(c.light_high)}, capture units) to [-1, 1]"},
            ],
            "outputs": [
                {"name": "image", "channels": 3, "range": [0.0, None],
                 "normalisation": "none: linear HDR RGB in the capture's units; tone-map for display"},
            ],
        }

    def config_dict(self) -> dict:
        """The full config as plain JSON-able values."""
        return config_dict(self.config)

