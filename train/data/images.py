"""Image files and image arrays shared by the families: 8/16-bit files as float RGB, and NCHW batches."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from runtime.core.errors import DatasetError

__all__ = ["IMAGE_EXTENSIONS", "read_image", "write_image", "stack_nchw"]

IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}


def read_image(path: str | os.PathLike) -> np.ndarray:
    """An image file as float32 RGB (H, W, 3) in [0, 1]; 8- and 16-bit files, grey or colour."""
    data = np.fromfile(str(path), dtype=np.uint8) if Path(path).is_file() else None
    image = cv2.imdecode(data, cv2.IMREAD_COLOR | cv2.IMREAD_ANYDEPTH) if data is not None and data.size else None
    if image is None:
        raise DatasetError(f"cannot read image {path}")
    scale = 65535.0 if image.dtype == np.uint16 else 255.0
    return np.ascontiguousarray(image[..., ::-1], dtype=np.float32) / scale


def write_image(path: str | os.PathLike, image: np.ndarray) -> None:
    """Write float RGB in [0, 1] as an 8-bit file (format from the suffix), atomically."""
    from runtime.core.io import atomic_path

    path = Path(path)
    encoded = np.clip(np.round(np.asarray(image) * 255.0), 0, 255).astype(np.uint8)[..., ::-1]
    ok, buffer = cv2.imencode(path.suffix or ".png", encoded)
    if not ok:
        raise DatasetError(f"cannot encode {path.suffix!r} images")
    with atomic_path(path) as tmp:
        buffer.tofile(str(tmp))


def stack_nchw(images: list[np.ndarray]) -> np.ndarray:
    """(H, W) or (H, W, C) arrays stacked into one contiguous float32 (N, C, H, W) batch."""
    return np.ascontiguousarray(np.stack([i if i.ndim == 3 else i[..., None] for i in images]).transpose(0, 3, 1, 2),
                                dtype=np.float32)
