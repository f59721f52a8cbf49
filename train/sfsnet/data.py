"""Data for the SfSNet family (seed 002): synthetic faces under SH lighting, and SfSNet's folder layout.

Synthetic scenes
----------------
A height field seen from above (the relighting renderer's terrain, spheres and boxes) carrying one
or two face-like ellipsoids with a nose, brow ridge, eye sockets, cheeks, lips and fine bumps. The
light is an environment in spherical harmonics plus one distant key light:

    S_sh   = sh_shading(n, L),       L = L_env + directional_sh(d, c)    (the 27 ground-truth values)
    S_true = AO * sh_shading(n, L_env) + c * max(n.d, 0) * V + c * k_s * (n.h)^s * V
    image  = clip(albedo * S_true, 0, 1),    residue = S_true - S_sh

V is the key light's soft cast shadow, AO a cavity term and the last term a white highlight, so the
residue holds exactly what 27 coefficients cannot: shadows, highlights, occlusion and the error of
the second-order approximation of the clamped cosine. Each sample also carries a second light
(``relit_*``): the same surface rendered under another random environment, for relighting figures.

SfSNet's folder layout (``--syn_data DIR``)
-------------------------------------------
As SfSNet-PyTorch's ``generate_dataset_csv.py`` reads and writes it::

    DIR/train.csv, DIR/test.csv       columns face, normal, albedo, light (mask, depth optional);
                                      paths absolute or relative to DIR
    DIR/train/<folder>/<id>_face_<a>_<b>.png      the image (values used as stored, no gamma)
    DIR/train/<folder>/<id>_normal_<a>_<b>.png    normals encoded as (n + 1) / 2 * 255
    DIR/train/<folder>/<id>_albedo_<a>_<b>.png
    DIR/train/<folder>/<id>_mask_<a>_<b>.png      optional: pixels that count in the losses
    DIR/train/<folder>/<id>_light_<a>_<b>.txt     27 SH coefficients, R(0..8) G(9..17) B(18..26)

When a split's CSV is missing it is built by scanning the split folder the same way.
"""

from __future__ import annotations

import csv
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from runtime.core.errors import DatasetError
from ..models.sh import SH_CONSTANTS, directional_sh, sh_shading_numpy
from ..data.render import RenderConfig, _cavity, _grid, _heights, _normals, _visibility
from ..data.textures import random_albedo

__all__ = ["FaceRenderConfig", "render_face_sample", "render_face_dataset", "random_lighting",
           "shade_sh", "write_sfsnet_layout", "read_sfsnet_layout", "scan_split", "SFSNET_ARRAYS", "to_tensors",
           "ArrayDataset", "face_samples", "sample_inputs"]

SFSNET_ARRAYS = ("image", "normals", "albedo", "sh", "mask")
_KINDS = ("face", "normal", "albedo", "light", "mask", "depth")
_ROW_KEY = {"image": "face", "normals": "normal", "albedo": "albedo", "mask": "mask"}


@dataclass(frozen=True)
class FaceRenderConfig:
    """Scene and lighting parameters of the synthetic SfSNet data."""

    height: int = 128
    width: int = 128
    ambient: tuple[float, float] = (0.3, 0.6)
    """Range of the environment's uniform irradiance."""
    key: tuple[float, float] = (0.5, 1.1)
    """Range of the key light's strength."""
    key_min_z: float = 0.25
    """Lowest z (towards the camera) of the key light's direction."""
    tint: float = 0.08
    """Largest relative colour deviation of each light from white."""
    mean_irradiance: float | None = 0.75
    """Scale every light to this mean irradiance over all normals (None: leave the scale random)."""
    specular: float = 0.12
    shininess: float = 20.0
    shadows: bool = True

    def __post_init__(self) -> None:
        if self.height < 16 or self.width < 16:
            raise ValueError(f"image size must be at least 16x16, got {self.height}x{self.width}")


def _gauss(u: np.ndarray, v: np.ndarray, cu: float, cv: float, su: float, sv: float) -> np.ndarray:
    return np.exp(-(((u - cu) / su) ** 2 + ((v - cv) / sv) ** 2) * 0.5)


def _add_face(rng: np.random.Generator, z: np.ndarray, ids: np.ndarray, x: np.ndarray, y: np.ndarray,
              centre: tuple[float, float], width: float, label: int) -> np.ndarray:
    """Raise a face-like ellipsoid with features at ``centre``; returns the face mask."""
    cx, cy = centre
    a = width / 2
    b = a * rng.uniform(1.2, 1.4)
    depth = a * rng.uniform(0.6, 0.9)
    angle = rng.uniform(-0.5, 0.5)
    u = ((x - cx) * np.cos(angle) + (y - cy) * np.sin(angle)) / a  # face coordinates, unit half-width
    v = (-(x - cx) * np.sin(angle) + (y - cy) * np.cos(angle)) / b  # v grows towards the chin
    r2 = u * u + v * v
    inside = r2 < 1.0
    shell = np.sqrt(np.maximum(1.0 - r2, 0.0))
    j = lambda s: s * rng.uniform(0.8, 1.25)  # noqa: E731  (per-face jitter of a feature's size)
    features = (
        j(0.28) * _gauss(u, v, 0.0, 0.05, j(0.11), j(0.3))  # nose ridge
        + j(0.12) * _gauss(u, v, 0.0, 0.3, j(0.14), j(0.09))  # nose tip
        - j(0.13) * (_gauss(u, v, -0.38, -0.22, j(0.15), j(0.1)) + _gauss(u, v, 0.38, -0.22, j(0.15), j(0.1)))
        + j(0.07) * _gauss(u, v, 0.0, -0.42, j(0.55), j(0.07))  # brow ridge
        + j(0.06) * (_gauss(u, v, -0.45, 0.18, j(0.18), j(0.18)) + _gauss(u, v, 0.45, 0.18, j(0.18), j(0.18)))
        + j(0.05) * _gauss(u, v, 0.0, 0.58, j(0.25), j(0.05))  # lips
        - j(0.04) * _gauss(u, v, 0.0, 0.66, j(0.22), j(0.03))  # mouth line
        + j(0.06) * _gauss(u, v, 0.0, 0.85, j(0.3), j(0.12))  # chin
    )
    h, w = z.shape
    bumps = cv2.resize(rng.standard_normal((max(2, h // 10), max(2, w // 10))).astype(np.float32), (w, h),
                       interpolation=cv2.INTER_CUBIC)
    surface = depth * (shell + features * shell) + 0.004 * bumps
    base = float(np.median(z[inside])) if inside.any() else 0.0
    top = base + surface
    mask = inside & (top > z)
    z[mask] = top[mask]
    ids[mask] = label
    return mask


def _skin(rng: np.random.Generator, face: np.ndarray, x: np.ndarray, y: np.ndarray, albedo: np.ndarray) -> None:
    tone = np.array([rng.uniform(0.45, 0.85), 0.0, 0.0], np.float32)
    tone[1] = tone[0] * rng.uniform(0.6, 0.8)
    tone[2] = tone[1] * rng.uniform(0.7, 0.9)
    h, w = face.shape
    variation = cv2.resize(rng.random((6, 6)).astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC)
    skin = tone[None, None, :] * (0.85 + 0.25 * variation[..., None])
    albedo[face] = np.clip(skin[face], 0.03, 0.9)


def random_lighting(rng: np.random.Generator, cfg: FaceRenderConfig) -> dict:
    """An SH environment (27,), and a key light: unit direction (3,), colour (3,).

    The whole light is scaled so that its mean irradiance over all normals (the DC term) is
    ``cfg.mean_irradiance``: one image fixes albedo x light only up to a common factor, so the
    factor is fixed by convention and the direction, colour and contrast of the light vary.
    """
    env = np.zeros(27, np.float32)
    tint = rng.uniform(1.0 - cfg.tint, 1.0 + cfg.tint, 3)
    env[[0, 9, 18]] = rng.uniform(*cfg.ambient) * tint / SH_CONSTANTS[0]
    for _ in range(2):  # weak coloured fill lights from anywhere in the upper hemisphere
        d = rng.normal(size=3)
        d[2] = abs(d[2])
        env += directional_sh(d, rng.uniform(0.0, 0.25, 3))
    while True:
        d = rng.normal(size=3)
        d /= np.linalg.norm(d)
        if d[2] >= cfg.key_min_z:
            break
    colour = rng.uniform(*cfg.key) * rng.uniform(1.0 - cfg.tint, 1.0 + cfg.tint, 3)
    if cfg.mean_irradiance:
        dc = float(np.mean((env + directional_sh(d, colour))[[0, 9, 18]])) * SH_CONSTANTS[0]
        scale = cfg.mean_irradiance / dc
        env, colour = env * scale, colour * scale
    return {"env": env.astype(np.float32), "direction": d.astype(np.float32), "colour": colour.astype(np.float32)}


def shade_sh(z: np.ndarray, normals: np.ndarray, albedo: np.ndarray, lighting: dict, cfg: FaceRenderConfig) -> dict:
    """Render one lighting of a height field: image, sh (27,), residue, and the SH-only image."""
    h, w = z.shape
    rcfg = RenderConfig(height=h, width=w)
    x, y = _grid(rcfg)
    spacing = 2.0 / (w - 1)
    d, c = lighting["direction"], lighting["colour"]
    sh = (lighting["env"] + directional_sh(d, c)).astype(np.float32)
    n_dot_d = normals @ d
    if cfg.shadows:
        far = np.array([0.0, 0.0, 0.0], np.float32) + 60.0 * d
        vis = _visibility(rcfg, z, x, y, far.astype(np.float32), spacing)
    else:
        vis = np.ones_like(z)
    half = d + np.array([0.0, 0.0, 1.0], np.float32)
    half /= np.linalg.norm(half)
    spec = cfg.specular * np.maximum(normals @ half, 0.0) ** cfg.shininess * (n_dot_d > 0)
    ambient = _cavity(z, spacing)[..., None] * sh_shading_numpy(normals, lighting["env"])
    direct = ((np.maximum(n_dot_d, 0.0) + spec) * vis)[..., None] * c[None, None, :]
    s_true = ambient + direct
    s_sh = sh_shading_numpy(normals, sh)
    return {
        "image": np.clip(albedo * s_true, 0.0, 1.0).astype(np.float32),
        "sh": sh,
        "residue": (s_true - s_sh).astype(np.float32),
        "sh_image": np.clip(albedo * s_sh, 0.0, 1.0).astype(np.float32),
    }


def render_face_sample(seed: int, cfg: FaceRenderConfig = FaceRenderConfig()) -> dict[str, np.ndarray]:
    """One scene under two lights; the same seed and config always give the same arrays."""
    rng = np.random.default_rng(seed)
    rcfg = RenderConfig(height=cfg.height, width=cfg.width)
    x, y = _grid(rcfg)
    z, ids = _heights(rng, rcfg, x, y)
    z *= 0.5  # a flatter backdrop: the faces are the subject
    albedo = random_albedo(rng, cfg.height, cfg.width)
    faces = 1 if rng.random() < 0.75 else 2
    face_mask = np.zeros(z.shape, bool)
    aspect = cfg.height / cfg.width
    for i in range(faces):
        if faces == 1:
            centre = (rng.uniform(-0.2, 0.2), rng.uniform(-0.2, 0.2) * aspect)
            width = rng.uniform(0.8, 1.2) * min(1.0, aspect)
        else:
            centre = ((-0.5 if i == 0 else 0.5) + rng.uniform(-0.1, 0.1), rng.uniform(-0.3, 0.3) * aspect)
            width = rng.uniform(0.55, 0.75) * min(1.0, aspect)
        face = _add_face(rng, z, ids, x, y, centre, width, label=100 + i)
        _skin(rng, face, x, y, albedo)
        face_mask |= face
    normals = _normals(z, 2.0 / (cfg.width - 1))
    first = shade_sh(z, normals, albedo, random_lighting(rng, cfg), cfg)
    second = shade_sh(z, normals, albedo, random_lighting(rng, cfg), cfg)
    return {
        "image": first["image"], "normals": normals, "albedo": albedo, "sh": first["sh"],
        "residue": first["residue"], "mask": np.ones(z.shape, np.float32), "face": face_mask.astype(np.float32),
        "relit_image": second["image"], "relit_sh": second["sh"], "relit_sh_image": second["sh_image"],
    }


def _render_range(job: tuple) -> dict[str, np.ndarray]:
    render, start, stop, cfg = job
    samples = [render(s, cfg) for s in range(start, stop)]
    return {k: np.stack([s[k] for s in samples]) for k in samples[0]}


def render_face_dataset(count: int, seed: int = 0, cfg: FaceRenderConfig = FaceRenderConfig(),
                        workers: int | None = None, progress: bool = False) -> dict[str, np.ndarray]:
    """Render ``count`` scenes with seeds ``seed .. seed + count - 1`` (independent of ``workers``).

    Returns channel-last float32 arrays: image, normals, albedo, residue, relit_image, relit_sh_image
    (N, H, W, 3); sh, relit_sh (N, 27); mask (N, H, W) pixels that count in the losses (all), face (N, H, W)
    the faces' pixels (where normal errors are also reported on their own).
    """
    return _render_many(render_face_sample, count, seed, cfg, workers, progress, "faces")


def _render_many(render, count: int, seed: int, cfg: FaceRenderConfig, workers: int | None, progress: bool,
                 noun: str) -> dict[str, np.ndarray]:
    """``render(seed, cfg)`` for seeds ``seed .. seed + count - 1`` in a process pool, stacked per key."""
    if count < 1:
        raise ValueError(f"count must be >= 1, got {count}")
    workers = max(1, min(workers or os.cpu_count() or 1, count))
    chunk = max(1, min(32, -(-count // (workers * 4))))
    jobs = [(render, s, min(s + chunk, seed + count), cfg) for s in range(seed, seed + count, chunk)]
    pool = ProcessPoolExecutor(workers) if workers > 1 else None
    parts = pool.map(_render_range, jobs) if pool else map(_render_range, jobs)
    if progress:
        from tqdm import tqdm

        parts = tqdm(parts, total=len(jobs), desc=f"rendering {count} {noun}", unit="chunk", leave=False)
    parts = list(parts)
    if pool:
        pool.shutdown()
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def render_config_dict(cfg: FaceRenderConfig) -> dict:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(cfg).items()}


# --- SfSNet's folder layout -------------------------------------------------------------------------


def _to_png(values: np.ndarray) -> np.ndarray:
    rgb = np.clip(np.rint(values * 255.0), 0, 255).astype(np.uint8)
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR) if rgb.ndim == 3 else rgb


def write_sfsnet_layout(root: Path, splits: dict[str, dict[str, np.ndarray]], folder_size: int = 100) -> None:
    """Write splits ("train", "test", ...) in SfSNet's layout under an existing folder ``root``."""
    for split, arrays in splits.items():
        rows = []
        for i in range(len(arrays["image"])):
            folder = Path(split) / f"{i // folder_size:04d}"
            (root / folder).mkdir(parents=True, exist_ok=True)
            stem = lambda kind: folder / f"{i:06d}_{kind}_0_0"  # noqa: E731
            files = {
                "face": (stem("face").with_suffix(".png"), _to_png(arrays["image"][i])),
                "normal": (stem("normal").with_suffix(".png"), _to_png((arrays["normals"][i] + 1.0) / 2.0)),
                "albedo": (stem("albedo").with_suffix(".png"), _to_png(arrays["albedo"][i])),
                "mask": (stem("mask").with_suffix(".png"), _to_png(arrays.get("face", arrays["mask"])[i])),
            }
            for name, (rel, pixels) in files.items():
                if not cv2.imwrite(str(root / rel), pixels):
                    raise DatasetError(f"cannot write {root / rel}")
            light = stem("light").with_suffix(".txt")
            (root / light).write_text(" ".join(f"{v:.7g}" for v in arrays["sh"][i]) + "\n")
            rows.append({**{k: str(v[0]) for k, v in files.items()}, "light": str(light)})
        with open(root / f"{split}.csv", "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=["albedo", "normal", "mask", "face", "light"])
            writer.writeheader()
            writer.writerows(rows)


def scan_split(folder: Path) -> list[dict[str, str]]:
    """Rows of a split folder found the way SfSNet's generate_dataset_csv does (``*/*_<kind>_*``)."""
    found: dict[str, dict[str, str]] = {}
    for path in sorted(folder.glob("*/*_*_*_*")):
        parts = path.stem.split("_")
        if len(parts) != 4 or parts[1] not in _KINDS:
            continue
        key = f"{path.parent.name}/{parts[0]}_{parts[2]}_{parts[3]}"
        found.setdefault(key, {})[parts[1]] = str(path)
    return [row for _, row in sorted(found.items()) if {"face", "normal", "albedo", "light"} <= row.keys()]


def _read_png(path: Path, grey: bool = False) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE if grey else cv2.IMREAD_COLOR)
    if image is None:
        raise DatasetError(f"cannot read image {path}")
    image = image.astype(np.float32) / 255.0
    return image if grey else cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def _read_rows(root: Path, split: str) -> list[dict[str, str]]:
    table = root / f"{split}.csv"
    if table.is_file():
        with open(table, newline="") as f:
            rows = list(csv.DictReader(f))
        missing = {"face", "normal", "albedo", "light"} - set(rows[0] if rows else {})
        if rows and missing:
            raise DatasetError(f"{table}: missing column(s) {', '.join(sorted(missing))}")
        return rows
    if (root / split).is_dir():
        return scan_split(root / split)
    return []


def read_sfsnet_layout(root: str | os.PathLike, split: str, read_first: int = -1,
                       size: tuple[int, int] | None = None) -> dict[str, np.ndarray] | None:
    """Read one split of SfSNet's layout; None when the split is absent.

    ``read_first`` > 0 keeps that many rows drawn at random with seed 100 (the seed's behaviour).
    Images of another size than the first are an error unless ``size`` (H, W) asks for resizing.
    """
    root = Path(root)
    rows = _read_rows(root, split)
    if not rows:
        return None
    if read_first is not None and read_first > 0 and read_first < len(rows):
        keep = np.sort(np.random.default_rng(100).choice(len(rows), read_first, replace=False))
        rows = [rows[i] for i in keep]
    out: dict[str, list] = {k: [] for k in SFSNET_ARRAYS}
    shape = None
    for row in rows:
        paths = {k: (Path(v) if Path(v).is_absolute() else root / v) for k, v in row.items() if v}
        image = _read_png(paths["face"])
        if size is not None:
            shape = size
        if shape is None:
            shape = image.shape[:2]
        arrays = {"image": image, "normals": _read_png(paths["normal"]) * 2.0 - 1.0, "albedo": _read_png(paths["albedo"]),
                  "mask": _read_png(paths["mask"], grey=True) if "mask" in paths else np.ones(image.shape[:2], np.float32)}
        for name, a in arrays.items():
            if a.shape[:2] != tuple(shape):
                if size is None:
                    raise DatasetError(f"{paths[_ROW_KEY[name]]}: {a.shape[1]}x{a.shape[0]} pixels, "
                                       f"but the first image is {shape[1]}x{shape[0]}; pass an image size to resize")
                a = cv2.resize(a, (shape[1], shape[0]), interpolation=cv2.INTER_AREA)
            out[name].append(a)
        norm = np.linalg.norm(out["normals"][-1], axis=-1, keepdims=True)
        out["normals"][-1] = out["normals"][-1] / np.maximum(norm, 1e-6)
        try:
            sh = np.loadtxt(paths["light"], dtype=np.float32).reshape(-1)
        except (OSError, ValueError) as exc:
            raise DatasetError(f"cannot read SH light {paths['light']}: {exc}") from None
        if sh.size != 27 or not np.isfinite(sh).all():
            raise DatasetError(f"{paths['light']}: expected 27 finite SH coefficients, found {sh.size}")
        out["sh"].append(sh)
    out["face"] = out["mask"]
    return {k: np.stack(v).astype(np.float32) for k, v in out.items()}


# ------------------------------------------------------------------------------------------- tensors

_IMAGES = ("image", "normals", "albedo", "residue", "relit_image", "relit_sh_image")


def to_tensors(arrays: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """Channel-last arrays to NCHW tensors (mask to N,1,H,W; SH vectors unchanged)."""
    out = {}
    for name, a in arrays.items():
        t = torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))
        if name in _IMAGES:
            t = t.permute(0, 3, 1, 2).contiguous()
        elif name in ("mask", "face", "person"):
            t = t[:, None]
        out[name] = t
    return out


class ArrayDataset(Dataset):
    """Samples of a dictionary of equally long tensors."""

    def __init__(self, arrays: dict[str, np.ndarray]) -> None:
        self.tensors = to_tensors(arrays)
        self.length = len(next(iter(self.tensors.values())))

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {k: v[i] for k, v in self.tensors.items()}


def face_samples(batch: int, height: int, width: int, seed: int) -> list[dict[str, np.ndarray]]:
    """``batch`` synthetic face scenes (seeds ``seed``, ``seed + 1``, ...) of ``height`` x ``width``."""
    cfg = FaceRenderConfig(height=height, width=width)
    return [render_face_sample(seed + i, cfg) for i in range(batch)]


def sample_inputs(meta: dict, batch: int, height: int, width: int, seed: int) -> dict[str, np.ndarray]:
    """Realistic inputs for export parity and the benchmarks: synthetic faces (linear RGB)."""
    from ..data.images import stack_nchw

    return {"image": stack_nchw([np.clip(f["image"], 0.0, 1.0) for f in face_samples(batch, height, width, seed)])}
