"""Realistic example inputs for parity checks, drawn from each family's own data generator.

Uniform noise hides the failures that matter in deployment (FP16 overflow on bright HDR pixels,
saturated sigmoids on dark frames), so every family gets inputs like the ones it was trained on:

* ``unet``: rendered scenes (distances, cosines, albedo, normals) from ``train.data.render``;
* ``lowlight``: held-out photographs degraded to low light by ``train.data.lowlight.degrade``;
* ``sfsnet``: synthetic faces from ``train.data.sfsnet`` (linear RGB);
* ``relight``: the same faces in sRGB, with a point light or an SH environment;
* ``ibr``: the average image of a synthetic light stage (linear HDR) and light positions.
"""

from __future__ import annotations

import numpy as np

__all__ = ["sample_inputs"]


def _resize(image: np.ndarray, height: int, width: int) -> np.ndarray:
    import cv2

    interp = cv2.INTER_AREA if image.shape[0] >= height else cv2.INTER_LINEAR
    return cv2.resize(image, (width, height), interpolation=interp)


def _chw(images: list[np.ndarray]) -> np.ndarray:
    return np.ascontiguousarray(np.stack([i if i.ndim == 3 else i[..., None] for i in images]).transpose(0, 3, 1, 2),
                                dtype=np.float32)


def _unet(meta: dict, batch: int, height: int, width: int, seed: int) -> dict[str, np.ndarray]:
    from train.data.render import RenderConfig, render_sample

    cfg = RenderConfig(height=height, width=width, shadow_steps=16)
    samples = [render_sample(seed + i, cfg) for i in range(batch)]
    channels = meta["config"].get("albedo_channels", 3)
    albedo = [s.albedo.mean(-1, keepdims=True) if channels == 1 else s.albedo for s in samples]
    return {"distances": _chw([s.distances for s in samples]), "cosines": _chw([s.cosines for s in samples]),
            "albedo": _chw(albedo), "normals": _chw([s.normals for s in samples])}


def _lowlight(meta: dict, batch: int, height: int, width: int, seed: int) -> dict[str, np.ndarray]:
    from train.data.lowlight import degrade, photo_split

    rng = np.random.default_rng(seed)
    photos = photo_split("test")
    frames = [degrade(_resize(photos[i % len(photos)], height, width), rng) for i in range(batch)]
    return {"image": _chw(frames)}


def _faces(batch: int, height: int, width: int, seed: int) -> list[dict[str, np.ndarray]]:
    from train.data.sfsnet import FaceRenderConfig, render_face_sample

    cfg = FaceRenderConfig(height=height, width=width)
    return [render_face_sample(seed + i, cfg) for i in range(batch)]


def _sfsnet(meta: dict, batch: int, height: int, width: int, seed: int) -> dict[str, np.ndarray]:
    return {"image": _chw([np.clip(f["image"], 0.0, 1.0) for f in _faces(batch, height, width, seed)])}


def _srgb(linear: np.ndarray) -> np.ndarray:
    x = np.clip(linear, 0.0, 1.0)
    return np.where(x <= 0.0031308, 12.92 * x, 1.055 * np.power(x, 1 / 2.4) - 0.055).astype(np.float32)


def _relight(meta: dict, batch: int, height: int, width: int, seed: int) -> dict[str, np.ndarray]:
    faces = _faces(batch, height, width, seed)
    feeds = {"image": _chw([_srgb(f["image"]) for f in faces])}
    if meta["config"].get("light") == "sh":
        feeds["sh"] = np.stack([f["relit_sh"] for f in faces]).astype(np.float32)
    else:  # a point light over the frame at the training scenes' heights
        rng = np.random.default_rng(seed)
        xy = rng.uniform(-0.8, 0.8, (batch, 2))
        feeds["light"] = np.concatenate([xy, rng.uniform(2.2, 3.5, (batch, 1))], axis=1).astype(np.float32)
    return feeds


def _ibr(meta: dict, batch: int, height: int, width: int, seed: int) -> dict[str, np.ndarray]:
    from train.data.ibr import normalise_lights, render_light_stage

    cfg = meta["config"]
    capture = render_light_stage(lights=24, size=(height, width), seed=seed)
    average = capture.images.mean(axis=0)
    rng = np.random.default_rng(seed)
    picks = rng.choice(len(capture.lights), batch, replace=False)
    lights = np.clip(normalise_lights(capture.lights[picks], cfg["light_low"], cfg["light_high"]), -1.0, 1.0)
    return {"average": _chw([average] * batch), "light": np.asarray(lights, np.float32)}


_GENERATORS = {"unet": _unet, "lowlight": _lowlight, "sfsnet": _sfsnet, "relight": _relight, "ibr": _ibr}


def sample_inputs(meta: dict, batch: int, height: int, width: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Inputs for the checkpoint described by ``meta``, named and ordered as its contract says.

    Args:
        meta: checkpoint metadata (``family``, ``config``, ``contract``).
        batch, height, width: the size of the batch and of every image input.
        seed: selects the scenes, photos and lights; the same seed gives the same arrays.

    Returns:
        ``{input name: float32 array}`` in the contract's order (NCHW images, (N, K) vectors).
    """
    family = meta["family"]
    if family not in _GENERATORS:
        raise ValueError(f"no example inputs for family {family!r}")
    feeds = _GENERATORS[family](meta, batch, height, width, seed)
    names = [spec["name"] for spec in meta["contract"]["inputs"]]
    if sorted(feeds) != sorted(names):
        raise ValueError(f"{family}: generated inputs {sorted(feeds)} do not match the contract's {names}")
    return {name: feeds[name] for name in names}
