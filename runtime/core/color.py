"""Colour conversions (numpy only): sRGB <-> linear light, and uint8 BGR frames <-> float NCHW RGB tensors."""

from __future__ import annotations

import numpy as np

__all__ = ["srgb_to_linear", "linear_to_srgb", "frame_to_tensor", "tensor_to_frame"]


def srgb_to_linear(values: np.ndarray) -> np.ndarray:
    """sRGB-encoded values in 0..1 -> linear light (float32), the IEC 61966-2-1 curve."""
    v = np.clip(np.asarray(values, np.float32), 0.0, 1.0)
    return np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4).astype(np.float32)


def linear_to_srgb(values: np.ndarray) -> np.ndarray:
    """Linear light (clipped to 0..1) -> sRGB-encoded values (float32), the IEC 61966-2-1 curve."""
    x = np.clip(np.asarray(values, np.float32), 0.0, 1.0)
    return np.where(x <= 0.0031308, 12.92 * x, 1.055 * np.power(x, 1 / 2.4) - 0.055).astype(np.float32)


def frame_to_tensor(frame: np.ndarray) -> np.ndarray:
    """uint8 HxWx3 BGR -> float32 1x3xHxW RGB in 0..1."""
    return np.ascontiguousarray(frame[..., ::-1].transpose(2, 0, 1)[None], dtype=np.float32) * np.float32(1 / 255)


def tensor_to_frame(tensor: np.ndarray) -> np.ndarray:
    """float 1x3xHxW (or 3xHxW) RGB in 0..1 -> uint8 HxWx3 BGR, clipped and rounded."""
    chw = tensor[0] if tensor.ndim == 4 else tensor
    rgb = np.clip(chw.transpose(1, 2, 0).astype(np.float32, copy=False), 0.0, 1.0)
    return np.ascontiguousarray((rgb[..., ::-1] * 255.0 + 0.5).astype(np.uint8))
