"""Image-based relighting data (seed 001): HDR normalisation, captures, a synthetic light stage, the
per-pixel sampler and realistic inputs (capture folders are read and written by ``capture.py``).

A capture (``Capture``) is one static scene under many point lights: linear HDR images and the light
positions; ``capture.py`` gives the folder format (images + ``lights.csv``).

The light's x and y (any unit) are what the network sees, mapped to [-1, 1] over the training
lights' extent; ``z`` is kept for reference only. Held-out lights are chosen by row order
(``split_lights``): every 10th row is a test light and every 20th a validation light by default.

HDR normalisation (the seed's "scale to 0..1, exposure compensation, log transform, rescale")::

    n = log(1 + exposure * x / scale) / log(1 + exposure)        x = scale * (exp(n * log(1 + exposure)) - 1) / exposure

``scale`` is the training images' maximum and ``exposure`` is fitted so that the training images'
median maps to ``median_target``: the log spreads the many dark values over the range. 0.3 (the
default) leaves the bright values, which dominate the relative error, more room than 0.5 does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from runtime.core.errors import DatasetError

__all__ = [
    "AVERAGE_FILE", "Capture", "fit_normalisation", "hdr_to_normalised", "normalised_to_hdr", "pixel_coordinates",
    "light_stage_lights", "render_light_stage", "normalise_lights", "split_lights", "PixelSampler", "sample_inputs",
]


AVERAGE_FILE = "average.npy"
"""The capture's linear HDR average image (the model's input), saved in the run folder beside the checkpoint."""


# ------------------------------------------------------------------------------------------ normalisation


def fit_normalisation(images: np.ndarray, median_target: float = 0.3) -> tuple[float, float]:
    """The (scale, exposure) constants of the HDR normalisation for a set of linear images.

    Args:
        images: linear HDR values, any shape (the training images).
        median_target: where the images' median lands after normalisation, in (0, 1).

    Returns:
        ``scale``, the maximum value, and ``exposure``, solving
        ``log(1 + e m) / log(1 + e) = t`` for the median ``m`` (relative to ``scale``); at least 1e-3
        (nearly linear, for data that is already evenly spread) and at most 1e6.
    """
    if not 0.0 < median_target < 1.0:
        raise ValueError(f"median_target must be in (0, 1), got {median_target}")
    values = np.asarray(images, np.float32)
    scale = float(values.max())
    if not np.isfinite(scale) or scale <= 0:
        raise DatasetError("the training images are all black (or not finite): nothing to normalise")
    flat = values.reshape(-1)
    if flat.size > 4_000_000:  # the median of an even subsample is as good and much cheaper
        flat = flat[:: flat.size // 4_000_000]
    m = float(np.median(flat)) / scale
    low, high = 1e-3, 1e6
    if m <= 0:
        return scale, high

    def mapped(e: float) -> float:
        return math.log1p(e * m) / math.log1p(e)

    if mapped(low) >= median_target:
        return scale, low
    if mapped(high) <= median_target:
        return scale, high
    for _ in range(200):  # bisection in log space; mapped() grows with the exposure
        mid = math.sqrt(low * high)
        if mapped(mid) < median_target:
            low = mid
        else:
            high = mid
    return scale, float(math.sqrt(low * high))


def hdr_to_normalised(x, scale: float, exposure: float):
    """Linear HDR -> the network's normalised domain ([0, 1] over the training range). numpy or torch."""
    k = 1.0 / math.log1p(exposure)
    if torch.is_tensor(x):
        return torch.log1p(x.clamp_min(0.0) * (exposure / scale)) * k
    x = np.asarray(x)
    dtype = x.dtype if x.dtype.kind == "f" else np.float32
    return (np.log1p(np.maximum(x, 0.0) * (exposure / scale)) * k).astype(dtype)


def normalised_to_hdr(n, scale: float, exposure: float):
    """Inverse of ``hdr_to_normalised`` (negative values give 0). numpy or torch."""
    k = math.log1p(exposure)
    if torch.is_tensor(n):
        return torch.expm1(n.clamp_min(0.0) * k) * (scale / exposure)
    n = np.asarray(n)
    dtype = n.dtype if n.dtype.kind == "f" else np.float32
    return (np.expm1(np.maximum(n, 0.0) * k) * (scale / exposure)).astype(dtype)


def pixel_coordinates(height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Normalised pixel-centre coordinates: x (width,) and y (height,), both in (-1, 1).

    Pixel j of W sits at (2 j + 1) / W - 1: the formula the model uses on whole frames.
    """
    xs = (torch.arange(width, dtype=torch.float32) * 2 + 1) / width - 1
    ys = (torch.arange(height, dtype=torch.float32) * 2 + 1) / height - 1
    return xs, ys


def normalise_lights(lights: np.ndarray, low, high) -> np.ndarray:
    """Light x, y (capture units) to [-1, 1] over the box [low, high] (per axis)."""
    low = np.asarray(low, np.float32)
    span = np.maximum(np.asarray(high, np.float32) - low, 1e-8)
    return ((np.asarray(lights, np.float32)[..., :2] - low) / span * 2 - 1).astype(np.float32)


# --------------------------------------------------------------------------------------------- capture


@dataclass
class Capture:
    """One scene under many lights: linear HDR images and the light positions."""

    images: np.ndarray
    """(N, H, W, 3) float32 linear RGB."""
    lights: np.ndarray
    """(N, 2) float32 light x, y in the capture's units."""
    names: list[str]
    """Image file names, in lights.csv order."""
    z: np.ndarray | None = None
    """(N,) light heights when lights.csv has a z column (kept for reference; the network ignores it)."""
    meta: dict = field(default_factory=dict)
    """Where the capture came from (source, render settings)."""

    def __post_init__(self) -> None:
        if len(self.images) != len(self.lights) or len(self.images) != len(self.names):
            raise ValueError("images, lights and names must have the same length")

    @property
    def size(self) -> tuple[int, int]:
        return int(self.images.shape[1]), int(self.images.shape[2])

    def subset(self, indices) -> "Capture":
        """The images and lights at ``indices``."""
        indices = np.asarray(indices, int)
        return Capture(self.images[indices], self.lights[indices], [self.names[i] for i in indices],
                       None if self.z is None else self.z[indices], dict(self.meta))


# ------------------------------------------------------------------------------------ synthetic light stage


def light_stage_lights(count: int, radius: float = 3.0, min_elevation: float = 25.0) -> np.ndarray:
    """``count`` point lights (x, y, z) spread evenly over a hemisphere above the scene (a Fibonacci spiral).

    Row i sits at height fraction falling from the zenith to ``min_elevation`` degrees as i grows,
    turning by the golden angle each row, so every k-th row also covers the whole dome.
    """
    if count < 1:
        raise ValueError(f"count must be >= 1, got {count}")
    i = np.arange(count, dtype=np.float64)
    lowest = math.sin(math.radians(min_elevation))
    h = 1.0 - (i + 0.5) / count * (1.0 - lowest)
    ring = np.sqrt(np.maximum(1.0 - h * h, 0.0))
    phi = i * math.pi * (3.0 - math.sqrt(5.0))
    return (radius * np.stack([ring * np.cos(phi), ring * np.sin(phi), h], axis=1)).astype(np.float32)


def render_light_stage(
    lights: int = 200, size: tuple[int, int] = (60, 80), seed: int = 0, radius: float = 3.0,
    intensity: float = 18.0, min_elevation: float = 25.0, progress: bool = False,
) -> Capture:
    """A synthetic light-stage capture: one procedural scene (``render.py``) under ``lights`` point lights.

    The scene is ``render_sample(seed)``'s height field and albedo (spheres, boxes, terrain, photo
    textures), shaded with cast shadows, ambient occlusion and a specular lobe, unclipped (linear HDR).
    """
    from ..data.render import RenderConfig, render_config_dict, render_sample, shade_scene

    cfg = RenderConfig(height=size[0], width=size[1], light_intensity=intensity, clip=False)
    scene = render_sample(seed, cfg)
    positions = light_stage_lights(lights, radius, min_elevation)
    iterator = positions
    if progress:
        from tqdm import tqdm

        iterator = tqdm(positions, desc=f"rendering {lights} lights", unit="light", leave=False)
    images = np.stack([shade_scene(scene.heights, scene.albedo, p, cfg).targets for p in iterator])
    meta = {"source": "synthetic", "scene_seed": seed, "lights": lights, "radius": radius,
            "min_elevation_deg": min_elevation, "render": render_config_dict(cfg)}
    return Capture(images, positions[:, :2].copy(), [f"light_{i:03d}" for i in range(lights)], positions[:, 2].copy(),
                   meta)


def split_lights(count: int, test_every: int = 10, val_every: int = 20) -> dict[str, np.ndarray]:
    """Deterministic split of a capture's rows: test rows i % test_every == test_every // 2, validation rows
    i % val_every == 0 (unless already test), training the rest."""
    if test_every < 2 or val_every < 2:
        raise ValueError("test_every and val_every must be >= 2")
    i = np.arange(count)
    test = i % test_every == test_every // 2
    val = (i % val_every == 0) & ~test
    split = {"train": i[~test & ~val], "val": i[val], "test": i[test]}
    for name, rows in split.items():
        if len(rows) == 0:
            raise DatasetError(f"a capture of {count} images leaves no {name} lights "
                               f"(test every {test_every}th, validation every {val_every}th row); add images")
    return split


# ------------------------------------------------------------------------------------------- sampling


class PixelSampler:
    """Training batches of single pixels drawn from ALL training images at once (the seed's key point).

    The N x H x W training pixels are visited in a fresh random order each pass, so every batch mixes
    lights and positions from the whole set (uniform draws of image, y and x) and a pass covers every
    pixel exactly once.

    Args:
        images: (N, H, W, 3) normalised training images (torch, float32).
        average: (H, W, 3) normalised average image.
        lights: (N, 2) normalised light positions in [-1, 1].
        seed: seed of the visiting order.
    """

    def __init__(self, images: torch.Tensor, average: torch.Tensor, lights: torch.Tensor, seed: int = 0) -> None:
        n, h, w, _ = images.shape
        if average.shape != (h, w, 3) or lights.shape != (n, 2):
            raise ValueError(f"shapes do not fit: images {tuple(images.shape)}, average {tuple(average.shape)}, "
                             f"lights {tuple(lights.shape)}")
        self.shape = (n, h, w)
        self.targets = images.reshape(n * h * w, 3).contiguous()
        self.average = average.reshape(h * w, 3).contiguous()
        self.lights = lights.float().contiguous()
        self.xs, self.ys = pixel_coordinates(h, w)
        self.generator = torch.Generator().manual_seed(seed)
        self._order = torch.empty(0, dtype=torch.long)
        self._next = 0
        self.drawn = 0
        """Pixels handed out so far (``drawn / len(self)`` passes over the training set)."""

    def __len__(self) -> int:
        return self.targets.shape[0]

    def indices(self, batch_size: int) -> torch.Tensor:
        """The next ``batch_size`` flat indices n * H * W + y * W + x of the visiting order."""
        parts, need = [], batch_size
        while need > 0:
            if self._next >= len(self._order):
                self._order = torch.randperm(len(self), generator=self.generator)
                self._next = 0
            take = self._order[self._next : self._next + need]
            self._next += len(take)
            need -= len(take)
            parts.append(take)
        self.drawn += batch_size
        return parts[0] if len(parts) == 1 else torch.cat(parts)

    def features(self, flat: torch.Tensor) -> torch.Tensor:
        """(B, 7) features of flat indices: average RGB, pixel x, pixel y, light x, light y."""
        n, h, w = self.shape
        image, pixel = flat // (h * w), flat % (h * w)
        return torch.cat([self.average[pixel], self.xs[pixel % w, None], self.ys[pixel // w, None],
                          self.lights[image]], dim=1)

    def sample(self, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(features (B, 7), normalised targets (B, 3)) of the next batch."""
        flat = self.indices(batch_size)
        return self.features(flat), self.targets[flat]


# ---------------------------------------------------------------------------------------- realistic inputs


def sample_inputs(meta: dict, batch: int, height: int, width: int, seed: int) -> dict[str, np.ndarray]:
    """Realistic inputs for export parity and the benchmarks: the average image of a synthetic light stage
    (linear HDR) and held-out light positions."""
    from ..data.images import stack_nchw

    cfg = meta["config"]
    capture = render_light_stage(lights=24, size=(height, width), seed=seed)
    average = capture.images.mean(axis=0)
    rng = np.random.default_rng(seed)
    picks = rng.choice(len(capture.lights), batch, replace=False)
    lights = np.clip(normalise_lights(capture.lights[picks], cfg["light_low"], cfg["light_high"]), -1.0, 1.0)
    return {"average": stack_nchw([average] * batch), "light": np.asarray(lights, np.float32)}
