"""Procedural relighting scenes rendered under a point light.

A scene is a height field over the square [-1, 1] x [-1, 1] seen by an orthographic camera from
above (+z). It is built from a smooth random terrain with fine bumps, spheres and boxes; normals
come from the geometry. A point light of fixed intensity sits above the scene.

Light transport (linear RGB, clipped to [0, 1] like a sensor):

    image = albedo * (I * max(n.l, 0) * V / d^2 + ambient * AO) + k_s * (n.h)^s * I * V / d^2

with d the distance to the light, l the unit direction to it, V a soft cast-shadow visibility
ray-marched through the height field, AO a cavity term from the geometry, and a white
Blinn-Phong lobe (h the half vector between l and the view direction). The network sees only
distances, max(n.l, 0), albedo and normals, so the inverse-square Lambert term is the analytic
baseline and shadows, ambient light and highlights are what it must learn.
"""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, replace

import cv2
import numpy as np

from .textures import random_albedo

__all__ = ["RenderConfig", "Sample", "shade_scene", "render_sample", "render_dataset", "lambertian_baseline"]

ARRAY_NAMES = ("distances", "cosines", "albedo", "normals", "targets")


@dataclass(frozen=True)
class RenderConfig:
    """Scene and light parameters shared by every sample of a dataset."""

    height: int = 256
    width: int = 256
    light_intensity: float = 4.0
    """Radiant intensity I of the point light (irradiance I / d^2 at distance d)."""
    light_height: tuple[float, float] = (2.2, 3.5)
    """Range of the light's height above the ground plane."""
    light_spread: float = 1.0
    """Half-width of the square over which the light's x and y are drawn."""
    ambient: float = 0.2
    """Ambient irradiance, scaled by the cavity term."""
    specular: float = 0.1
    """Strength k_s of the white specular lobe."""
    shininess: float = 16.0
    """Blinn-Phong exponent s."""
    shadow_steps: int = 40
    """Ray-march samples per pixel for cast shadows."""
    shadow_softness: float = 24.0
    """Penumbra sharpness (larger is harder)."""
    shadows: bool = True
    """Cast shadows on or off (off only to compare)."""
    clip: bool = True
    """Clip the image to [0, 1] like a sensor; False keeps linear HDR values (only negatives are cut)."""

    def __post_init__(self) -> None:
        if self.height < 8 or self.width < 8:
            raise ValueError(f"image size must be at least 8x8, got {self.height}x{self.width}")
        if not 0.0 < self.light_height[0] <= self.light_height[1]:
            raise ValueError(f"light_height must be an increasing positive range, got {self.light_height}")
        if self.light_intensity <= 0:
            raise ValueError(f"light_intensity must be positive, got {self.light_intensity}")


@dataclass
class Sample:
    """One rendered sample; image arrays are float32, channels last."""

    distances: np.ndarray  # (H, W)
    cosines: np.ndarray  # (H, W)
    albedo: np.ndarray  # (H, W, 3)
    normals: np.ndarray  # (H, W, 3)
    targets: np.ndarray  # (H, W, 3)
    heights: np.ndarray  # (H, W)
    light: np.ndarray  # (3,)


def _grid(cfg: RenderConfig) -> tuple[np.ndarray, np.ndarray]:
    xs = np.linspace(-1.0, 1.0, cfg.width, dtype=np.float32)
    ys = np.linspace(-1.0, 1.0, cfg.height, dtype=np.float32) * (cfg.height / cfg.width)
    return np.meshgrid(xs, ys)


def _heights(rng: np.random.Generator, cfg: RenderConfig, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Height field and an object-id map (0 ground, i>0 object i)."""
    h, w = x.shape
    cells = int(rng.integers(2, 6))
    terrain = cv2.resize(rng.random((cells, cells)).astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC)
    z = rng.uniform(0.0, 0.25) * (terrain - terrain.min())
    fine = cv2.resize(rng.standard_normal((h // 8, w // 8)).astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC)
    z = z + rng.uniform(0.0, 0.006) * fine
    ids = np.zeros((h, w), np.int32)
    n_objects = int(rng.integers(1, 6))
    for i in range(1, n_objects + 1):
        cx, cy = rng.uniform(-0.85, 0.85, 2)
        base = float(z[int(np.clip((cy + 1) / 2 * (h - 1), 0, h - 1)), int(np.clip((cx + 1) / 2 * (w - 1), 0, w - 1))])
        if rng.random() < 0.55:  # sphere resting on (or sunk into) the ground
            r = rng.uniform(0.08, 0.3)
            rho2 = (x - cx) ** 2 + (y - cy) ** 2
            inside = rho2 < r * r
            top = base + r * rng.uniform(0.0, 1.0) + np.sqrt(np.maximum(r * r - rho2, 0.0))
        else:  # box, rotated about z
            a, b = rng.uniform(0.06, 0.28, 2)
            angle = rng.uniform(0, np.pi)
            u = (x - cx) * np.cos(angle) + (y - cy) * np.sin(angle)
            v = -(x - cx) * np.sin(angle) + (y - cy) * np.cos(angle)
            inside = (np.abs(u) < a) & (np.abs(v) < b)
            top = np.full_like(z, base + rng.uniform(0.05, 0.3))
        mask = inside & (top > z)
        z = np.where(mask, top, z)
        ids[mask] = i
    return z.astype(np.float32), ids


def _normals(z: np.ndarray, spacing: float) -> np.ndarray:
    dzdy, dzdx = np.gradient(z, spacing)
    n = np.stack([-dzdx, -dzdy, np.ones_like(z)], axis=-1)
    return (n / np.linalg.norm(n, axis=-1, keepdims=True)).astype(np.float32)


def _visibility(cfg: RenderConfig, z: np.ndarray, px: np.ndarray, py: np.ndarray, light: np.ndarray, spacing: float) -> np.ndarray:
    """Soft shadow term in [0, 1] by marching from each surface point towards the light."""
    h, w = z.shape
    to_light = np.stack([light[0] - px, light[1] - py, light[2] - z])
    dist = np.linalg.norm(to_light, axis=0)
    zmax = float(z.max())
    # Only the part of the ray below the highest point can be blocked.
    t_end = np.clip((zmax - z) / np.maximum(light[2] - z, 1e-6), 0.0, 1.0)
    start = 1.5 * spacing / np.maximum(dist, 1e-6)  # skip the pixel's own neighbourhood
    vis = np.ones_like(z)
    for k in range(cfg.shadow_steps):
        t = start + (t_end - start) * (k + 0.5) / cfg.shadow_steps
        sx = px + t * to_light[0]
        sy = py + t * to_light[1]
        sz = z + t * to_light[2]
        map_x = ((sx + 1.0) * 0.5 * (w - 1)).astype(np.float32)
        map_y = ((sy / (h / w) + 1.0) * 0.5 * (h - 1)).astype(np.float32)
        ground = cv2.remap(z, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)
        clearance = (sz - ground) / np.maximum(t * dist, 1e-6)
        vis = np.minimum(vis, cfg.shadow_softness * clearance)
    vis = np.clip(vis, 0.0, 1.0)
    vis = np.where(t_end > start, vis, 1.0)
    return (vis * vis * (3.0 - 2.0 * vis)).astype(np.float32)  # smoothstep penumbra


def _cavity(z: np.ndarray, spacing: float) -> np.ndarray:
    blurred = cv2.GaussianBlur(z, (0, 0), sigmaX=6.0)
    return np.exp(-np.maximum(blurred - z, 0.0) * 12.0).astype(np.float32)


def shade_scene(heights: np.ndarray, albedo: np.ndarray, light, cfg: RenderConfig = RenderConfig()) -> Sample:
    """Render a height field (H, W) with albedo (H, W, 3) under a point light at ``light`` (x, y, z).

    The scene spans x in [-1, 1] (left to right) and y in [-H/W, H/W] (top to bottom).
    """
    z = np.asarray(heights, np.float32)
    albedo = np.asarray(albedo, np.float32)
    light = np.asarray(light, np.float32)
    h, w = z.shape
    if albedo.shape[:2] != (h, w):
        raise ValueError(f"albedo {albedo.shape} does not match heights {z.shape}")
    cfg = cfg if (cfg.height, cfg.width) == (h, w) else replace(cfg, height=h, width=w)
    x, y = _grid(cfg)
    spacing = 2.0 / (w - 1)
    normals = _normals(z, spacing)
    to_light = np.stack([light[0] - x, light[1] - y, light[2] - z], axis=-1)
    distances = np.linalg.norm(to_light, axis=-1).astype(np.float32)
    l = to_light / distances[..., None]
    n_dot_l = np.einsum("hwc,hwc->hw", normals, l)
    cosines = np.maximum(n_dot_l, 0.0).astype(np.float32)

    vis = _visibility(cfg, z, x, y, light, spacing) if cfg.shadows else np.ones_like(z)
    irradiance = cfg.light_intensity / distances**2
    half = l + np.array([0.0, 0.0, 1.0], np.float32)
    half /= np.linalg.norm(half, axis=-1, keepdims=True)
    n_dot_h = np.maximum(np.einsum("hwc,hwc->hw", normals, half), 0.0)
    specular = cfg.specular * n_dot_h**cfg.shininess * (n_dot_l > 0)

    direct = irradiance * vis
    ambient = cfg.ambient * _cavity(z, spacing)
    image = albedo * (direct * cosines + ambient)[..., None] + (direct * specular)[..., None]
    return Sample(
        distances=distances,
        cosines=cosines,
        albedo=albedo,
        normals=normals,
        targets=(np.clip(image, 0.0, 1.0) if cfg.clip else np.maximum(image, 0.0)).astype(np.float32),
        heights=z,
        light=light,
    )


def render_sample(seed: int, cfg: RenderConfig = RenderConfig()) -> Sample:
    """Render one random scene; the same seed and config always give the same arrays."""
    rng = np.random.default_rng(seed)
    x, y = _grid(cfg)
    z, ids = _heights(rng, cfg, x, y)
    albedo = random_albedo(rng, cfg.height, cfg.width)
    for i in range(1, int(ids.max()) + 1):  # objects get their own material half of the time
        if rng.random() < 0.5:
            obj = ids == i
            albedo[obj] = random_albedo(rng, cfg.height, cfg.width)[obj]
    lx, ly = rng.uniform(-cfg.light_spread, cfg.light_spread, 2)
    light = np.array([lx, ly, rng.uniform(*cfg.light_height)], np.float32)
    return shade_scene(z, albedo, light, cfg)


def _render_range(args: tuple[int, int, RenderConfig]) -> dict[str, np.ndarray]:
    start, stop, cfg = args
    samples = [render_sample(s, cfg) for s in range(start, stop)]
    out = {name: np.stack([getattr(s, name) for s in samples]) for name in ARRAY_NAMES}
    out["lights"] = np.stack([s.light for s in samples])
    return out


def render_dataset(
    count: int, seed: int = 0, cfg: RenderConfig = RenderConfig(), workers: int | None = None, progress: bool = False
) -> dict[str, np.ndarray]:
    """Render ``count`` samples with seeds ``seed .. seed + count - 1``.

    Returns arrays keyed by name: distances (N,H,W), cosines (N,H,W), albedo (N,H,W,3),
    normals (N,H,W,3), targets (N,H,W,3), lights (N,3). The result does not depend on ``workers``.
    """
    if count < 1:
        raise ValueError(f"count must be >= 1, got {count}")
    workers = max(1, min(workers or os.cpu_count() or 1, count))
    chunk = max(1, min(32, -(-count // (workers * 4))))
    jobs = [(s, min(s + chunk, seed + count), cfg) for s in range(seed, seed + count, chunk)]
    if workers == 1:
        parts = map(_render_range, jobs)
    else:
        pool = ProcessPoolExecutor(workers)
        parts = pool.map(_render_range, jobs)
    if progress:
        from tqdm import tqdm

        parts = tqdm(parts, total=len(jobs), desc=f"rendering {count} scenes", unit="chunk", leave=False)
    parts = list(parts)
    if workers > 1:
        pool.shutdown()
    return {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}


def lambertian_baseline(distances, cosines, albedo, light_intensity: float):
    """The analytic baseline image albedo * I * cos / d^2 (works on numpy arrays and torch tensors).

    Shapes broadcast as (..., H, W) for distances and cosines against (..., C, H, W) albedo when
    called with channel-first tensors; pass channel-last numpy arrays with a trailing axis added.
    """
    return albedo * (light_intensity * cosines / distances**2)


def render_config_dict(cfg: RenderConfig) -> dict:
    """The config as JSON-able values."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(cfg).items()}
