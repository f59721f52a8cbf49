"""The camera relighting chain: one exportable model from a trained ``sfsnet`` and a trained ``unet``.

``relight_point``: frame + point light (x, y, z) -> relit frame.
    SfSNet estimates unit normals and albedo from the frame; the surface is taken as the plane z = 0
    spanning x in [-1, 1] (left to right) and y in [-H/W, H/W] (top to bottom), the frame of the
    synthetic relighting scenes the U-Net learns from; per-pixel distances to the light and
    cosines max(n.l, 0) follow, and the U-Net renders the frame under that light.
``relight_sh``: frame + 27 SH coefficients -> relit frame, SfSNet's light model:
    albedo * sh_shading(normals, sh).

Frames are sRGB in [0, 1] by default (``srgb=True``), as cameras deliver them; the chain works in
linear RGB inside. ``python -m train.relight compose`` builds one from two checkpoints.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from ..models.registry import create_model
from ..models.sh import SH_COEFFICIENTS, sh_shading

__all__ = ["RelightConfig", "RelightChain", "srgb_to_linear", "linear_to_srgb", "plane_geometry", "relight_point",
           "relight_sh"]


def srgb_to_linear(x: torch.Tensor) -> torch.Tensor:
    """The sRGB transfer function, inverted (IEC 61966-2-1)."""
    x = x.clamp(0.0, 1.0)
    return torch.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055).clamp_min(1e-8) ** 2.4)


def linear_to_srgb(x: torch.Tensor) -> torch.Tensor:
    """The sRGB transfer function (IEC 61966-2-1)."""
    x = x.clamp(0.0, 1.0)
    return torch.where(x <= 0.0031308, x * 12.92, 1.055 * x.clamp_min(1e-8) ** (1 / 2.4) - 0.055)


def plane_geometry(normals: torch.Tensor, light: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Distances (N,1,H,W) and cosines max(n.l, 0) (N,1,H,W) from the plane z = 0 to a point light (N,3)."""
    n, _, h, w = normals.shape
    dtype, device = normals.dtype, normals.device
    xs = torch.arange(w, dtype=dtype, device=device) * (2.0 / max(w - 1, 1)) - 1.0
    ys = (torch.arange(h, dtype=dtype, device=device) * (2.0 / max(h - 1, 1)) - 1.0) * (h / w)
    lx = light[:, 0].to(dtype).reshape(-1, 1, 1, 1)
    ly = light[:, 1].to(dtype).reshape(-1, 1, 1, 1)
    lz = light[:, 2].to(dtype).reshape(-1, 1, 1, 1)
    dx = lx - xs.reshape(1, 1, 1, w)
    dy = ly - ys.reshape(1, 1, h, 1)
    dz = lz.expand(-1, 1, h, w)
    dx, dy = dx.expand(-1, 1, h, w), dy.expand(-1, 1, h, w)
    distances = torch.sqrt(dx * dx + dy * dy + dz * dz).clamp_min(1e-6)
    cosines = ((normals[:, 0:1] * dx + normals[:, 1:2] * dy + normals[:, 2:3] * dz) / distances).clamp_min(0.0)
    return distances, cosines


@dataclass(frozen=True)
class RelightConfig:
    """Which trained models the chain holds, and its I/O."""

    light: str = "point"
    """'point' (a point light, rendered by the U-Net) or 'sh' (27 SH coefficients, SfSNet's shading)."""
    sfsnet: dict = field(default_factory=lambda: {"name": "sfsnet_edge", "config": {}})
    """Registry name and config of the decomposition network."""
    unet: dict | None = field(default_factory=lambda: {"name": "unet_edge", "config": {}})
    """Registry name and config of the renderer (None for 'sh')."""
    srgb: bool = True
    """Frames in and out are sRGB (else linear RGB)."""

    def __post_init__(self) -> None:
        if self.light not in ("point", "sh"):
            raise ValueError(f"light must be 'point' or 'sh', got {self.light!r}")
        if not str(self.sfsnet.get("name", "")).startswith("sfsnet_"):
            raise ValueError(f"the decomposition network must be an sfsnet model, got {self.sfsnet.get('name')!r}")
        if self.light == "point":
            if not self.unet or not str(self.unet.get("name", "")).startswith("unet_"):
                raise ValueError(f"a point-light chain needs a unet model, got {self.unet and self.unet.get('name')!r}")


class RelightChain(nn.Module):
    """Frame (N, 3, H, W) and light -> relit frame (N, 3, H, W). See the module docstring."""

    family = "relight"

    def __init__(self, config: RelightConfig) -> None:
        super().__init__()
        self.config = config
        self.sfsnet = create_model(config.sfsnet["name"], **config.sfsnet.get("config", {}))
        if config.light == "point":
            self.unet = create_model(config.unet["name"], **config.unet.get("config", {}))
            if self.unet.config.albedo_channels != 3:
                raise ValueError(f"the unet takes {self.unet.config.albedo_channels}-channel albedo; the chain needs 3")

    def forward(self, image: torch.Tensor, light: torch.Tensor) -> torch.Tensor:
        linear = srgb_to_linear(image) if self.config.srgb else image
        normals, albedo = self.sfsnet.intrinsics(linear)
        if self.config.light == "point":
            distances, cosines = plane_geometry(normals, light)
            relit = self.unet(distances, cosines, albedo, normals)
        else:
            relit = albedo * sh_shading(normals, light.to(albedo.dtype).expand(image.shape[0], -1))
        relit = relit.clamp(0.0, 1.0)
        return linear_to_srgb(relit) if self.config.srgb else relit

    def io_contract(self) -> dict:
        space = "sRGB" if self.config.srgb else "linear RGB"
        if self.config.light == "point":
            light = {"name": "light", "shape": ["N", 3], "range": [None, None],
                     "normalisation": "point light (x, y, z) in scene units: the frame spans x in [-1, 1] left to "
                                      "right and y in [-H/W, H/W] top to bottom on the plane z = 0; z is the "
                                      "height above it (the training scenes use 2.2 to 3.5)"}
        else:
            light = {"name": "sh", "shape": ["N", SH_COEFFICIENTS], "range": [None, None],
                     "normalisation": "SfSNet second-order SH of the radiance, R(0..8) G(9..17) B(18..26)"}
        return {
            "layout": "NCHW",
            "dtype": "float32",
            "inputs": [{"name": "image", "channels": 3, "range": [0.0, 1.0], "normalisation": f"none: {space}"}, light],
            "outputs": [{"name": "relit", "channels": 3, "range": [0.0, 1.0], "normalisation": f"none: {space}"}],
        }

    def config_dict(self) -> dict:
        return {"light": self.config.light, "sfsnet": dict(self.config.sfsnet),
                "unet": dict(self.config.unet) if self.config.unet else None, "srgb": self.config.srgb}


def relight_point(**overrides) -> RelightChain:
    """Point-light chain: sfsnet normals and albedo, plane geometry, unet rendering."""
    return RelightChain(RelightConfig(**{"light": "point", **overrides}))


def relight_sh(**overrides) -> RelightChain:
    """SH chain: sfsnet normals and albedo, SfSNet's SH shading."""
    overrides = {"light": "sh", "unet": None, **overrides}
    return RelightChain(RelightConfig(**overrides))
