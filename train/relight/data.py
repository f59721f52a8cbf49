"""Realistic inputs for the relighting models: synthetic faces (``train.sfsnet.data``) in sRGB, with a
point light over the frame or the faces' second SH light; for ``relight_edge`` also the background weight
and the light history a video gives it."""

from __future__ import annotations

import numpy as np

from runtime.core.color import linear_to_srgb

from ..data.images import stack_nchw
from ..sfsnet.data import face_samples

__all__ = ["sample_inputs"]


def sample_inputs(meta: dict, batch: int, height: int, width: int, seed: int) -> dict[str, np.ndarray]:
    """Realistic inputs for export parity and the benchmarks, for each input the contract names: ``image``;
    ``light`` (a point light) or ``sh`` (the faces' second light); ``background`` (0 or 1, both in a batch
    of two or more); ``history`` (weight 0, as on a first frame, and 0.5 alternating, with the faces' own
    light as the previous estimate)."""
    names = [spec["name"] for spec in meta["contract"]["inputs"]]
    faces = face_samples(batch, height, width, seed)
    rng = np.random.default_rng(seed)
    feeds = {"image": stack_nchw([linear_to_srgb(f["image"]) for f in faces])}
    if "sh" in names:
        feeds["sh"] = np.stack([f["relit_sh"] for f in faces]).astype(np.float32)
    if "light" in names:  # a point light over the frame at the training scenes' heights
        xy = rng.uniform(-0.8, 0.8, (batch, 2))
        feeds["light"] = np.concatenate([xy, rng.uniform(2.2, 3.5, (batch, 1))], axis=1).astype(np.float32)
    if "background" in names:
        feeds["background"] = ((np.arange(batch) + seed) % 2).astype(np.float32)[:, None]
    if "history" in names:
        weight = 0.5 * (np.arange(batch) % 2)[:, None]
        previous = np.stack([f["sh"] for f in faces]) + rng.normal(0.0, 0.05, (batch, 27))
        feeds["history"] = np.concatenate([weight, previous], axis=1).astype(np.float32)
    return feeds
