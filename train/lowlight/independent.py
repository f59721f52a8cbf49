"""A second low-light degradation, written apart from the training one and used only for evaluation.

``independent_degrade`` has ``data.camera_degrade``'s contract (``(clean, rng, exposure=None,
compress=True) -> (low, target)``) but models the camera differently, so that a model which has only
learnt to invert the training pipeline shows it here. How it differs from ``camera_degrade``:

- **Noise placement.** ``camera_degrade`` adds Poisson-Gaussian noise to all three channels of every
  pixel of the linear sRGB image, at the output resolution. Here the scene is taken back to camera space
  (inverse colour-correction matrix, white-balance gains divided out) and sampled on an RGGB Bayer
  mosaic of twice the output resolution (a video mode's sensor readout), one colour per photosite. Shot
  noise (Poisson, 800-8,000 electrons at full scale per photosite, log-uniform), Gaussian read noise
  (0.03-0.3% of full scale, log-uniform) and row (banding) noise (10-50% of the read noise, one offset
  per sensor row) go into that mosaic, which a 12-bit converter with a black level of 256 digitises and
  the ISP clips at black. OpenCV's edge-aware demosaicking then spreads the noise into correlated,
  coloured grain, 2x2 binning brings it to the output size, and the white-balance gains (red x1.6-2.4,
  blue x1.3-2.0) and the colour-correction matrix amplify and mix it per channel, so that red and blue
  are noisier than green. No digital gain (ISO) after the noise: a dark scene stays dark.
- **Colour.** A colour-correction matrix (a typical sensor's, blended with identity at 50-100%) and a
  white-balance estimate off by up to +-5% per channel, instead of plain per-channel gains of +-25%.
- **Tone curve.** The exact piecewise sRGB OETF (linear toe below 0.0031308, 2.4 exponent above) after a
  filmic highlight shoulder (linear light above a knee of 0.75-1.0 rolled off by tanh), instead of a
  power-law gamma of 1.8-2.6 with, half the time, a mid-grey S-curve.
- **Compression.** FFmpeg's MPEG-4 Part 2 encoder (``mpeg4``: 8x8 DCT, MPEG-4 quantisation, no
  deblocking filter): one intra frame at a fixed quantiser of 3-12 for stills, and for clips
  (``compress_clip``) the whole clip at ``CLIP_BITS_PER_PIXEL``, instead of JPEG (quality 30-92),
  libx264 intra frames (CRF 22-40) or an H.264 clip.
- **Exposure.** ``None`` draws 1.0 for a fifth of the images, otherwise log-uniform 0.01-0.5
  (``camera_degrade``: a quarter, 0.02-0.7).
- **Target.** Always the clean image, also at normal exposure (``camera_degrade``: the degraded input
  itself at exposure 1.0).
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from runtime.core.errors import DatasetError

from .codec import mpeg4
from .data import auto_expose, random_crop, to_tensor

__all__ = [
    "CLIP_BITS_PER_PIXEL",
    "IndependentPairs",
    "compress_clip",
    "independent_degrade",
    "srgb_eotf",
    "srgb_oetf",
]

NORMAL_SHARE = 0.2
"""Share of draws at normal exposure (1.0) when ``exposure`` is None."""
DARKEST, BRIGHTEST = 0.01, 0.5
"""Range of the other exposures (log-uniform)."""
CLIP_BITS_PER_PIXEL = 0.05
"""MPEG-4 Part 2 bit rate of evaluation clips, in bits per pixel per frame (at 30 frames/s: 350 kbit/s at 360x640)."""
ADC_BITS, BLACK_LEVEL = 12, 256

# A typical camera-to-sRGB colour-correction matrix (rows sum to 1, so grey stays grey).
_CCM = np.array([[1.78, -0.62, -0.16],
                 [-0.24, 1.58, -0.34],
                 [0.03, -0.55, 1.52]], dtype=np.float64)


def srgb_eotf(encoded: np.ndarray) -> np.ndarray:
    """sRGB values to linear light (IEC 61966-2-1, piecewise)."""
    x = np.clip(encoded, 0.0, 1.0)
    return np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4)


def srgb_oetf(linear: np.ndarray) -> np.ndarray:
    """Linear light to sRGB values (IEC 61966-2-1, piecewise: 12.92 x below 0.0031308, else 1.055 x^(1/2.4) - 0.055)."""
    x = np.clip(linear, 0.0, 1.0)
    return np.where(x <= 0.0031308, 12.92 * x, 1.055 * np.power(x, 1.0 / 2.4) - 0.055)


def _shoulder(linear: np.ndarray, knee: float) -> np.ndarray:
    """Filmic highlight roll-off: identity below ``knee``, tanh compression above it (1.0: none)."""
    if knee >= 1.0:
        return linear
    span = 1.0 - knee
    return np.where(linear <= knee, linear, knee + span * np.tanh((linear - knee) / span))


def _log_uniform(rng: np.random.Generator, low: float, high: float) -> float:
    return float(np.exp(rng.uniform(np.log(low), np.log(high))))


def independent_degrade(clean: np.ndarray, rng: np.random.Generator, exposure: float | None = None,
                        compress: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """A raw-sensor recording of a clean sRGB float32 (H, W, 3) image in [0, 1]: ``(low, target)``, float32.

    Args:
        clean: the scene, sRGB in [0, 1].
        rng: draws the camera (gains, matrix, noise levels, curve, quantiser) first, then the noise.
        exposure: linear scale, 1.0 = normal; None draws one (see ``NORMAL_SHARE``, ``DARKEST``).
        compress: False skips the MPEG-4 intra frame, so that a caller can compress a clip
            (``compress_clip``).

    Returns:
        The degraded image (8-bit values) and the target, which is always ``clean``.
    """
    clean = np.clip(np.asarray(clean, dtype=np.float32), 0.0, 1.0)
    # The camera: every parameter first, then the noise fields.
    if exposure is None:
        exposure = 1.0 if rng.random() < NORMAL_SHARE else _log_uniform(rng, DARKEST, BRIGHTEST)
    wb = np.array([rng.uniform(1.6, 2.4), 1.0, rng.uniform(1.3, 2.0)])
    wb_error = rng.uniform(0.95, 1.05, 3)
    ccm = np.eye(3) + rng.uniform(0.5, 1.0) * (_CCM - np.eye(3))
    electrons = _log_uniform(rng, 800.0, 8000.0)
    read = _log_uniform(rng, 0.0003, 0.003)
    row = read * rng.uniform(0.1, 0.5)
    knee = rng.uniform(0.75, 1.0)
    quantiser = int(rng.integers(3, 13))

    h, w = clean.shape[:2]
    scene = cv2.resize(clean, (2 * w, 2 * h), interpolation=cv2.INTER_CUBIC)  # the sensor has twice the resolution
    camera = srgb_eotf(scene) @ np.linalg.inv(ccm).T.astype(np.float32) / wb.astype(np.float32)  # what the filters see
    camera = np.clip(camera * exposure, 0.0, None)
    mosaic = np.empty(camera.shape[:2])
    mosaic[0::2, 0::2] = camera[0::2, 0::2, 0]
    mosaic[0::2, 1::2] = camera[0::2, 1::2, 1]
    mosaic[1::2, 0::2] = camera[1::2, 0::2, 1]
    mosaic[1::2, 1::2] = camera[1::2, 1::2, 2]

    signal = rng.poisson(mosaic * electrons) / electrons
    signal = signal + rng.normal(0.0, read, mosaic.shape) + rng.normal(0.0, row, (mosaic.shape[0], 1))
    white = 2**ADC_BITS - 1
    digital = np.clip(np.round(signal * (white - BLACK_LEVEL) + BLACK_LEVEL), 0, white)
    raw = np.clip(digital - BLACK_LEVEL, 0, None).astype(np.uint16)  # the ISP clips at black
    rgb = cv2.cvtColor(raw, cv2.COLOR_BayerBG2RGB_EA).astype(np.float32) / (white - BLACK_LEVEL)  # OpenCV's BG = RGGB
    rgb = cv2.resize(rgb, (w, h), interpolation=cv2.INTER_AREA).astype(np.float64)  # 2x2 binning to the output size

    linear = (rgb * (wb * wb_error)) @ ccm.T
    encoded = srgb_oetf(_shoulder(np.clip(linear, 0.0, None), knee))
    low = (np.round(np.clip(encoded, 0.0, 1.0) * 255.0) / 255.0).astype(np.float32)
    if compress:
        low = mpeg4([low], qscale=quantiser)[0].astype(np.float32) / 255.0
    return low, clean.copy()


def compress_clip(frames: list[np.ndarray], gop: int = 30) -> list[np.ndarray]:
    """The evaluation degradation's clip codec: MPEG-4 Part 2 at ``CLIP_BITS_PER_PIXEL``; uint8 frames back."""
    return mpeg4(frames, bits_per_pixel=CLIP_BITS_PER_PIXEL, gop=gop)


class IndependentPairs(Dataset):
    """Fixed held-out pairs degraded by ``independent_degrade``: index ``i`` always gives the same pair.

    Crops and auto-exposure are drawn as ``SyntheticPairs(fixed=True)`` draws them from the same seed, so
    both degradations are measured on the same scenes.
    """

    def __init__(self, photos: list[np.ndarray], length: int, size: int, seed: int = 0) -> None:
        if not photos:
            raise DatasetError("no clean photos to make pairs from")
        self.photos, self.length, self.size, self.seed = photos, length, size, seed

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        rng = np.random.default_rng((self.seed, index))
        (high,) = random_crop([self.photos[index % len(self.photos)]], self.size, rng, flip=False)
        low, target = independent_degrade(auto_expose(high, rng), rng)
        return {"low": to_tensor(low), "high": to_tensor(target)}
