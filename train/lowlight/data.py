"""Low-light image pairs: the seed's folder layout, LOL-v1, and synthetic degradation of clean photos.

Seed 003 layout (file names identical in low/ and high/)::

    DATA/1_train/<subset>/{low,high}/   DATA/2_valid/<subset>/{low,high}/
    DATA/3_bench/<subset>/{low,high}/   DATA/4_infer/<subset>/low/   (high/ optional)

LOL-v1 layout: ``DATA/our485/{low,high}`` (training) and ``DATA/eval15/{low,high}`` (validation,
benchmark and inference). A folder holding ``low/`` and ``high/`` directly also works for any stage.

Synthetic pairs start from a crop of a clean photo, auto-exposed so that its mean brightness is that
of a well-exposed photograph (the reference), then record it the way a camera would (``camera_degrade``,
the default): linear light, an exposure from very dark to normal, a white-balance error,
Poisson-Gaussian sensor noise before the tone curve, a random tone curve, 8 bits, and JPEG or H.264
compression. At normal exposure the target is the recording itself, so a model learns to leave
well-exposed frames alone. ``degrade`` (``--degradation classic``) is the first generation's: darker
only, no compression. Random crops and flips come from a seeded generator. Image files are read and written by
``train.data.images`` (shared with the other families).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from runtime.core.errors import DatasetError

from ..data.images import IMAGE_EXTENSIONS, read_image, stack_nchw
from .codec import h264_intra, to_uint8

__all__ = [
    "STAGES", "LOL_STAGES", "SPLIT_SEEDS", "Pair", "find_pairs", "degrade", "camera_degrade", "classic_degrade",
    "compress_frame", "DEGRADATIONS",
    "photo_split", "PairDataset", "SyntheticPairs", "to_tensor", "sample_inputs",
]

STAGES = {"train": "1_train", "valid": "2_valid", "bench": "3_bench", "infer": "4_infer"}
LOL_STAGES = {"train": "our485", "valid": "eval15", "bench": "eval15", "infer": "eval15"}
# Held-out photographs: never used to make training pairs.
VALID_PHOTOS = ("rocket",)
TEST_PHOTOS = ("chelsea", "coffee")
# Seed offsets of the fixed synthetic validation and test pairs (training draws from ``seed`` itself).
SPLIT_SEEDS = {"valid": 1_000_000, "test": 2_000_000}


@dataclass(frozen=True)
class Pair:
    """A low-light image, its reference (None where a stage has no high/), and its subset's name."""

    low: Path
    high: Path | None
    subset: str


def _images(folder: Path) -> dict[str, Path]:
    return {p.name: p for p in sorted(folder.iterdir()) if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file()}


def _pair_folder(folder: Path, subset: str, require_high: bool) -> list[Pair]:
    low_dir, high_dir = folder / "low", folder / "high"
    if not low_dir.is_dir():
        raise DatasetError(f"{folder}: no low/ folder")
    lows = _images(low_dir)
    if not high_dir.is_dir():
        if require_high:
            raise DatasetError(f"{folder}: no high/ folder")
        return [Pair(p, None, subset) for p in lows.values()]
    highs = _images(high_dir)
    only_low, only_high = sorted(set(lows) - set(highs)), sorted(set(highs) - set(lows))
    if only_low or only_high:
        parts = []
        if only_low:
            parts.append(f"{len(only_low)} low image(s) without a high one: {_names(only_low)}")
        if only_high:
            parts.append(f"{len(only_high)} high image(s) without a low one: {_names(only_high)}")
        raise DatasetError(f"{folder}: " + "; ".join(parts))
    return [Pair(lows[name], highs[name], subset) for name in lows]


def _names(names: list[str], most: int = 5) -> str:
    return ", ".join(names[:most]) + (f" and {len(names) - most} more" if len(names) > most else "")


def find_pairs(root: str | os.PathLike, stage: str, require_high: bool = True) -> list[Pair]:
    """Discover the image pairs of ``stage`` (train, valid, bench, infer) under ``root``.

    Raises:
        DatasetError: naming the folder and the unpaired files, or saying which layout was expected.
    """
    root = Path(root)
    if not root.exists():
        raise DatasetError(f"data path does not exist: {root}")
    if not root.is_dir():
        raise DatasetError(f"data path is not a folder: {root}")
    if stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r}")
    pairs: list[Pair] = []
    if (root / STAGES[stage]).is_dir():
        subsets = sorted(p for p in (root / STAGES[stage]).iterdir() if p.is_dir())
        if not subsets:
            raise DatasetError(f"{root / STAGES[stage]}: no <subset>/low,high folders")
        for subset in subsets:
            pairs += _pair_folder(subset, subset.name, require_high)
    elif (root / LOL_STAGES[stage]).is_dir():
        pairs = _pair_folder(root / LOL_STAGES[stage], LOL_STAGES[stage], require_high)
    elif (root / "low").is_dir():
        pairs = _pair_folder(root, root.name, require_high)
    else:
        raise DatasetError(
            f"{root}: expected {STAGES[stage]}/<subset>/low,high (seed layout), "
            f"{LOL_STAGES[stage]}/low,high (LOL-v1) or low/ and high/ folders"
        )
    if not pairs:
        raise DatasetError(f"{root}: no images for stage {stage!r}")
    return pairs


def degrade(clean: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A realistic low-light version of a clean sRGB image in [0, 1] (same shape, float32).

    Exposure x0.04-0.25, per-channel colour cast +-20%, Poisson shot noise (1,000-6,000 electrons at
    full scale, a phone sensor's range) plus Gaussian read noise (0.05-0.3% of full scale), camera
    gamma 2.0-2.4, 8-bit quantisation.
    """
    linear = np.clip(clean, 0.0, 1.0).astype(np.float32) ** 2.2
    cast = rng.uniform(0.8, 1.2, 3).astype(np.float32)
    cast /= cast.mean()
    linear = linear * rng.uniform(0.04, 0.25) * cast
    electrons = rng.uniform(1000.0, 6000.0)
    noisy = rng.poisson(linear * electrons).astype(np.float32) / electrons
    noisy += rng.normal(0.0, rng.uniform(0.0005, 0.003), linear.shape).astype(np.float32)
    encoded = np.clip(noisy, 0.0, 1.0) ** (1.0 / rng.uniform(2.0, 2.4))
    return (np.round(encoded * 255.0) / 255.0).astype(np.float32)


def _tone_curve(linear: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A camera's tone curve, drawn at random: a plain gamma (1.8-2.6) or a gamma with a gentle S-shaped shoulder."""
    encoded = np.clip(linear, 0.0, 1.0) ** (1.0 / rng.uniform(1.8, 2.6))
    if rng.random() < 0.5:  # contrast around mid-grey, anchored at 0 and 1: x + k x (1 - x) (2x - 1)
        encoded = encoded + rng.uniform(0.0, 0.6) * encoded * (1.0 - encoded) * (2.0 * encoded - 1.0)
    return encoded


def compress_frame(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """JPEG (quality 30-92) or an H.264 intra frame (libx264, CRF 22-40) of an 8-bit-valued sRGB image.

    Both work on 8x8 (JPEG) or 4x4/8x8 (H.264) transform blocks of 4:2:0 YCbCr, so dark flat areas come
    back as the block grids that every camera stream carries. H.264 needs PyAV; without it JPEG is used.
    """
    rgb8 = to_uint8(image)
    if rng.random() < 0.5:
        try:
            return h264_intra(rgb8, int(rng.integers(22, 41)), ("superfast", "veryfast", "medium")[int(rng.integers(3))])
        except ImportError:
            pass
    ok, data = cv2.imencode(".jpg", rgb8[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(30, 93))])
    if not ok:
        raise RuntimeError("OpenCV could not encode a JPEG")
    return cv2.imdecode(data, cv2.IMREAD_COLOR)[..., ::-1].astype(np.float32) / 255.0


NORMAL_EXPOSURE_SHARE = 0.25
"""Share of camera-pipeline pairs taken at normal exposure, whose target is the degraded input itself."""


def camera_degrade(clean: np.ndarray, rng: np.random.Generator, exposure: float | None = None,
                   compress: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """A camera's recording of a clean sRGB scene in [0, 1] at some exposure: ``(low, target)``, float32.

    Linear light (sRGB curve inverted), exposure (``None``: 1.0 for a quarter of the draws, otherwise
    log-uniform 0.02-0.7; a given value is used as is), a white-balance error (per-channel gains
    +-25%), Poisson shot noise (500-8,000 electrons at full scale) and Gaussian read noise (0.05-0.4%)
    on the linear signal, with half the draws raised by a digital gain (ISO, x1-4) after the noise,
    a random tone curve (``_tone_curve``), 8-bit quantisation and, unless ``compress`` is False,
    JPEG or H.264 compression (``compress_frame``).

    The target is the clean scene, except at normal exposure (1.0), where it is the degraded input
    itself: a well-exposed frame is to be left alone, whatever its small noise or white balance.
    """
    normal = exposure is None and rng.random() < NORMAL_EXPOSURE_SHARE
    if exposure is None:
        exposure = 1.0 if normal else float(np.exp(rng.uniform(np.log(0.02), np.log(0.7))))
    linear = _srgb_to_linear(np.clip(clean, 0.0, 1.0).astype(np.float32))
    balance = rng.uniform(0.75, 1.25, 3).astype(np.float32)
    balance /= balance.mean()
    gain = 1.0
    if exposure < 0.5 and rng.random() < 0.5:  # the camera raises the gain instead of the exposure time
        gain = float(rng.uniform(1.0, min(4.0, 0.7 / exposure)))
    signal = linear * (exposure / gain) * balance
    electrons = rng.uniform(500.0, 8000.0)
    noisy = rng.poisson(np.clip(signal, 0.0, None) * electrons).astype(np.float32) / electrons
    noisy += rng.normal(0.0, rng.uniform(0.0005, 0.004), signal.shape).astype(np.float32)
    encoded = np.round(np.clip(_tone_curve(noisy * gain, rng), 0.0, 1.0) * 255.0) / 255.0
    low = compress_frame(encoded, rng) if compress else encoded.astype(np.float32)
    target = low if exposure == 1.0 else clean.astype(np.float32)
    return low.astype(np.float32), target


def _srgb_to_linear(image: np.ndarray) -> np.ndarray:
    return np.where(image <= 0.04045, image / 12.92, ((image + 0.055) / 1.055) ** 2.4).astype(np.float32)


def classic_degrade(clean: np.ndarray, rng: np.random.Generator, exposure: float | None = None,
                    compress: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """``degrade`` with the camera pipeline's signature (``exposure`` and ``compress`` are ignored)."""
    return degrade(clean, rng), clean.astype(np.float32)


DEGRADATIONS = {"camera": camera_degrade, "classic": classic_degrade}
"""Training degradations by name: ``camera`` (the default) and ``classic`` (the first generation's)."""


# scikit-image's bundled images used as clean photos (those that load without a download).
LOWLIGHT_PHOTOS = (
    "astronaut", "stereo_motorcycle", "hubble_deep_field", "retina", "immunohistochemistry", "camera", "moon",
    "coins", "clock", "brick", "grass", "gravel", "rocket", "chelsea", "coffee",
)


@lru_cache(maxsize=1)
def _bundled_photos() -> dict[str, np.ndarray]:
    import skimage.data

    photos = {}
    for name in LOWLIGHT_PHOTOS:
        try:
            image = getattr(skimage.data, name)()
        except (AttributeError, ModuleNotFoundError, OSError):  # not shipped in this scikit-image
            continue
        image = image[0] if isinstance(image, tuple) else image  # stereo pairs: the left view
        image = np.asarray(image, dtype=np.float32) / 255.0
        if image.ndim == 2:
            image = np.repeat(image[..., None], 3, axis=2)
        photos[name] = np.ascontiguousarray(image[..., :3])
    return photos


VALID_STRIP = 0.3


def photo_split(split: str) -> list[np.ndarray]:
    """scikit-image's bundled photos for ``split``.

    ``train``: the left 70% of each training photo. ``valid``: the right 30% of each training photo
    plus the whole of ``rocket``. ``test``: ``chelsea`` and ``coffee``, never seen in training or
    validation, so held-out figures measure generalisation to new scenes.
    """
    photos = _bundled_photos()
    training = [photos[n] for n in photos if n not in VALID_PHOTOS + TEST_PHOTOS]
    cut = [round(p.shape[1] * (1 - VALID_STRIP)) for p in training]
    if split == "train":
        return [p[:, :c] for p, c in zip(training, cut)]
    if split == "valid":
        return [p[:, c:] for p, c in zip(training, cut)] + [photos[n] for n in VALID_PHOTOS if n in photos]
    if split == "test":
        return [photos[n] for n in TEST_PHOTOS if n in photos]
    raise ValueError(f"unknown split {split!r}")


def jitter_photo(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Widen a small photo collection: random saturation (x0.6-1.4)."""
    grey = image.mean(axis=-1, keepdims=True)
    return np.clip(grey + (image - grey) * rng.uniform(0.6, 1.4), 0.0, 1.0).astype(np.float32)


def auto_expose(image: np.ndarray, rng: np.random.Generator, target: tuple[float, float] = (0.35, 0.5)) -> np.ndarray:
    """Scale a clean crop's exposure (in linear light) so its mean sRGB value falls in ``target``.

    References of real low-light datasets are well-exposed photographs; bundled photos are not
    (a deep-sky image is nearly black). Highlights pushed past white clip, as in a camera.
    """
    goal = rng.uniform(*target)
    linear = np.clip(image, 0.0, 1.0) ** 2.2
    gain = 1.0
    for _ in range(3):  # clipping makes the mean a little lower than the plain power law predicts
        mean = float((np.clip(linear * gain, 0.0, 1.0) ** (1 / 2.2)).mean())
        gain *= (goal / max(mean, 1e-4)) ** 2.2
    return (np.clip(linear * gain, 0.0, 1.0) ** (1 / 2.2)).astype(np.float32)


def folder_photos(folder: str | os.PathLike) -> list[np.ndarray]:
    """Clean photos from a user's folder (every readable image file, sorted by name)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DatasetError(f"photo folder does not exist: {folder}")
    files = [p for p in sorted(folder.iterdir()) if p.suffix.lower() in IMAGE_EXTENSIONS]
    if not files:
        raise DatasetError(f"{folder}: no image files")
    return [read_image(p) for p in files]


def random_crop(images: list[np.ndarray], size: int, rng: np.random.Generator, flip: bool = True,
                zoom: tuple[float, float] | None = None) -> list[np.ndarray]:
    """The same random crop (and flips) of each image; images smaller than ``size`` are upscaled first.

    ``zoom`` draws a scale from that range and resizes the images by it before cropping.
    """
    if zoom is not None:
        z = rng.uniform(*zoom)
        h, w = images[0].shape[:2]
        images = [cv2.resize(im, (max(1, round(w * z)), max(1, round(h * z))), interpolation=cv2.INTER_AREA)
                  for im in images]
    h, w = images[0].shape[:2]
    if min(h, w) < size:
        scale = size / min(h, w)
        images = [cv2.resize(im, (max(size, round(w * scale)), max(size, round(h * scale))), interpolation=cv2.INTER_CUBIC)
                  for im in images]
        h, w = images[0].shape[:2]
    y, x = rng.integers(0, h - size + 1), rng.integers(0, w - size + 1)
    out = [im[y : y + size, x : x + size] for im in images]
    if flip and rng.random() < 0.5:
        out = [im[:, ::-1] for im in out]
    if flip and rng.random() < 0.5:
        out = [im[::-1] for im in out]
    return [np.ascontiguousarray(im) for im in out]


def to_tensor(image: np.ndarray) -> torch.Tensor:
    """(H, W, 3) float array to a (3, H, W) tensor."""
    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1), dtype=np.float32))


class _WorkerDraws:
    """Random draws for training items: ``self._rng`` in the main process, and in each DataLoader worker
    its own generator (a copy of the parent's would give every worker the same items)."""

    seed: int
    _rng: np.random.Generator

    def _generator(self) -> np.random.Generator:
        info = torch.utils.data.get_worker_info()
        if info is None:
            return self._rng
        if getattr(self, "_worker", None) != info.id:
            self._worker, self._rng = info.id, np.random.default_rng((self.seed, info.id + 1))
        return self._rng


class SyntheticPairs(_WorkerDraws, Dataset):
    """Pairs made on the fly from clean photos: ``length`` random crops of ``size`` per epoch.

    References are auto-exposed crops (``auto_expose``) degraded by ``DEGRADATIONS[degradation]``. With ``fixed=True`` every index always
    gives the same pair (for validation and test sets); otherwise crops, zoom, flips, colour jitter
    and degradations are drawn from a generator seeded with ``seed``.
    """

    def __init__(self, photos: list[np.ndarray], length: int, size: int, seed: int = 0, fixed: bool = False,
                 degradation: str = "camera") -> None:
        if not photos:
            raise DatasetError("no clean photos to make pairs from")
        if degradation not in DEGRADATIONS:
            raise ValueError(f"unknown degradation {degradation!r}; choose one of {', '.join(DEGRADATIONS)}")
        self.photos, self.length, self.size, self.seed, self.fixed = photos, length, size, seed, fixed
        self.degradation = degradation
        self._rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        if self.fixed:
            rng = np.random.default_rng((self.seed, index))
            (high,) = random_crop([self.photos[index % len(self.photos)]], self.size, rng, flip=False)
        else:
            rng = self._generator()
            photo = self.photos[int(rng.integers(len(self.photos)))]
            (high,) = random_crop([photo], self.size, rng, zoom=(0.4, 1.0))
            high = jitter_photo(high, rng)
        low, high = DEGRADATIONS[self.degradation](auto_expose(high, rng), rng)
        return {"low": to_tensor(low), "high": to_tensor(high)}


class PairDataset(_WorkerDraws, Dataset):
    """Pairs from files. Training draws random crops of ``size`` with flips; otherwise whole images
    (``size=None``) or a centre crop. Images are decoded once and kept as 8-bit in memory."""

    def __init__(self, pairs: list[Pair], size: int | None = None, train: bool = False, seed: int = 0) -> None:
        self.pairs, self.size, self.train, self.seed = pairs, size, train, seed
        self._rng = np.random.default_rng(seed)
        self._cache: dict[int, tuple[np.ndarray, np.ndarray | None]] = {}

    def __len__(self) -> int:
        return len(self.pairs)

    def load(self, index: int) -> tuple[np.ndarray, np.ndarray | None]:
        if index not in self._cache:
            pair = self.pairs[index]
            low = read_image(pair.low)
            high = read_image(pair.high) if pair.high is not None else None
            if high is not None and high.shape != low.shape:
                raise DatasetError(
                    f"{pair.low.name}: low is {low.shape[1]}x{low.shape[0]} but high is {high.shape[1]}x{high.shape[0]}"
                )
            self._cache[index] = (low, high)
        return self._cache[index]

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        low, high = self.load(index)
        images = [low] if high is None else [low, high]
        if self.size is not None:
            if self.train:
                images = random_crop(images, self.size, self._generator())
            else:
                h, w = low.shape[:2]
                s = min(self.size, h, w)
                y, x = (h - s) // 2, (w - s) // 2
                images = [im[y : y + s, x : x + s] for im in images]
        item = {"low": to_tensor(images[0]), "index": torch.tensor(index)}
        if high is not None:
            item["high"] = to_tensor(images[1])
        return item


def _resize(image: np.ndarray, height: int, width: int) -> np.ndarray:
    interp = cv2.INTER_AREA if image.shape[0] >= height else cv2.INTER_LINEAR
    return cv2.resize(image, (width, height), interpolation=interp)


def sample_inputs(meta: dict, batch: int, height: int, width: int, seed: int) -> dict[str, np.ndarray]:
    """Realistic inputs for export parity and the benchmarks: held-out photos degraded to low light."""
    rng = np.random.default_rng(seed)
    photos = photo_split("test")
    frames = [degrade(_resize(photos[i % len(photos)], height, width), rng) for i in range(batch)]
    return {"image": stack_nchw(frames)}
