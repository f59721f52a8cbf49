"""Video-level evaluation of low-light checkpoints (``python -m train.lowlight video-bench``).

Two generated clips per degradation, both made from the held-out photographs (``photo_split("test")``:
chelsea and coffee, never used in training), auto-exposed to a mean sRGB value of 0.42 and laid side by
side on one wide canvas:

- **Ramp.** A camera pans over the canvas with sub-pixel motion while the exposure goes from very dark
  (0.02) up to normal (1.0), holds there for 30% of the frames and goes back down, log-spaced.
- **Static scene.** A fixed window on the canvas at a constant dark exposure (0.05), new sensor noise on
  every frame, 8-bit but not compressed; and its reference, the same scene recorded in good light
  (exposure 1.0) by the same camera, likewise (see Flicker below). 30 frames by default.

Each frame is degraded without compression (``compress=False``) by one camera per clip (``ClipGenerator``:
the same gains, curves and noise levels on every frame, new noise), then the whole clip is encoded and
decoded: H.264 (libx264, ``--crf``, GOP 30, 4:2:0) for ``camera`` (the training degradation), MPEG-4
Part 2 at a low bit rate for ``independent`` (``independent.py``, evaluation only). The decoded frames
are the model inputs; the noise-free canvas crops are the clean frames.

Figures (``METRICS`` holds the same text for the JSON):

- PSNR / SSIM: output against the clean frame, mean over all ramp frames; also over the dark ones
  (exposure < 0.3).
- Blockiness: on BT.601 luma, the mean squared difference between neighbouring pixels across 8-pixel
  block boundaries (columns 8k-1 and 8k, rows likewise) divided by the mean squared difference between
  all other neighbours; the output's value over the clean frame's, mean over the dark ramp frames
  (exposure < 0.3), where compression blocks show. 1.0: as blocky as the clean frame.
- Well-exposed PSNR: output against its own input, mean over the ramp frames at exposure 1.0.
- Flicker: mean |out_t - out_{t-1}| over the static scene's output, divided by the same figure of the
  good-light reference clip (not enhanced). A clean static scene would not change at all, so the
  reference is what the camera records of it in good light: 1.0 flickers as much as that. Both the dark
  input and the reference are taken before compression: both codecs code a static scene as nearly
  unchanging blocks between intra frames (H.264 at CRF 32: mean |difference| ~1e-4), which would hide
  the sensor noise a model has to keep steady; uncompressed, every frame brings new noise.
"""

from __future__ import annotations

import math
import sys
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from itertools import pairwise
from pathlib import Path

import cv2
import numpy as np

from runtime.core.cli import ArgumentParser, bounded_float, bounded_int, image_size, random_seed
from runtime.core.errors import UserError

__all__ = [
    "METRICS",
    "TARGETS",
    "ClipGenerator",
    "VideoClip",
    "block_energy_ratio",
    "blockiness",
    "build_video_bench_parser",
    "canvas",
    "evaluate",
    "flicker_ratio",
    "luma",
    "make_clip",
    "pan_frame",
    "psnr",
    "ramp_exposures",
    "temporal_difference",
    "video_bench",
]

DARKEST = 0.02
"""Exposure at the ends of the ramp."""
HOLD_SHARE = 0.3
"""Share of the ramp's frames held at normal exposure (1.0)."""
DARK_BELOW = 0.3
"""Ramp frames below this exposure are the dark ones (blockiness, dark PSNR)."""
STATIC_EXPOSURE = 0.05
"""Exposure of the static scene."""
SCENE_MEAN = 0.42
"""Mean sRGB value the photos are auto-exposed to."""
GOP = 30
"""Frames between intra frames, both codecs."""
STATIC_FRAMES = 30
"""Default length of the static scene."""
BLOCK = 8
"""Block size the blockiness figure looks for (the 8x8 DCT of JPEG, MPEG-4 Part 2 and H.264's 8x8 transform)."""
CAMERA_DRAW = 16
"""Draws of at most this many numbers are the camera's (``ClipGenerator``); larger ones are noise fields."""
TARGETS = {"well_exposed_psnr": 30.0, "blockiness": 1.2, "flicker": 1.5}
"""What a model is judged against: well-exposed PSNR >= 30 dB, blockiness <= 1.2x, flicker <= 1.5x."""

METRICS = {
    "psnr": "PSNR (dB) of the output against the clean (noise-free) frame, mean over all ramp frames",
    "ssim": "SSIM of the output against the clean frame, mean over all ramp frames",
    "psnr_dark": f"PSNR (dB) against the clean frame, mean over the ramp frames with exposure < {DARK_BELOW}",
    "ssim_dark": f"SSIM against the clean frame, mean over the ramp frames with exposure < {DARK_BELOW}",
    "blockiness": (f"on BT.601 luma: mean squared neighbour difference across {BLOCK}-pixel block boundaries "
                   f"(columns {BLOCK}k-1|{BLOCK}k, rows likewise) / mean squared neighbour difference elsewhere; "
                   f"output's over the clean frame's, mean over the ramp frames with exposure < {DARK_BELOW} "
                   "(1.0 = as blocky as the clean frame)"),
    "well_exposed_psnr": "PSNR (dB) of the output against its own input, mean over the ramp frames at exposure 1.0",
    "static_difference": "mean |out_t - out_t-1| over the static scene's output (the flicker figure's numerator)",
    "reference_difference": "mean |ref_t - ref_t-1| over the good-light reference (the flicker figure's denominator)",
    "flicker": (f"mean |out_t - out_t-1| over the static scene at exposure {STATIC_EXPOSURE} (8-bit, not "
                "compressed) / the same of the reference: that scene recorded at exposure 1.0 by the same camera, "
                "8-bit, not compressed and not enhanced "
                "(a clean static scene has no frame-to-frame change at all)"),
}


# ------------------------------------------------------------------------------------------------ camera


@lru_cache(maxsize=64)
def _signature(name: str):
    import inspect

    try:
        return inspect.signature(getattr(np.random.default_rng(), name))
    except (TypeError, ValueError):
        return None


def _draw_count(name: str, args: tuple, kwargs: dict) -> int:
    """How many numbers a Generator call draws: its ``size``, or the broadcast shape of its array arguments."""
    signature = _signature(name)
    try:
        values = dict(signature.bind(*args, **kwargs).arguments) if signature is not None else None
    except TypeError:
        values = None
    if values is None:
        values = {**dict(enumerate(args)), **kwargs}
    if values.get("size") is not None:
        return int(np.prod(values["size"]))
    if name in ("permutation", "shuffle"):
        x = next(iter(values.values()), 0)
        return int(x) if isinstance(x, (int, np.integer)) else int(np.size(x))
    shapes = [v.shape for k, v in values.items() if k not in ("dtype", "out", "axis") and isinstance(v, np.ndarray)]
    return int(np.prod(np.broadcast_shapes(*shapes))) if shapes else 1


class ClipGenerator:
    """A ``numpy.random.Generator`` stand-in that makes a per-image degradation record a clip with one camera.

    A degradation draws its camera (gains, curves, noise levels: draws of at most ``CAMERA_DRAW``
    numbers) and its noise fields (larger draws) from one generator. Here each small draw comes from a
    generator seeded by ``camera_seed`` and the place in the code that asks for it, so it has the same value
    on every frame of the clip, whatever other draws a frame's exposure adds or skips; the noise fields come
    from a generator seeded by ``frame_seed``, new on every frame.
    """

    def __init__(self, camera_seed: Sequence[int], frame_seed: Sequence[int]) -> None:
        self._camera = tuple(int(s) for s in camera_seed)
        self._frame = np.random.default_rng([int(s) for s in frame_seed])
        self._calls: dict[str, int] = {}

    def __getattr__(self, name: str):
        frame_draw = getattr(self._frame, name)
        if not callable(frame_draw):
            return frame_draw

        def draw(*args, **kwargs):
            if _draw_count(name, args, kwargs) > CAMERA_DRAW:
                return frame_draw(*args, **kwargs)
            caller = sys._getframe(1)
            code = caller.f_code
            site = f"{Path(code.co_filename).name}:{code.co_name}+{caller.f_lineno - code.co_firstlineno}:{name}"
            self._calls[site] = count = self._calls.get(site, -1) + 1
            rng = np.random.default_rng([*self._camera, zlib.crc32(site.encode()), count])
            return getattr(rng, name)(*args, **kwargs)

        return draw


# -------------------------------------------------------------------------------------------------- clips


def ramp_exposures(frames: int, darkest: float = DARKEST, hold: float = HOLD_SHARE) -> np.ndarray:
    """Exposure per ramp frame: log-spaced ``darkest`` -> 1.0, 1.0 for ``hold`` of the frames, -> ``darkest``."""
    held = max(1, math.ceil(hold * frames))
    up = (frames - held) // 2
    down = frames - held - up
    return np.concatenate([np.geomspace(darkest, 1.0, up, endpoint=False), np.ones(held),
                           np.geomspace(1.0, darkest, down + 1)[1:]])


def canvas(height: int, width: int) -> tuple[np.ndarray, int]:
    """The held-out photos, auto-exposed to ``SCENE_MEAN`` and side by side, tall and wide enough to pan a
    ``height`` x ``width`` window over; also the width of the first photo."""
    from .data import auto_expose, photo_split

    photos = photo_split("test")
    aspect = sum(p.shape[1] / p.shape[0] for p in photos)
    tall = max(math.ceil(1.15 * height), math.ceil(1.6 * width / aspect))
    rng = np.random.default_rng(0)
    parts = []
    for photo in photos:
        interp = cv2.INTER_AREA if photo.shape[0] > tall else cv2.INTER_CUBIC
        resized = cv2.resize(photo, (round(photo.shape[1] * tall / photo.shape[0]), tall), interpolation=interp)
        parts.append(auto_expose(np.clip(resized, 0.0, 1.0), rng, target=(SCENE_MEAN, SCENE_MEAN)))
    return np.ascontiguousarray(np.concatenate(parts, axis=1)), parts[0].shape[1]


def pan_frame(scene: np.ndarray, t: int, frames: int, height: int, width: int) -> np.ndarray:
    """Frame ``t`` of a pan across ``scene``: left to right, with a slow vertical sway, at sub-pixel offsets."""
    span = max(frames - 1, 1)
    x = (scene.shape[1] - width) * t / span
    y = (scene.shape[0] - height) * (0.5 + 0.4 * math.sin(2 * math.pi * t / span))
    shift = np.float32([[1, 0, -x], [0, 1, -y]])
    frame = cv2.warpAffine(scene, shift, (width, height), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
    return np.clip(frame, 0.0, 1.0)


@dataclass
class VideoClip:
    """One degradation's clips: decoded model inputs (uint8 RGB) and what they are measured against."""

    degradation: str
    codec: str
    exposures: np.ndarray
    inputs: list[np.ndarray]
    static_inputs: list[np.ndarray]
    static_reference: list[np.ndarray]
    clean: Callable[[int], np.ndarray]
    """Clean ramp frame ``t`` (float RGB), made on demand."""


def _degradations(crf: int) -> dict[str, tuple[Callable, Callable, str]]:
    """name -> (per-frame degradation, clip codec, codec description)."""
    from . import codec
    from .data import camera_degrade
    from .independent import CLIP_BITS_PER_PIXEL, compress_clip, independent_degrade

    return {
        "camera": (camera_degrade, lambda frames: codec.h264(frames, crf=crf, gop=GOP),
                   f"H.264 (libx264 CRF {crf}, preset fast, GOP {GOP}, yuv420p)"),
        "independent": (independent_degrade, lambda frames: compress_clip(frames, gop=GOP),
                        f"MPEG-4 Part 2 ({CLIP_BITS_PER_PIXEL} bits/pixel, GOP {GOP}, yuv420p, no deblocking)"),
    }


DEGRADATION_NAMES = ("camera", "independent")


def make_clip(degradation: str, frames: int, static_frames: int, height: int, width: int, seed: int = 0,
              crf: int = 32) -> VideoClip:
    """The ramp and static clips of ``degradation`` (``camera`` or ``independent``), encoded and decoded.

    Args:
        degradation: which per-frame degradation and codec.
        frames: ramp frames (at least 3).
        static_frames: frames of the static scene and of its reference (at least 2).
        height, width: frame size.
        seed: camera and noise seed (the scene itself does not depend on it).
        crf: H.264 constant rate factor (``camera`` only).
    """
    from .codec import to_uint8

    degrade, compress, codec_text = _degradations(crf)[degradation]
    scene, first_width = canvas(height, width)
    exposures = ramp_exposures(frames)
    camera = (seed, zlib.crc32(degradation.encode()))

    def record(clean: Callable[[int], np.ndarray], exposure: Callable[[int], float], count: int, clip: int,
               encode: bool = True) -> list[np.ndarray]:
        low = [to_uint8(degrade(clean(t), ClipGenerator(camera, (seed, clip, t)), exposure=exposure(t),
                                compress=False)[0]) for t in range(count)]
        return compress(low) if encode else low

    def clean_ramp(t: int) -> np.ndarray:
        return pan_frame(scene, t, frames, height, width)

    y0, x0 = (scene.shape[0] - height) // 2, max(0, min((first_width - width) // 2, scene.shape[1] - width))
    still = np.ascontiguousarray(scene[y0 : y0 + height, x0 : x0 + width])
    return VideoClip(
        degradation=degradation, codec=codec_text, exposures=exposures,
        inputs=record(clean_ramp, lambda t: float(exposures[t]), frames, 1),
        static_inputs=record(lambda t: still, lambda t: STATIC_EXPOSURE, static_frames, 2, encode=False),
        static_reference=record(lambda t: still, lambda t: 1.0, static_frames, 3, encode=False),
        clean=clean_ramp,
    )


# ------------------------------------------------------------------------------------------------ metrics


def luma(image: np.ndarray) -> np.ndarray:
    """BT.601 luma of RGB values (what the codecs code), float64."""
    image = np.asarray(image, dtype=np.float64)
    return image[..., 0] * 0.299 + image[..., 1] * 0.587 + image[..., 2] * 0.114


def block_energy_ratio(image: np.ndarray, block: int = BLOCK) -> float:
    """Mean squared luma step across ``block``-pixel boundaries over the mean squared step elsewhere.

    Horizontal steps are y[:, j+1] - y[:, j]; the one between columns ``block*k - 1`` and ``block*k`` is on
    a boundary. Vertical steps likewise. Both directions are pooled.
    """
    y = luma(image)
    dx, dy = np.diff(y, axis=1) ** 2, np.diff(y, axis=0) ** 2
    on_x = (np.arange(1, y.shape[1]) % block) == 0
    on_y = (np.arange(1, y.shape[0]) % block) == 0
    edge_sum, edge_count = dx[:, on_x].sum() + dy[on_y].sum(), dx[:, on_x].size + dy[on_y].size
    inside_sum, inside_count = dx[:, ~on_x].sum() + dy[~on_y].sum(), dx[:, ~on_x].size + dy[~on_y].size
    edge = edge_sum / max(edge_count, 1)
    inside = inside_sum / max(inside_count, 1)
    return float((edge + 1e-12) / (inside + 1e-12))


def blockiness(output: np.ndarray, clean: np.ndarray) -> float:
    """``block_energy_ratio`` of the output over that of the clean frame (1.0: as blocky as the clean frame)."""
    return block_energy_ratio(output) / block_energy_ratio(clean)


def temporal_difference(frames: Sequence[np.ndarray]) -> float:
    """Mean absolute frame-to-frame difference, mean |f_t - f_t-1| over pixels, channels and t >= 1."""
    if len(frames) < 2:
        raise ValueError("need at least two frames")
    return float(np.mean([np.abs(np.asarray(b, np.float64) - np.asarray(a, np.float64)).mean()
                          for a, b in pairwise(frames)]))


def flicker_ratio(output: Sequence[np.ndarray], reference: Sequence[np.ndarray]) -> float:
    """``temporal_difference`` of ``output`` over that of ``reference`` (0: frozen, 1: as unsteady as the reference)."""
    return temporal_difference(output) / max(temporal_difference(reference), 1e-12)


def psnr(output: np.ndarray, reference: np.ndarray) -> float:
    """PSNR in dB for values in [0, 1]; ``inf`` for identical images."""
    mse = float(np.mean((np.asarray(output, np.float64) - np.asarray(reference, np.float64)) ** 2))
    return math.inf if mse == 0 else 10.0 * math.log10(1.0 / mse)


# --------------------------------------------------------------------------------------------- evaluation


def _enhancer(model, device: str, batch: int, denoise: float = 0.0) -> Callable[[list[np.ndarray]], Iterator[np.ndarray]]:
    """Frames (uint8 RGB) -> batches (N, H, W, 3) of enhanced float RGB in [0, 1]; the input itself without a model.

    ``denoise`` > 0 runs the outputs, in order, through the runtime's ``--denoise`` filter
    (``runtime.core.temporal.TemporalDenoiser``), started afresh for each clip.
    """

    def enhance(frames: list[np.ndarray]) -> Iterator[np.ndarray]:
        import torch

        from runtime.core.temporal import TemporalDenoiser

        denoiser = TemporalDenoiser(denoise) if denoise else None
        with torch.inference_mode():
            for i in range(0, len(frames), batch):
                x = np.stack(frames[i : i + batch]).astype(np.float32) / 255.0
                if model is not None:
                    y = model(torch.from_numpy(x).to(device).permute(0, 3, 1, 2))
                    x = y.float().clamp(0, 1).permute(0, 2, 3, 1).cpu().numpy()
                if denoiser is not None:
                    x = np.stack([denoiser(frame) for frame in x])
                yield x

    return enhance


def _frame_metrics(outputs: np.ndarray, cleans: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame PSNR and SSIM (torchmetrics, data range 1, outputs clipped to [0, 1]) of (N, H, W, 3) batches."""
    import torch
    from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure

    pred = torch.from_numpy(np.ascontiguousarray(outputs.transpose(0, 3, 1, 2))).clamp(0, 1)
    target = torch.from_numpy(np.ascontiguousarray(cleans.transpose(0, 3, 1, 2)))
    value_psnr = peak_signal_noise_ratio(pred, target, data_range=1.0, reduction="none", dim=(1, 2, 3))
    value_ssim = structural_similarity_index_measure(pred, target, data_range=1.0, reduction="none")
    return value_psnr.numpy(), value_ssim.numpy()


def strip_frames(exposures: np.ndarray) -> dict[int, str]:
    """Ramp frames shown in the strip: the darkest, one mid-way up (exposure near sqrt(darkest)), one at normal."""
    normal = np.flatnonzero(exposures == 1.0)
    rising = np.arange(normal[0]) if normal[0] > 0 else np.arange(len(exposures))
    mid = int(rising[np.argmin(np.abs(np.log(exposures[rising]) - 0.5 * np.log(exposures.min())))])
    rows = {int(np.argmin(exposures)): "dark", mid: "mid", int(normal[len(normal) // 2]): "normal"}
    return dict(sorted(rows.items()))


def evaluate(clip: VideoClip, model=None, device: str = "cpu", batch: int = 4, name: str = "input",
             panels: dict[int, np.ndarray] | None = None, denoise: float = 0.0) -> dict:
    """The figures of one model (None: the input itself) on one degradation's clips (see ``METRICS``).

    ``panels``, when given, receives the outputs of the ``strip_frames`` frames; ``denoise`` adds the
    runtime's temporal noise reduction after the model (``_enhancer``).
    """
    from tqdm import tqdm

    enhance = _enhancer(model, device, batch, denoise)
    shown = strip_frames(clip.exposures)
    scores: dict[str, list[float]] = {"psnr": [], "ssim": [], "psnr_dark": [], "ssim_dark": [], "blockiness": [],
                                      "well_exposed_psnr": []}
    total = len(clip.inputs) + len(clip.static_inputs)
    static: list[np.ndarray] = []
    with tqdm(total=total, desc=f"{clip.degradation}: {name}", unit="frame", leave=False, disable=None) as bar:
        t = 0
        for outputs in enhance(clip.inputs):
            cleans = np.stack([clip.clean(t + i) for i in range(len(outputs))])
            for out, clean, value_psnr, value_ssim in zip(outputs, cleans, *_frame_metrics(outputs, cleans)):
                scores["psnr"].append(float(value_psnr))
                scores["ssim"].append(float(value_ssim))
                exposure = clip.exposures[t]
                if exposure < DARK_BELOW:
                    scores["psnr_dark"].append(float(value_psnr))
                    scores["ssim_dark"].append(float(value_ssim))
                    scores["blockiness"].append(blockiness(out, clean))
                if exposure == 1.0:
                    scores["well_exposed_psnr"].append(psnr(out, clip.inputs[t].astype(np.float32) / 255.0))
                if panels is not None and t in shown:
                    panels[t] = out
                t += 1
            bar.update(len(outputs))
        for outputs in enhance(clip.static_inputs):
            static.extend(outputs)
            bar.update(len(outputs))
    reference = [f.astype(np.float32) / 255.0 for f in clip.static_reference]
    row = {k: float(np.mean(v)) if v else None for k, v in scores.items()}
    row["flicker"] = flicker_ratio(static, reference)
    row["static_difference"] = temporal_difference(static)
    row["reference_difference"] = temporal_difference(reference)
    return row


def _missed(row: dict) -> list[str]:
    missed = []
    if row["well_exposed_psnr"] is not None and row["well_exposed_psnr"] < TARGETS["well_exposed_psnr"]:
        missed.append("well-exposed")
    if row["blockiness"] is not None and row["blockiness"] > TARGETS["blockiness"]:
        missed.append("blockiness")
    if row["flicker"] > TARGETS["flicker"]:
        missed.append("flicker")
    return missed


def _put_text(image: np.ndarray, text: str, at: tuple[int, int], scale: float, boxed: bool) -> None:
    """Draw ``text`` on an 8-bit image in place: black, or white on a black box."""
    if boxed:
        (w, h), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
        cv2.rectangle(image, (at[0] - 3, at[1] - h - 3), (at[0] + w + 3, at[1] + base + 1), (0, 0, 0), cv2.FILLED)
    colour = (255, 255, 255) if boxed else (0, 0, 0)
    cv2.putText(image, text, at, cv2.FONT_HERSHEY_SIMPLEX, scale, colour, 1, cv2.LINE_AA)


def _join(images: list[np.ndarray], axis: int, gap: int) -> np.ndarray:
    """Images side by side (``axis`` 1) or stacked (0), ``gap`` white pixels apart."""
    shape = list(images[0].shape)
    shape[axis] = gap
    parts = [images[0]]
    for image in images[1:]:
        parts += [np.ones(shape, np.float32), image]
    return np.concatenate(parts, axis=axis)


def strip(clip: VideoClip, columns: dict[str, dict[int, np.ndarray]]) -> np.ndarray:
    """A labelled grid (float RGB): one row per ``strip_frames`` frame, columns input | each model | clean."""
    from .codec import to_uint8

    shown = strip_frames(clip.exposures)
    h, w = clip.inputs[0].shape[:2]
    scale = max(0.35, min(1.0, w / 700))
    gap = max(2, w // 160)
    header = round(34 * scale) + 6
    rows = [_join([clip.inputs[t].astype(np.float32) / 255.0, *(c[t] for c in columns.values()), clip.clean(t)], 1, gap)
            for t in shown]
    band = np.ones((header, rows[0].shape[1], 3), np.float32)
    image = to_uint8(np.concatenate([band, _join(rows, 0, gap)], axis=0))
    for i, name in enumerate(["input", *columns, "clean"]):
        _put_text(image, name, (i * (w + gap) + 4, header - 6), scale, boxed=False)
    for r, (t, kind) in enumerate(shown.items()):
        top = header + r * (h + gap)
        _put_text(image, f"{kind}: exposure {clip.exposures[t]:.3f}", (4, top + 4 + round(22 * scale)), scale,
                  boxed=True)
    return image.astype(np.float32) / 255.0


# -------------------------------------------------------------------------------------------------- command


def build_video_bench_parser() -> ArgumentParser:
    p = ArgumentParser(
        prog="python -m train.lowlight video-bench",
        description=(
            "Low-light checkpoints on generated compressed clips made from held-out photos: a pan with an exposure\n"
            f"ramp (dark {DARKEST} -> normal 1.0 for {HOLD_SHARE:.0%} of the frames -> dark) and a static dark scene, "
            "for the\ntraining degradation (camera, H.264) and an evaluation-only one (independent: raw Bayer "
            "noise,\nMPEG-4 Part 2). Reports PSNR/SSIM against the clean frames, blockiness (dark frames, x the "
            "clean\nframe's), PSNR of well-exposed frames against their input, and flicker on the static scene "
            "(x a\ngood-light recording's). Targets: well-exposed PSNR >= "
            f"{TARGETS['well_exposed_psnr']:g} dB, blockiness <= {TARGETS['blockiness']:g}x, "
            f"flicker <= {TARGETS['flicker']:g}x.\n\n"
            "    python -m train.lowlight video-bench --checkpoint runs/lowlight/best.ckpt --out video-bench/"),
    )
    p.add_argument("--checkpoint", action="append", default=[], metavar="CKPT",
                   help="a lowlight checkpoint or run folder; repeat for several (default: none, the input row only)")
    p.add_argument("--frames", type=bounded_int(10, 100_000), default=90, help="frames of the exposure ramp")
    p.add_argument("--static-frames", type=bounded_int(2, 100_000), default=None,
                   help=f"frames of the static scene and of its good-light reference (default: {STATIC_FRAMES})")
    p.add_argument("--size", type=image_size, default=(360, 640), metavar="HxW", help="frame size (default: 360x640)")
    p.add_argument("--denoise", type=bounded_float(0.0, 1.0, high_open=True), default=0.0, metavar="S",
                   help="also show each model followed by the runtime's temporal noise reduction of this strength "
                        "(python -m runtime enhance --denoise S); 0: not shown")
    p.add_argument("--seed", type=random_seed, default=0, help="seed of the camera and its noise (default: 0)")
    p.add_argument("--crf", type=bounded_int(0, 51), default=32, help="H.264 constant rate factor of the camera clips")
    p.add_argument("--degradations", nargs="+", choices=DEGRADATION_NAMES, default=list(DEGRADATION_NAMES),
                   help="camera: the training degradation with H.264; independent: the evaluation-only one")
    p.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda:0")
    p.add_argument("--batch-size", type=bounded_int(1, 256), default=4, help="frames per model call")
    p.add_argument("--out", type=Path, default=None, metavar="DIR",
                   help="also write DIR/video_bench.json and DIR/strip_<degradation>.png (input | models | clean)")
    return p


def _fmt(value: float | None, digits: int) -> str:
    if value is None:
        return "n/a"
    return "inf" if math.isinf(value) else f"{value:.{digits}f}"


def video_bench(argv: Sequence[str]) -> int:
    args = build_video_bench_parser().parse_args(argv)
    if args.out is not None and args.out.exists() and not args.out.is_dir():
        raise UserError(f"--out {args.out} is a file; give a folder")
    import torch

    try:
        device = torch.device(args.device)
    except RuntimeError as exc:
        raise UserError(f"--device {args.device!r}: {str(exc).splitlines()[0]}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"--device {args.device}: no CUDA GPU is visible to PyTorch here; use --device cpu")
    from .evaluate import load_lowlight

    models = {}
    for path in args.checkpoint:
        model, meta = load_lowlight(path, args.device)
        name = meta["name"] if meta["name"] not in models else f"{meta['name']} ({path})"
        models[name] = (model, str(path))
    height, width = args.size
    static_frames = args.static_frames or STATIC_FRAMES
    result = {
        "frames": args.frames, "static_frames": static_frames, "size": [height, width], "seed": args.seed,
        "crf": args.crf, "gop": GOP, "static_exposure": STATIC_EXPOSURE,
        "exposures": [round(float(e), 4) for e in ramp_exposures(args.frames)],
        "metrics": METRICS, "targets": TARGETS, "degradations": {}, "rows": [],
    }
    print(f"video-bench: {args.frames}-frame pan with exposure {DARKEST} -> 1.0 "
          f"({int((ramp_exposures(args.frames) == 1.0).sum())} frames) -> {DARKEST}; {static_frames}-frame static "
          f"scene at exposure {STATIC_EXPOSURE}; {height}x{width}, seed {args.seed}")
    strips, rows = {}, []
    for degradation in dict.fromkeys(args.degradations):
        clip = make_clip(degradation, args.frames, static_frames, height, width, args.seed, args.crf)
        result["degradations"][degradation] = clip.codec
        columns: dict[str, dict[int, np.ndarray]] = {}
        runs = [(name, model, path, 0.0) for name, (model, path) in {"input": (None, None), **models}.items()]
        if args.denoise:
            runs += [(f"{name} + denoise {args.denoise:g}", model, path, args.denoise)
                     for name, (model, path) in models.items()]
        for name, model, path, denoise in runs:
            panels: dict[int, np.ndarray] = {}
            row = evaluate(clip, model, args.device, args.batch_size, name, panels, denoise)
            rows.append((degradation, name, path, row))
            if model is not None:
                columns[name] = panels
        strips[degradation] = strip(clip, columns)
    print("degradations: " + "; ".join(f"{k}: {v}" for k, v in result["degradations"].items()))
    print("| degradation | method | PSNR (dB) | SSIM | PSNR dark (dB) | blockiness (x clean) "
          "| well-exposed PSNR vs input (dB) | flicker (x reference) | targets |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---|")
    for degradation, name, path, row in rows:
        missed = _missed(row)
        result["rows"].append({"degradation": degradation, "method": name, "checkpoint": path,
                               **{k: round(v, 6) if v is not None and math.isfinite(v) else None for k, v in row.items()},
                               "missed_targets": missed})
        targets = "met" if not missed else "missed: " + ", ".join(missed)
        print(f"| {degradation} | {name} | {_fmt(row['psnr'], 2)} | {_fmt(row['ssim'], 4)} "
              f"| {_fmt(row['psnr_dark'], 2)} | {_fmt(row['blockiness'], 3)} | {_fmt(row['well_exposed_psnr'], 2)} "
              f"| {_fmt(row['flicker'], 3)} | {targets} |")
    print(f"PSNR dark and blockiness: ramp frames with exposure < {DARK_BELOW}; blockiness 1.0 = as blocky as the "
          f"clean frame; flicker: static scene at exposure {STATIC_EXPOSURE} against the same scene recorded at "
          "exposure 1.0 by the same camera, both not compressed (1.0 = as unsteady); targets: well-exposed PSNR >= "
          f"{TARGETS['well_exposed_psnr']:g} dB, blockiness <= {TARGETS['blockiness']:g}, "
          f"flicker <= {TARGETS['flicker']:g}")
    if args.out is not None:
        from runtime.core.io import write_json

        from ..data.images import write_image

        args.out.mkdir(parents=True, exist_ok=True)
        for degradation, image in strips.items():
            write_image(args.out / f"strip_{degradation}.png", image)
        write_json(args.out / "video_bench.json", result)
        print(f"wrote {args.out / 'video_bench.json'} and "
              + ", ".join(str(args.out / f"strip_{d}.png") for d in strips))
    return 0
