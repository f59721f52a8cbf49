"""``relight_edge``: real-time relighting as a shading ratio, decided at low resolution and applied to the frame.

The full chains (``relight_sh``, ``relight_point``) regenerate the frame from SfSNet's normals and albedo at
full resolution: slow, and whatever the decomposition misses (skin texture, hair, eyes) is lost. This model
keeps the frame and only changes its shading:

    low       = area downsample of the frame by ``scale``         (replicate-padded to a multiple of it)
    parts     = sfsnet.decompose(linear(low))                     normals, the frame's light, person mask
    sh_in     = w * previous estimate + (1 - w) * parts["sh"]     (``history``: temporal smoothing of the light)
    ratio     = min(max(S(n, sh), 0) / max(S(n, sh_in), floor), max_gain)   S: SfSNet's SH shading
    m         = ratio ** (1 / 2.2)                                a linear gain, applied to sRGB values
    m         = 1 + (mask + (1 - mask) * background) * (m - 1)    the person relit; the background as asked
    relit     = frame * guided_upsample(m, guide = luma of the frame)

Detail and identity come from the frame itself; the network only decides how the shading changes, at
1/``scale`` of the frame's size (1/16 of the pixels at the default 4). The low-resolution multiplier is
brought back to full resolution by a guided filter (He, Sun and Tang, "Guided Image Filtering", used as
guided upsampling): per channel, ``m ~ a * g + b`` is fitted in each low-resolution window of the luma ``g``;
``a`` and ``b`` are smoothed, upsampled bilinearly and applied to the full-resolution luma, so the
multiplier follows the frame's edges (hair, the outline of the face) instead of the blocky low-resolution
grid. ``a`` and ``b`` are upsampled to the frame's size (exactly aligned when the frame's sides are multiples
of ``scale``, as 360p, 720p and 1080p are at 4; otherwise stretched by less than one low-resolution pixel).
At full resolution only the padding, the area average, the luma, two bilinear upsamplings and four
elementwise operations run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from ..models.registry import create_model
from ..models.sh import SH_COEFFICIENTS, sh_shading
from .model import srgb_to_linear

__all__ = ["LUMA", "RelightEdge", "RelightEdgeConfig", "box_mean", "guided_upsample", "luma", "relight_edge"]

LUMA = (0.2126, 0.7152, 0.0722)
"""Rec. 709 luma weights (the primaries of sRGB), applied to the frame's own (sRGB) values: the guide."""

GAMMA = 2.2
"""A linear gain ``k`` on a linear value is close to a gain ``k ** (1 / GAMMA)`` on its sRGB value."""


@dataclass(frozen=True)
class RelightEdgeConfig:
    """The decomposition network, the working resolution and the limits of the shading change."""

    light: ClassVar[str] = "sh"
    """The light input is 27 SH coefficients (as ``relight_sh``'s)."""
    sfsnet: dict = field(default_factory=lambda: {"name": "sfsnet_face", "config": {}})
    """Registry name and config of the decomposition network; one with a person mask (``sfsnet_face``) lets
    the background stay as it is. Its shading residue is not built unless the config asks for it
    (``residue: false`` by default): the ratio needs only normals, the light and the mask."""
    scale: int = 4
    """The decomposition runs at 1/scale of the frame's height and width."""
    radius: int = 2
    """Radius, in low-resolution pixels, of the guided filter's windows."""
    eps: float = 1e-3
    """The guided filter's regulariser: a larger value smooths the multiplier more across weak edges."""
    floor: float = 0.05
    """The smallest value of the frame's estimated shading that is divided by (dark, unlit parts are not
    amplified without bound)."""
    max_gain: float = 4.0
    """The largest linear shading ratio (new over old)."""
    srgb: bool = True
    """Frames in and out are sRGB (else linear RGB, and the ratio is applied as it is)."""

    def __post_init__(self) -> None:
        if not isinstance(self.sfsnet, dict) or not str(self.sfsnet.get("name", "")).startswith("sfsnet_"):
            name = self.sfsnet.get("name") if isinstance(self.sfsnet, dict) else self.sfsnet
            raise ValueError(f"sfsnet: the decomposition network must be an sfsnet model, got {name!r}")
        if isinstance(self.scale, bool) or not isinstance(self.scale, int) or not 1 <= self.scale <= 16:
            raise ValueError(f"scale must be an integer from 1 to 16, got {self.scale!r}")
        if isinstance(self.radius, bool) or not isinstance(self.radius, int) or not 0 <= self.radius <= 16:
            raise ValueError(f"radius must be an integer from 0 to 16, got {self.radius!r}")
        if not self.eps > 0:
            raise ValueError(f"eps must be positive, got {self.eps!r}")
        if not self.floor > 0:
            raise ValueError(f"floor must be positive, got {self.floor!r}")
        if not self.max_gain >= 1:
            raise ValueError(f"max_gain must be at least 1, got {self.max_gain!r}")


def box_mean(x: torch.Tensor, radius: int) -> torch.Tensor:
    """The mean over (2 radius + 1)^2 windows, the borders replicated: same size as ``x``."""
    if radius == 0:
        return x
    return F.avg_pool2d(F.pad(x, (radius,) * 4, mode="replicate"), 2 * radius + 1, stride=1)


def luma(image: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) -> (N, 1, H, W): the ``LUMA``-weighted sum of the channels (elementwise: cheaper at full
    resolution than a 1x1 convolution with one output channel)."""
    r, g, b = torch.split(image, 1, dim=1)
    return LUMA[0] * r + LUMA[1] * g + LUMA[2] * b


def guided_upsample(guide_low: torch.Tensor, target_low: torch.Tensor, guide_full: torch.Tensor, radius: int,
                    eps: float) -> torch.Tensor:
    """He et al.'s guided filter used as upsampling: ``target_low`` (N, C, h, w) -> (N, C, H, W).

    Args:
        guide_low: (N, 1, h, w) the guide at the target's resolution.
        target_low: (N, C, h, w) what is brought to full resolution, fitted per channel as ``a * guide + b``
            in every window.
        guide_full: (N, 1, H, W) the guide at full resolution; ``a`` and ``b`` are upsampled bilinearly to it.
        radius, eps: the windows' radius (low-resolution pixels) and the regulariser.
    """
    c = target_low.shape[1]
    stats = box_mean(torch.cat([guide_low, target_low, guide_low * target_low, guide_low * guide_low], dim=1), radius)
    mean_g, mean_t, mean_gt, mean_gg = torch.split(stats, [1, c, c, 1], dim=1)
    a = (mean_gt - mean_g * mean_t) / (mean_gg - mean_g * mean_g + eps)
    b = mean_t - a * mean_g
    ab = box_mean(torch.cat([a, b], dim=1), radius)
    size = guide_full.shape[-2:]
    a = F.interpolate(ab[:, :c], size=size, mode="bilinear", align_corners=False)
    b = F.interpolate(ab[:, c:], size=size, mode="bilinear", align_corners=False)
    return a * guide_full + b


class RelightEdge(nn.Module):
    """Frame (N, 3, H, W), target SH light, background weight and light history -> relit frame and the
    frame's light estimate. See the module docstring."""

    family = "relight"

    def __init__(self, config: RelightEdgeConfig) -> None:
        super().__init__()
        self.config = config
        self.sfsnet = create_model(config.sfsnet["name"], **{"residue": False, **config.sfsnet.get("config", {})})

    def decompose(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        """The decomposition at 1/scale of the frame: the sfsnet's parts (normals, albedo, sh, ...) and ``low``,
        the downsampled frame (as given: sRGB by default)."""
        s = self.config.scale
        low = image
        if s > 1:  # area average; the last rows and columns replicated up to a multiple of the scale
            h, w = image.shape[-2], image.shape[-1]
            low = F.avg_pool2d(F.pad(image, (0, (-w) % s, 0, (-h) % s), mode="replicate"), s)
        parts = self.sfsnet.decompose(srgb_to_linear(low) if self.config.srgb else low.clamp(0.0, 1.0))
        return {**parts, "low": low}

    def forward(self, image: torch.Tensor, sh: torch.Tensor, background: torch.Tensor,
                history: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Relight ``image``.

        Args:
            image: (N, 3, H, W) in [0, 1], sRGB (or linear with ``srgb=False``), any H and W.
            sh: (N, 27) the target light.
            background: (N, 1) in [0, 1]: how much the background follows the new light (0 untouched).
            history: (N, 28): the weight of the previous light estimate (0 on a first frame), then that estimate.

        Returns:
            ``relit`` (N, 3, H, W) in [0, 1] and ``sh_estimate`` (N, 27), the smoothed light of the frame.
        """
        cfg = self.config
        parts = self.decompose(image)
        low, normals = parts["low"], parts["normals"]
        mask = parts["mask"] if "mask" in parts else torch.ones_like(normals[:, :1])

        weight = history[:, :1].to(normals.dtype).clamp(0.0, 1.0)
        sh_in = weight * history[:, 1:].to(normals.dtype) + (1.0 - weight) * parts["sh"]
        target = sh.to(normals.dtype).expand(normals.shape[0], -1)
        ratio = sh_shading(normals, target).clamp_min(0.0) / sh_shading(normals, sh_in).clamp_min(cfg.floor)
        gain = ratio.clamp(0.0, cfg.max_gain)
        if cfg.srgb:
            gain = gain ** (1.0 / GAMMA)
        follow = mask + (1.0 - mask) * background.to(normals.dtype).reshape(-1, 1, 1, 1)
        gain = 1.0 + follow * (gain - 1.0)

        multiplier = guided_upsample(luma(low), gain, luma(image), cfg.radius, cfg.eps)
        return (image * multiplier).clamp(0.0, 1.0), sh_in

    def io_contract(self) -> dict:
        space = "sRGB" if self.config.srgb else "linear RGB"
        sh_norm = "SfSNet second-order SH of the radiance, R(0..8) G(9..17) B(18..26)"
        return {
            "layout": "NCHW",
            "dtype": "float32",
            "inputs": [
                {"name": "image", "channels": 3, "range": [0.0, 1.0], "normalisation": f"none: {space}"},
                {"name": "sh", "shape": ["N", SH_COEFFICIENTS], "range": [None, None],
                 "normalisation": f"the target light: {sh_norm}"},
                {"name": "background", "shape": ["N", 1], "range": [0.0, 1.0],
                 "normalisation": "how much the background follows the new light: 0 untouched, 1 relit with the "
                                  "person"},
                {"name": "history", "shape": ["N", SH_COEFFICIENTS + 1], "range": [None, None],
                 "normalisation": "weight of the previous light estimate (0 on a first frame) then that estimate: "
                                  "the previous frame's sh_estimate"},
            ],
            "outputs": [
                {"name": "relit", "channels": 3, "range": [0.0, 1.0], "normalisation": f"none: {space}"},
                {"name": "sh_estimate", "shape": ["N", SH_COEFFICIENTS], "range": [None, None],
                 "normalisation": f"the frame's light, smoothed with the history: {sh_norm}"},
            ],
        }

    def config_dict(self) -> dict:
        c = self.config
        return {"sfsnet": dict(c.sfsnet), "scale": c.scale, "radius": c.radius, "eps": c.eps, "floor": c.floor,
                "max_gain": c.max_gain, "srgb": c.srgb}


def relight_edge(**overrides) -> RelightEdge:
    """Real-time relighting: an SH shading ratio from sfsnet at low resolution, applied to the frame through
    a guided filter."""
    return RelightEdge(RelightEdgeConfig(**overrides))
