"""SfSNet's spherical-harmonics shading layer (seed 002).

Nine second-order coefficients per colour channel, 27 in all, ordered R(0..8), G(9..17), B(18..26).
The basis is SfSNet's, with the clamped-cosine attenuation (pi, 2pi/3, pi/4) folded into the
constants, so ``shading(n) = sum_k L_k H_k(n)`` is irradiance and ``image = albedo * shading``:

    k  H_k(n)                          k  H_k(n)
    0  0.886227                         5  0.858086 * x * z
    1  1.023327 * z                     6  0.858086 * y * z
    2  1.023327 * x                     7  0.429043 * (x^2 - y^2)
    3  1.023327 * y                     8  0.858086 * x * y
    4  0.247708 * (2z^2 - x^2 - y^2)

``L_k`` are the SH coefficients of the incoming radiance, so a distant light of colour ``c`` from
unit direction ``d`` has ``L_k = c * Y_k(d)`` (``directional_sh``), and the layer then gives the
best second-order approximation of ``c * max(n.d, 0)``. Normals are unit vectors in the frame of the
relighting contract: x right, y down the image, z towards the camera.

Everything here is plain tensor arithmetic: differentiable and exportable to ONNX.
"""

from __future__ import annotations

import math

import numpy as np
import torch

__all__ = ["SH_CONSTANTS", "SH_BASIS_NORMALISATION", "SH_COEFFICIENTS", "sh_basis", "sh_shading", "directional_sh",
           "sh_preset", "SH_PRESETS", "sh_basis_numpy", "sh_shading_numpy"]

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


def sh_basis(normals: torch.Tensor) -> torch.Tensor:
    """The nine attenuated basis functions H_k of unit normals (N, 3, H, W) -> (N, 9, H, W)."""
    x, y, z = normals[:, 0:1], normals[:, 1:2], normals[:, 2:3]
    terms = _monomials(x, y, z, torch.ones_like(x))
    return torch.cat([c * t for c, t in zip(SH_CONSTANTS, terms)], dim=1)


def sh_shading(normals: torch.Tensor, sh: torch.Tensor) -> torch.Tensor:
    """Shading (N, 3, H, W) from unit normals (N, 3, H, W) and coefficients (N, 27) in R, G, B order."""
    if sh.shape[-1] != SH_COEFFICIENTS:
        raise ValueError(f"expected {SH_COEFFICIENTS} SH coefficients, got {sh.shape[-1]}")
    basis = sh_basis(normals)  # (N, 9, H, W)
    coefficients = sh.reshape(sh.shape[0], 3, 9)
    return torch.einsum("nck,nkhw->nchw", coefficients.to(basis.dtype), basis)


def sh_basis_numpy(normals: np.ndarray) -> np.ndarray:
    """``sh_basis`` for channel-last numpy normals (..., 3) -> (..., 9)."""
    n = np.asarray(normals, np.float64)
    x, y, z = n[..., 0], n[..., 1], n[..., 2]
    terms = _monomials(x, y, z, np.ones_like(x))
    return np.stack([c * t for c, t in zip(SH_CONSTANTS, terms)], axis=-1)


def sh_shading_numpy(normals: np.ndarray, sh: np.ndarray) -> np.ndarray:
    """``sh_shading`` for channel-last numpy arrays: normals (..., 3), sh (27,) -> shading (..., 3)."""
    sh = np.asarray(sh, np.float64).reshape(3, 9)
    return (sh_basis_numpy(normals) @ sh.T).astype(np.float32)


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
