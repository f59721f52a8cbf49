"""RelightUNet (seed 000): a dilated residual U-Net with an SE-style bridge that renders a
relit image from per-pixel light distances, light cosines, albedo and normals."""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import nn

from ..models.registry import config_dict

__all__ = ["UNetConfig", "ResidualBlock2D", "AttentionBlock2D", "RelightUNet", "UNET_PRESETS"]


@dataclass(frozen=True)
class UNetConfig:
    """Sizes of a RelightUNet. A preset only sets these."""

    albedo_channels: int = 3
    """Channels of the albedo input (3 for RGB, 1 for grey)."""
    input_widths: tuple[int, int, int, int] = (64, 64, 32, 32)
    """Output channels of the separate 3x3 input convs: distances, cosines, albedo, normals."""
    widths: tuple[int, int, int, int] = (128, 256, 512, 1024)
    """Channels of the four encoder blocks; the decoder mirrors the first three."""
    dilations: tuple[int, int, int, int] = (1, 2, 4, 8)
    """Dilation of each encoder block's convolutions."""
    attention_reduction: int = 16
    """Channel reduction of the bridge's squeeze-and-excitation FC layers."""
    out_channels: int = 3
    """Channels of the rendered image."""

    def __post_init__(self) -> None:
        for name in ("input_widths", "widths", "dilations"):
            value = tuple(getattr(self, name))
            object.__setattr__(self, name, value)
            if len(value) != 4 or any(int(v) < 1 for v in value):
                raise ValueError(f"{name} must be four positive integers, got {value}")
        if self.albedo_channels < 1:
            raise ValueError(f"albedo_channels must be >= 1, got {self.albedo_channels}")
        if self.attention_reduction < 1 or self.widths[3] // self.attention_reduction < 1:
            raise ValueError(
                f"attention_reduction {self.attention_reduction} leaves no channels of {self.widths[3]}"
            )
        if self.out_channels < 1:
            raise ValueError(f"out_channels must be >= 1, got {self.out_channels}")


UNET_PRESETS: dict[str, UNetConfig] = {
    # Exactly the seed's widths: 192 input channels, 128-1024 encoder, 1536/768/384 decoder inputs.
    "seed": UNetConfig(),
    # Same structure, narrow enough for video on an edge GPU and for CPU training.
    "edge": UNetConfig(input_widths=(8, 8, 8, 8), widths=(16, 32, 48, 64), attention_reduction=8),
    # Tiny, for tests.
    "test": UNetConfig(input_widths=(2, 2, 2, 2), widths=(4, 4, 8, 8), attention_reduction=4),
}


class ResidualBlock2D(nn.Module):
    """Two dilated 3x3 conv-BN layers with a residual connection (1x1 projection when widths differ)."""

    def __init__(self, in_channels: int, out_channels: int, dilation: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=dilation, dilation=dilation, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=dilation, dilation=dilation, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.shortcut: nn.Module = nn.Identity()
        if in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, bias=False), nn.BatchNorm2d(out_channels)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return F.relu(y + self.shortcut(x))


class AttentionBlock2D(nn.Module):
    """Squeeze-and-excitation channel attention: global average pool, FC, ReLU, FC, sigmoid, re-weight."""

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        self.fc1 = nn.Linear(channels, channels // reduction)
        self.fc2 = nn.Linear(channels // reduction, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weights = torch.sigmoid(self.fc2(F.relu(self.fc1(x.mean(dim=(2, 3))))))
        return x * weights[:, :, None, None]


def _upsample_to(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, size=like.shape[-2:], mode="bilinear", align_corners=False)


class RelightUNet(nn.Module):
    """Seed 000's relighting network.

    Inputs are NCHW float tensors of the same height and width (any size, odd included):
    distances (N,1), cosines (N,1), albedo (N,C), normals (N,3). Output: the relit image (N,3).
    """

    family = "unet"

    def __init__(self, config: UNetConfig | None = None, **overrides) -> None:
        super().__init__()
        config = replace(config or UNetConfig(), **overrides)
        self.config = config
        wd, wc, wa, wn = config.input_widths
        w1, w2, w3, w4 = config.widths
        d1, d2, d3, d4 = config.dilations
        self.conv_distances = nn.Conv2d(1, wd, 3, padding=1)
        self.conv_cosines = nn.Conv2d(1, wc, 3, padding=1)
        self.conv_albedo = nn.Conv2d(config.albedo_channels, wa, 3, padding=1)
        self.conv_normals = nn.Conv2d(3, wn, 3, padding=1)
        self.encoder1 = ResidualBlock2D(wd + wc + wa + wn, w1, dilation=d1)
        self.encoder2 = ResidualBlock2D(w1, w2, dilation=d2)
        self.encoder3 = ResidualBlock2D(w2, w3, dilation=d3)
        self.encoder4 = ResidualBlock2D(w3, w4, dilation=d4)
        self.pool = nn.MaxPool2d(2, ceil_mode=True)  # any size, down to 1x1, survives three poolings
        self.bridge = AttentionBlock2D(w4, config.attention_reduction)
        self.decoder3 = ResidualBlock2D(w4 + w3, w3)
        self.decoder2 = ResidualBlock2D(w3 + w2, w2)
        self.decoder1 = ResidualBlock2D(w2 + w1, w1)
        self.final_conv = nn.Conv2d(w1, config.out_channels, 1)

    def forward(
        self, distances: torch.Tensor, cosines: torch.Tensor, albedo: torch.Tensor, normals: torch.Tensor
    ) -> torch.Tensor:
        x = torch.cat(
            [
                self.conv_distances(distances),
                self.conv_cosines(cosines),
                self.conv_albedo(albedo),
                self.conv_normals(normals),
            ],
            dim=1,
        )
        e1 = self.encoder1(x)
        e2 = self.encoder2(self.pool(e1))
        e3 = self.encoder3(self.pool(e2))
        e4 = self.encoder4(self.pool(e3))
        b = self.bridge(e4)
        x = self.decoder3(torch.cat([_upsample_to(b, e3), e3], dim=1))
        x = self.decoder2(torch.cat([_upsample_to(x, e2), e2], dim=1))
        x = self.decoder1(torch.cat([_upsample_to(x, e1), e1], dim=1))
        return self.final_conv(x)

    def io_contract(self) -> dict:
        """Names, channels, value ranges and normalisation of the inputs and the output."""
        c = self.config
        return {
            "layout": "NCHW",
            "dtype": "float32",
            "inputs": [
                {"name": "distances", "channels": 1, "range": [0.0, None],
                 "normalisation": "none: Euclidean distance from surface point to light, scene units"},
                {"name": "cosines", "channels": 1, "range": [0.0, 1.0],
                 "normalisation": "none: max(n.l, 0), n the unit normal, l the unit direction to the light"},
                {"name": "albedo", "channels": c.albedo_channels, "range": [0.0, 1.0],
                 "normalisation": "none: linear reflectance"},
                {"name": "normals", "channels": 3, "range": [-1.0, 1.0],
                 "normalisation": "none: unit vectors (x right, y down, z towards the camera)"},
            ],
            "outputs": [
                {"name": "image", "channels": c.out_channels, "range": [0.0, 1.0],
                 "normalisation": "none: linear RGB; clip to [0, 1] for display"},
            ],
        }

    def config_dict(self) -> dict:
        """The full config as plain JSON-able values."""
        return config_dict(self.config)

