"""Albedo textures: real photographs bundled with scikit-image, and procedural patterns."""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np

__all__ = ["PHOTO_NAMES", "load_photos", "random_albedo"]

# Photographs and textures shipped inside the scikit-image wheel (no download needed).
PHOTO_NAMES = (
    "astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field", "retina",
    "immunohistochemistry", "brick", "grass", "gravel", "camera", "moon",
)


@lru_cache(maxsize=1)
def load_photos() -> dict[str, np.ndarray]:
    """The bundled photos by name, as float32 RGB arrays in [0, 1] (grey ones repeated to three channels)."""
    import skimage.data

    photos = {}
    for name in PHOTO_NAMES:
        loader = getattr(skimage.data, name, None)
        if loader is None:
            continue
        image = np.asarray(loader(), dtype=np.float32) / 255.0
        if image.ndim == 2:
            image = np.repeat(image[..., None], 3, axis=2)
        photos[name] = np.ascontiguousarray(image[..., :3])
    if not photos:
        raise RuntimeError("scikit-image ships none of the expected sample photos")
    return photos


def _photo_crop(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    photos = list(load_photos().values())
    photo = photos[rng.integers(len(photos))]
    ph, pw = photo.shape[:2]
    scale = rng.uniform(0.35, 1.0)
    ch = max(8, int(min(ph, pw * height / width) * scale))
    cw = max(8, int(ch * width / height))
    cw = min(cw, pw)
    y0 = rng.integers(0, ph - ch + 1)
    x0 = rng.integers(0, pw - cw + 1)
    crop = cv2.resize(photo[y0 : y0 + ch, x0 : x0 + cw], (width, height), interpolation=cv2.INTER_AREA)
    if rng.random() < 0.5:
        crop = crop[:, ::-1]
    return crop


def _smooth_noise(rng: np.random.Generator, height: int, width: int, cells: int, channels: int) -> np.ndarray:
    coarse = rng.random((cells, cells, channels)).astype(np.float32)
    out = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)
    return np.clip(out.reshape(height, width, channels), 0.0, 1.0)


def _procedural(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    kind = rng.integers(4)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    c1, c2 = rng.random(3).astype(np.float32), rng.random(3).astype(np.float32)
    if kind == 0:  # checkerboard, possibly rotated
        period = rng.uniform(8, 48)
        angle = rng.uniform(0, np.pi)
        u = xx * np.cos(angle) + yy * np.sin(angle)
        v = -xx * np.sin(angle) + yy * np.cos(angle)
        mask = ((np.floor(u / period) + np.floor(v / period)) % 2)[..., None]
    elif kind == 1:  # stripes
        period = rng.uniform(6, 40)
        angle = rng.uniform(0, np.pi)
        mask = (0.5 + 0.5 * np.sin(2 * np.pi * (xx * np.cos(angle) + yy * np.sin(angle)) / period))[..., None]
    elif kind == 2:  # smooth colour noise
        return _smooth_noise(rng, height, width, int(rng.integers(3, 12)), 3)
    else:  # patchwork of flat regions
        cells = int(rng.integers(3, 9))
        labels = cv2.resize(
            rng.integers(0, 4, (cells, cells)).astype(np.uint8), (width, height), interpolation=cv2.INTER_NEAREST
        )
        palette = rng.random((4, 3)).astype(np.float32)
        return palette[labels]
    return (c1 * mask + c2 * (1.0 - mask)).astype(np.float32)


def random_albedo(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """One albedo map (H, W, 3) in [0.03, 0.9]: a tinted photo crop or a procedural pattern."""
    if rng.random() < 0.6:
        base = _photo_crop(rng, height, width)
        tint = rng.uniform(0.6, 1.2, 3).astype(np.float32)
        base = base * tint
    else:
        base = _procedural(rng, height, width)
    return np.clip(0.03 + 0.87 * base, 0.03, 0.9).astype(np.float32)
