"""Lights as plain numbers (numpy only, no PyTorch): SfSNet's SH constants, named SH lights, light paths.

The runtime imports this module to drive relighting models along a light path, so it must stay
free of PyTorch; ``train.models.sh`` builds its differentiable layer on the constants here.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np

from .errors import UserError

__all__ = ["SH_CONSTANTS", "SH_BASIS_NORMALISATION", "SH_COEFFICIENTS", "directional_sh", "SH_PRESETS", "sh_preset",
           "sh_light_path", "point_light_path", "ibr_light_path", "read_light_csv"]

SH_COEFFICIENTS = 27

_ATTENUATION = (math.pi, 2.0 * math.pi / 3.0, math.pi / 4.0)
# Real SH normalisation Y_k (without attenuation), same order as the basis below.
SH_BASIS_NORMALISATION = (
    1.0 / math.sqrt(4.0 * math.pi),
    math.sqrt(3.0 / (4.0 * math.pi)),
    math.sqrt(3.0 / (4.0 * math.pi)),
    math.sqrt(3.0 / (4.0 * math.pi)),
    0.5 * math.sqrt(5.0 / (4.0 * math.pi)),
    3.0 * math.sqrt(5.0 / (12.0 * math.pi)),
    3.0 * math.sqrt(5.0 / (12.0 * math.pi)),
    1.5 * math.sqrt(5.0 / (12.0 * math.pi)),
    3.0 * math.sqrt(5.0 / (12.0 * math.pi)),
)
_BAND = (0, 1, 1, 1, 2, 2, 2, 2, 2)
# SfSNet's constants: 0.886227, 1.023327 (x3), 0.247708, 0.858086 (x2), 0.429043, 0.858086.
SH_CONSTANTS = tuple(_ATTENUATION[b] * y for b, y in zip(_BAND, SH_BASIS_NORMALISATION))


def _monomials(x, y, z, one):
    return [one, z, x, y, 2 * z * z - x * x - y * y, x * z, y * z, x * x - y * y, x * y]


def directional_sh(direction, colour=(1.0, 1.0, 1.0)) -> np.ndarray:
    """The 27 coefficients of a distant light of ``colour`` from ``direction`` (normalised here)."""
    d = np.asarray(direction, np.float64)
    d = d / np.linalg.norm(d)
    x, y, z = d
    y_k = np.array([c * t for c, t in zip(SH_BASIS_NORMALISATION, _monomials(x, y, z, 1.0))])
    return (np.asarray(colour, np.float64)[:, None] * y_k[None, :]).reshape(-1).astype(np.float32)


def _preset(direction, strength: float = 1.6, ambient: float = 0.55) -> np.ndarray:
    ambient_sh = np.zeros(27, np.float32)
    ambient_sh[[0, 9, 18]] = ambient / SH_CONSTANTS[0]  # uniform irradiance `ambient`
    return ambient_sh + directional_sh(direction, (strength,) * 3)


# Named lights for relighting from the command line (directions in the contract's frame: x right,
# y down, z towards the camera).
SH_PRESETS = {
    "front": _preset((0.0, 0.0, 1.0)),
    "left": _preset((-0.8, -0.2, 0.55)),
    "right": _preset((0.8, -0.2, 0.55)),
    "top": _preset((0.0, -0.8, 0.55)),
    "bottom": _preset((0.0, 0.8, 0.55)),
    "ambient": _preset((0.0, 0.0, 1.0), strength=0.0, ambient=1.2),
}


def sh_preset(name: str) -> np.ndarray:
    """A named light from ``SH_PRESETS`` (copy)."""
    try:
        return SH_PRESETS[name].copy()
    except KeyError:
        raise ValueError(f"unknown SH light {name!r}; choose from {', '.join(SH_PRESETS)}") from None


def sh_light_path(spec: str, steps: int) -> tuple[np.ndarray, list[str]]:
    """(steps, 27) SH lights and labels: 'sweep' (key light left to right), 'orbit' (around the view
    axis) or a comma list of SH presets interpolated linearly (SH is linear in the light)."""
    ambient = sh_preset("ambient") * (0.45 / 1.2)
    if spec in ("sweep", "orbit"):
        lights, labels = [], []
        for t in np.linspace(0.0, 1.0, steps):
            if spec == "sweep":
                angle = np.deg2rad(-70 + 140 * t)
                d = (np.sin(angle), -0.2, np.cos(angle))
                labels.append(f"{np.rad2deg(angle):+.0f} deg")
            else:
                angle = 2 * np.pi * t
                d = (0.75 * np.cos(angle), 0.75 * np.sin(angle), 0.66)
                labels.append(f"{np.rad2deg(angle):.0f} deg")
            lights.append(ambient + directional_sh(d, (1.1, 1.1, 1.1)))
        return np.stack(lights).astype(np.float32), labels
    names = [s.strip() for s in spec.split(",") if s.strip()]
    unknown = [n for n in names if n not in SH_PRESETS]
    if unknown or len(names) < 2:
        raise UserError(f"--lights {spec!r}: use sweep, orbit or two or more of {', '.join(SH_PRESETS)}")
    keys = np.stack([sh_preset(n) for n in names])  # (K, 27)
    position = np.linspace(0, len(names) - 1, steps)
    # SH is linear in the light, so interpolating coefficients interpolates the lights.
    lights = np.stack([np.interp(position, np.arange(len(names)), keys[:, k]) for k in range(keys.shape[1])], axis=1)
    return lights.astype(np.float32), [f"{p:.2f}" for p in position]


def point_light_path(kind: str, steps: int, height: float = 2.6, radius: float = 1.3):
    """(steps, 3) point-light positions: 'orbit' circles the frame's centre, 'sweep' crosses it left to right."""
    t = np.linspace(0.0, 1.0, steps, endpoint=kind != "orbit")
    if kind == "orbit":
        xy = np.stack([radius * np.cos(2 * np.pi * t), radius * np.sin(2 * np.pi * t)], 1)
    elif kind == "sweep":
        xy = np.stack([radius * (2 * t - 1), np.full_like(t, -0.3)], 1)
    else:
        raise UserError(f"unknown light path {kind!r}; use orbit or sweep")
    return np.concatenate([xy, np.full((steps, 1), height)], 1).astype(np.float32)


def ibr_light_path(spec: str, frames: int, low, high) -> np.ndarray:
    """Normalised (frames, 2) light positions of an ibr model: ``orbit``, ``sweep`` or a CSV file.

    A CSV has a header with ``x`` and ``y`` columns in capture units; they are mapped from
    [``low``, ``high``] (the model config's ``light_low`` / ``light_high``) to [-1, 1].
    """
    if spec == "orbit":
        t = np.arange(frames) / frames * 2 * np.pi
        return np.stack([0.75 * np.cos(t), 0.75 * np.sin(t)], 1).astype(np.float32)
    if spec == "sweep":
        x = np.linspace(-0.9, 0.9, frames)
        return np.stack([x, np.zeros_like(x)], 1).astype(np.float32)
    points = read_light_csv(spec, ("x", "y"))
    low, high = np.asarray(low, np.float64), np.asarray(high, np.float64)
    return ((points - low) / (high - low) * 2 - 1).astype(np.float32)


def read_light_csv(spec: str, columns: tuple[str, ...]) -> np.ndarray:
    """(rows, len(columns)) floats from a CSV file whose header names ``columns`` (one light per row)."""
    path = Path(spec)
    if path.suffix.lower() != ".csv":
        raise UserError(f"--light-path must be orbit, sweep or a .csv file, got {spec!r}")
    if not path.is_file():
        raise UserError(f"light path file does not exist: {path}")
    with open(path, newline="") as f:
        rows = [r for r in csv.reader(f) if any(c.strip() for c in r)]
    header = [c.strip().lower() for c in rows[0]] if rows else []
    if not all(c in header for c in columns):
        raise UserError(f"{path}: the first line must be a header with the columns {', '.join(columns)}")
    index = [header.index(c) for c in columns]
    points = []
    for line, row in enumerate(rows[1:], start=2):
        try:
            points.append([float(row[i]) for i in index])
        except (IndexError, ValueError):
            raise UserError(f"{path}, line {line}: expected numbers in {', '.join(columns)}, got {','.join(row)!r}") \
                from None
    if not points or not np.isfinite(points).all():
        raise UserError(f"{path}: needs at least one row of finite {', '.join(columns)}")
    return np.asarray(points, np.float64)
