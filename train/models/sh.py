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

import numpy as np
import torch

from runtime.core.lighting import (SH_BASIS_NORMALISATION, SH_COEFFICIENTS, SH_CONSTANTS, SH_PRESETS, _monomials,
                        directional_sh, sh_preset)

__all__ = ["SH_CONSTANTS", "SH_BASIS_NORMALISATION", "SH_COEFFICIENTS", "sh_basis", "sh_shading", "directional_sh",
           "sh_preset", "SH_PRESETS", "sh_basis_numpy", "sh_shading_numpy"]


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
