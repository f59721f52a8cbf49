"""Relighting datasets: the on-disk format, its checks, and the seed's PatchRelightingDataset.

On-disk format (``--data PATH``), float32 NumPy arrays, channels last, one folder per split::

    PATH/
      meta.json              optional: {"light_intensity": I, ...}; I is fitted from the
                             training split when absent (it only serves the Lambertian baseline)
      train/distances.npy    (N, H, W)     distance from each surface point to the light
      train/cosines.npy      (N, H, W)     max(n.l, 0)
      train/albedo.npy       (N, H, W, C)  reflectance in [0, 1]
      train/normals.npy      (N, H, W, 3)  unit normals, x right, y down, z towards the camera
      train/targets.npy      (N, H, W, 3)  the image under that light, linear RGB in [0, 1]
      val/...  test/...      the same five arrays (optional; carved from train when absent)

Any renderer or capture rig that can write these five arrays can train the U-Net. The synthetic
scenes come from ``train.data.render``; ``sample_inputs`` draws export-parity inputs from them.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from runtime.core.errors import DatasetError

__all__ = [
    "ARRAY_NAMES", "SPLITS", "check_arrays", "save_dataset", "load_dataset", "split_arrays",
    "fit_light_intensity", "to_tensors", "PatchRelightingDataset", "sample_inputs",
]

ARRAY_NAMES = ("distances", "cosines", "albedo", "normals", "targets")
SPLITS = ("train", "val", "test")
_CHANNELS = {"distances": 1, "cosines": 1, "normals": 3, "targets": 3}


def check_arrays(arrays: dict[str, np.ndarray], where: str = "dataset") -> dict[str, np.ndarray]:
    """Validate one split's arrays; return them as float32 with distances and cosines as (N, H, W).

    Raises:
        DatasetError: naming the missing array, the mismatched shape or the bad values.
    """
    missing = [name for name in ARRAY_NAMES if name not in arrays]
    if missing:
        raise DatasetError(f"{where}: missing array(s) {', '.join(missing)} (need {', '.join(ARRAY_NAMES)})")
    out: dict[str, np.ndarray] = {}
    reference: tuple[int, int, int] | None = None
    for name in ARRAY_NAMES:
        a = np.asarray(arrays[name])
        if name in ("distances", "cosines") and a.ndim == 4 and a.shape[-1] == 1:
            a = a[..., 0]
        expected_ndim = 3 if name in ("distances", "cosines") else 4
        if a.ndim != expected_ndim:
            layout = "(N, H, W)" if expected_ndim == 3 else "(N, H, W, C)"
            raise DatasetError(f"{where}: {name} has shape {a.shape}; expected {layout}")
        if name in ("normals", "targets") and a.shape[-1] != 3:
            raise DatasetError(f"{where}: {name} has {a.shape[-1]} channels; expected 3")
        if reference is None:
            reference = a.shape[:3]
        elif a.shape[:3] != reference:
            raise DatasetError(
                f"{where}: {name} has {a.shape[0]} samples of {a.shape[1]}x{a.shape[2]}; "
                f"distances has {reference[0]} of {reference[1]}x{reference[2]}"
            )
        a = a.astype(np.float32, copy=False)
        if not np.isfinite(a).all():
            raise DatasetError(f"{where}: {name} contains NaN or infinite values")
        out[name] = a
    if reference[0] < 1:
        raise DatasetError(f"{where}: no samples")
    if (out["distances"] <= 0).any():
        raise DatasetError(f"{where}: distances must be positive")
    return out


def save_dataset(path: str | os.PathLike, splits: dict[str, dict[str, np.ndarray]], meta: dict | None = None) -> Path:
    """Write splits in the on-disk format. ``path`` must not exist; nothing is left on failure."""
    from runtime.core.io import atomic_dir

    path = Path(path)
    if path.exists():
        raise DatasetError(f"{path} already exists; choose a new folder")
    for split, arrays in splits.items():
        check_arrays(arrays, f"{path}/{split}")
    with atomic_dir(path) as tmp:
        for split, arrays in splits.items():
            (tmp / split).mkdir()
            for name in ARRAY_NAMES + tuple(k for k in arrays if k not in ARRAY_NAMES):
                if name in arrays:
                    np.save(tmp / split / f"{name}.npy", np.asarray(arrays[name], dtype=np.float32))
        (tmp / "meta.json").write_text(json.dumps(meta or {}, indent=2) + "\n")
    return path


def _load_split(folder: Path, where: str) -> dict[str, np.ndarray]:
    arrays = {}
    for name in ARRAY_NAMES:
        file = folder / f"{name}.npy"
        if not file.is_file():
            continue
        try:
            arrays[name] = np.load(file, mmap_mode="r", allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            raise DatasetError(f"{where}: cannot read {file.name}: {exc}") from None
    return check_arrays(arrays, where)


def load_dataset(path: str | os.PathLike) -> tuple[dict[str, dict[str, np.ndarray]], dict]:
    """Read a dataset folder; returns ``({split: arrays}, meta)`` with at least a ``train`` split.

    The five arrays may also lie directly in ``path`` (taken as the training split).
    """
    path = Path(path)
    if not path.exists():
        raise DatasetError(f"data path does not exist: {path}")
    if not path.is_dir():
        raise DatasetError(f"data path is not a folder: {path}")
    meta: dict = {}
    if (path / "meta.json").is_file():
        try:
            meta = json.loads((path / "meta.json").read_text())
        except json.JSONDecodeError as exc:
            raise DatasetError(f"{path / 'meta.json'}: not valid JSON ({exc})") from None
    splits: dict[str, dict[str, np.ndarray]] = {}
    for split in SPLITS:
        if (path / split).is_dir():
            splits[split] = _load_split(path / split, f"{path / split}")
    if "train" not in splits:
        if any((path / f"{name}.npy").exists() for name in ARRAY_NAMES):
            splits["train"] = _load_split(path, str(path))
        else:
            raise DatasetError(f"{path}: no train/ folder and no {', '.join(n + '.npy' for n in ARRAY_NAMES)}")
    shapes = {split: a["distances"].shape[1:] for split, a in splits.items()}
    channels = {split: a["albedo"].shape[-1] for split, a in splits.items()}
    if len(set(channels.values())) > 1:
        raise DatasetError(f"{path}: albedo channels differ between splits: {channels}")
    meta.setdefault("image_sizes", {k: list(v) for k, v in shapes.items()})
    return splits, meta


def split_arrays(arrays: dict[str, np.ndarray], fractions: tuple[float, ...], seed: int = 0) -> list[dict[str, np.ndarray]]:
    """Split one split's arrays by sample into parts of the given fractions (the rest goes first)."""
    n = len(arrays["distances"])
    order = np.random.default_rng(seed).permutation(n)
    counts = [max(1, int(round(f * n))) for f in fractions]
    if sum(counts) >= n:
        raise DatasetError(f"cannot split {n} samples into train and {len(fractions)} held-out part(s)")
    parts, start = [], n - sum(counts)
    parts.append({k: np.asarray(v)[np.sort(order[:start])] for k, v in arrays.items()})
    for c in counts:
        idx = np.sort(order[start : start + c])
        parts.append({k: np.asarray(v)[idx] for k, v in arrays.items()})
        start += c
    return parts


def fit_light_intensity(arrays: dict[str, np.ndarray], max_samples: int = 64) -> float:
    """The light intensity I that minimises the Lambertian baseline's squared error,
    targets ~ albedo * I * cos / d^2, over unsaturated pixels.

    Used when a dataset's meta.json does not state the intensity: the baseline then gets the best
    intensity it could have, which makes the network's gain over it a conservative figure.
    """
    n = min(len(arrays["distances"]), max_samples)
    shading = (np.asarray(arrays["cosines"][:n]) / np.asarray(arrays["distances"][:n]) ** 2)[..., None]
    basis = (np.asarray(arrays["albedo"][:n]) * shading).astype(np.float64)
    target = np.asarray(arrays["targets"][:n]).astype(np.float64)
    keep = target < 0.98
    denom = float((basis[keep] ** 2).sum())
    return float((basis[keep] * target[keep]).sum() / denom) if denom > 0 else 1.0


def to_tensors(arrays: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """Channels-last arrays to NCHW float32 tensors."""
    out = {}
    for name in ARRAY_NAMES:
        a = np.asarray(arrays[name], dtype=np.float32)
        if a.ndim == 3:
            a = a[..., None]
        out[name] = torch.from_numpy(np.array(a.transpose(0, 3, 1, 2), order="C"))  # owns its memory
    return out


class PatchRelightingDataset(Dataset):
    """Seed 000's patch dataset: tensors from the arrays, a patch size computed from the image size
    and the desired number of patches per image, and those patches as training samples.

    Args:
        arrays: one split's arrays (see ``check_arrays``).
        num_patches: desired patches per image; the patch side is the largest multiple of
            ``multiple`` not above sqrt(H * W / num_patches). ``None`` serves whole images.
        multiple: patch sides are multiples of this (8 suits the U-Net's three poolings).
        jitter: shift each patch by a random offset (up to half a patch) for augmentation.
        seed: seed of the jitter.
    """

    def __init__(
        self,
        arrays: dict[str, np.ndarray],
        num_patches: int | None = 16,
        multiple: int = 8,
        jitter: bool = False,
        seed: int = 0,
    ) -> None:
        self.tensors = to_tensors(check_arrays(arrays))
        n, _, h, w = self.tensors["distances"].shape
        self.num_images, self.height, self.width = n, h, w
        if num_patches is None:
            self.patch_h, self.patch_w, self.origins = h, w, [(0, 0)]
        else:
            if num_patches < 1:
                raise ValueError(f"num_patches must be >= 1, got {num_patches}")
            side = int(math.sqrt(h * w / num_patches)) // multiple * multiple
            side = min(max(side, multiple), h - h % multiple or h, w - w % multiple or w)
            self.patch_h = self.patch_w = side
            ys = np.linspace(0, h - side, max(1, h // side)).round().astype(int)
            xs = np.linspace(0, w - side, max(1, w // side)).round().astype(int)
            self.origins = [(int(y), int(x)) for y in ys for x in xs]
        self.jitter = jitter
        self._rng = np.random.default_rng(seed)

    @property
    def patch_size(self) -> tuple[int, int]:
        return self.patch_h, self.patch_w

    def __len__(self) -> int:
        return self.num_images * len(self.origins)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        image, k = divmod(index, len(self.origins))
        y, x = self.origins[k]
        if self.jitter and len(self.origins) > 1:
            y = int(np.clip(y + self._rng.integers(-self.patch_h // 2, self.patch_h // 2 + 1), 0, self.height - self.patch_h))
            x = int(np.clip(x + self._rng.integers(-self.patch_w // 2, self.patch_w // 2 + 1), 0, self.width - self.patch_w))
        return {
            name: t[image, :, y : y + self.patch_h, x : x + self.patch_w] for name, t in self.tensors.items()
        }


def sample_inputs(meta: dict, batch: int, height: int, width: int, seed: int) -> dict[str, np.ndarray]:
    """Realistic inputs for export parity and the benchmarks: rendered scenes (``train.data.render``)."""
    from ..data.images import stack_nchw
    from ..data.render import RenderConfig, render_sample

    cfg = RenderConfig(height=height, width=width, shadow_steps=16)
    samples = [render_sample(seed + i, cfg) for i in range(batch)]
    channels = meta["config"].get("albedo_channels", 3)
    albedo = [s.albedo.mean(-1, keepdims=True) if channels == 1 else s.albedo for s in samples]
    return {"distances": stack_nchw([s.distances for s in samples]), "cosines": stack_nchw([s.cosines for s in samples]),
            "albedo": stack_nchw(albedo), "normals": stack_nchw([s.normals for s in samples])}
