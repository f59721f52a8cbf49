"""Classical low-light baselines, computed on the same images as the networks."""

from __future__ import annotations

import cv2
import numpy as np

__all__ = ["BASELINES", "identity", "gamma", "adaptive_gamma", "clahe_l"]


def identity(image: np.ndarray) -> np.ndarray:
    """The input itself."""
    return image


def gamma(image: np.ndarray, value: float = 2.2) -> np.ndarray:
    """Gamma correction x^(1/value)."""
    return np.clip(image, 0.0, 1.0) ** (1.0 / value)


def adaptive_gamma(image: np.ndarray, target: float = 0.45) -> np.ndarray:
    """Gamma chosen per image so that its mean brightness maps to ``target``."""
    mean = float(np.clip(image.mean(), 1e-4, 0.999))
    return np.clip(image, 0.0, 1.0) ** (np.log(target) / np.log(mean))


def clahe_l(image: np.ndarray, clip_limit: float = 2.0, tiles: int = 8) -> np.ndarray:
    """OpenCV CLAHE on the L channel of CIELAB (8-bit), colour channels untouched."""
    rgb8 = np.clip(np.round(image * 255.0), 0, 255).astype(np.uint8)
    lab = cv2.cvtColor(rgb8, cv2.COLOR_RGB2LAB)
    lab[..., 0] = cv2.createCLAHE(clipLimit=clip_limit, tileGridSize=(tiles, tiles)).apply(lab[..., 0])
    return cv2.cvtColor(lab, cv2.COLOR_LAB2RGB).astype(np.float32) / 255.0


BASELINES = {
    "input": identity,
    "gamma 2.2": gamma,
    "adaptive gamma": adaptive_gamma,
    "CLAHE (L channel)": clahe_l,
}
