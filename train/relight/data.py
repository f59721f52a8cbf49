"""Realistic inputs for the relighting chain: synthetic faces (``train.sfsnet.data``) in sRGB, with a
point light over the frame or the faces' second SH light."""

from __future__ import annotations

import numpy as np

from runtime.core.color import linear_to_srgb

from ..data.images import stack_nchw
from ..sfsnet.data import face_samples

__all__ = ["sample_inputs"]


def sample_inputs(meta: dict, batch: int, height: int, width: int, seed: int) -> dict[str, np.ndarray]:
    """Realistic inputs for export parity and the benchmarks: ``image`` and ``light`` (point) or ``sh``."""
    faces = face_samples(batch, height, width, seed)
    feeds = {"image": stack_nchw([linear_to_srgb(f["image"]) for f in faces])}
    if meta["config"].get("light") == "sh":
        feeds["sh"] = np.stack([f["relit_sh"] for f in faces]).astype(np.float32)
    else:  # a point light over the frame at the training scenes' heights
        rng = np.random.default_rng(seed)
        xy = rng.uniform(-0.8, 0.8, (batch, 2))
        feeds["light"] = np.concatenate([xy, rng.uniform(2.2, 3.5, (batch, 1))], axis=1).astype(np.float32)
    return feeds
