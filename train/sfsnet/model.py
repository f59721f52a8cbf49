"""SfSNet with a shading residue (seed 002, its method 3 "Shading Residue").

The image is decomposed into unit normals, albedo and 27 SH lighting coefficients as in SfSNet:
shared convolutional features, one stack of residual blocks per intrinsic (normal, albedo), each
followed by an upsampling generator, and a light estimator that pools the image, normal and albedo
features into the SH vector. Method 3 adds a third residual stack and generator on the image
features that predicts a shading residue, added to the SH shading to capture what 27 coefficients
miss (cast shadows, highlights, the error of the second-order approximation):

    shading        = sh_shading(normals, sh) + residue
    reconstruction = albedo * shading

Relighting replaces the SH coefficients (``relight``). The residue belongs to the light of the input
image, so it is dropped by default when relighting; ``residue_weight=1`` keeps it.

Presets: ``seed`` is SfSNet's network as published (64/128 channels, one stride-2 convolution, five
residual blocks per stack, albedo generated outright). ``edge`` keeps the structure and changes
three things for video-rate cost and CPU-trainable accuracy: the stacks run at 1/4 resolution (two
stride-2 convolutions, which also widens their view to a whole face), the generators also see the
full-resolution stem features (a skip connection), and albedo is the frame times a predicted
smooth gain, so texture comes from the frame instead of being regenerated from coarse features.
"""


from __future__ import annotations

from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import nn

from ..models.registry import config_dict
from ..models.sh import SH_COEFFICIENTS, sh_basis, sh_shading

__all__ = ["SfSNetConfig", "SfSNet", "SFSNET_PRESETS", "SFSNET_OUTPUTS"]

SFSNET_OUTPUTS = ("normals", "albedo", "sh", "residue", "reconstruction")


@dataclass(frozen=True)
class SfSNetConfig:
    """Sizes of an SfSNet. A preset only sets these."""

    stem_channels: int = 64
    """Output channels of the 7x7 input convolution (and of the generators' last hidden conv)."""
    channels: int = 128
    """Channels of the shared features, the residual blocks and the light estimator."""
    blocks: int = 5
    """Residual blocks in each of the normal, albedo and residue stacks."""
    residue: bool = True
    """Predict the shading residue (method 3). Off gives plain SfSNet."""
    skip: bool = False
    """Feed the full-resolution stem features to each generator (a skip connection SfSNet lacks;
    it keeps texture and fine shape that the downsampled stacks lose)."""
    albedo_from_image: bool = False
    """Predict albedo as the image times a gain, exp(g), that the albedo generator estimates (an
    inverse shading), instead of generating it outright as SfSNet does: texture then comes straight
    from the frame and the network only has to find the smooth gain."""
    light_moments: bool = False
    """Give the light estimator, besides SfSNet's pooled features, the moments a least-squares SH
    fit needs: the means of H(n) x shading and of H(n) H(n)^T over the frame, from the predicted
    normals and the shading the predicted albedo implies (image / albedo)."""
    downsample: int = 1
    """Stride-2 convolutions before the residual stacks (SfSNet has one; two quarter the cost of the
    stacks and widen their view)."""
    mask: bool = False
    """Also predict where the person is (head, hair, body), a probability per pixel from the albedo
    features: the real-time relighting chain relights the person and can leave the background alone."""

    def __post_init__(self) -> None:
        for name in ("stem_channels", "channels", "blocks", "downsample"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")


SFSNET_PRESETS: dict[str, SfSNetConfig] = {
    # The seed's (SfSNet's) widths: 64-channel stem, 128-channel features, five residual blocks.
    "seed": SfSNetConfig(),
    # Same structure, narrow enough for video and CPU training.
    "edge": SfSNetConfig(stem_channels=16, channels=48, blocks=3, downsample=2, skip=True, albedo_from_image=True,
                         light_moments=True),
    # The edge network with a person mask, trained on the face-mesh renderer's people (``--data people``):
    # the decomposition of the real-time relighting chain (relight_edge), run at 1/4 of the frame's size.
    "face": SfSNetConfig(stem_channels=16, channels=48, blocks=3, downsample=2, skip=True, albedo_from_image=True,
                         light_moments=True, mask=True),
    # Tiny, for tests.
    "test": SfSNetConfig(stem_channels=4, channels=8, blocks=1),
}


def _conv_bn_relu(cin: int, cout: int, kernel: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, kernel, stride, kernel // 2, bias=False), nn.BatchNorm2d(cout),
                         nn.ReLU(inplace=True))


class ResidualBlock(nn.Module):
    """SfSNet's pre-activation residual block: BN-ReLU-conv-BN-ReLU-conv plus the input."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.BatchNorm2d(channels), nn.ReLU(inplace=False), nn.Conv2d(channels, channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(channels), nn.ReLU(inplace=True), nn.Conv2d(channels, channels, 3, padding=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


def _residual_stack(channels: int, blocks: int) -> nn.Sequential:
    return nn.Sequential(*(ResidualBlock(channels) for _ in range(blocks)), nn.BatchNorm2d(channels), nn.ReLU(inplace=True))


class Generator(nn.Module):
    """Upsample to the input size, (concatenate the stem's features,) 1x1 conv, 3x3 conv, 1x1 conv to three channels
    (or ``out_channels``)."""

    def __init__(self, channels: int, stem_channels: int, skip: bool = False, out_channels: int = 3) -> None:
        super().__init__()
        self.skip = skip
        self.body = nn.Sequential(_conv_bn_relu(channels + (stem_channels if skip else 0), channels, 1),
                                  _conv_bn_relu(channels, stem_channels, 3), nn.Conv2d(stem_channels, out_channels, 1))

    def forward(self, x: torch.Tensor, stem: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, size=stem.shape[-2:], mode="bilinear", align_corners=False)
        return self.body(torch.cat([x, stem], dim=1) if self.skip else x)


class MomentLightEstimator(nn.Module):
    """SfSNet's light estimator (1x1 conv, pooling) with the moments of a least-squares SH fit added."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.pool = nn.Sequential(_conv_bn_relu(3 * channels, channels, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Sequential(nn.Linear(channels + 27 + 81, channels), nn.ReLU(inplace=True),
                                  nn.Linear(channels, SH_COEFFICIENTS))

    def forward(self, features: torch.Tensor, normals: torch.Tensor, shading: torch.Tensor) -> torch.Tensor:
        basis = sh_basis(normals)  # (N, 9, H, W)
        pixels = normals.shape[-2] * normals.shape[-1]
        hs = torch.einsum("nkhw,nchw->nck", basis, shading) / pixels  # (N, 3, 9): R, G, B order
        hh = torch.einsum("nkhw,njhw->nkj", basis, basis) / pixels  # (N, 9, 9)
        return self.head(torch.cat([self.pool(features), hs.flatten(1), hh.flatten(1)], dim=1))


class SfSNet(nn.Module):
    """Seed 002's decomposition network.

    Input: ``image`` (N, 3, H, W), linear RGB in [0, 1], any size (odd included). Outputs, in order:
    ``normals`` (N, 3, H, W) unit vectors, ``albedo`` (N, 3, H, W) in [0, 1], ``sh`` (N, 27),
    ``residue`` (N, 3, H, W) and ``reconstruction`` (N, 3, H, W) = albedo * (SH shading + residue).
    """

    family = "sfsnet"

    def __init__(self, config: SfSNetConfig | None = None, **overrides) -> None:
        super().__init__()
        config = replace(config or SfSNetConfig(), **overrides)
        self.config = config
        c, s = config.channels, config.stem_channels
        self.stem = _conv_bn_relu(3, s, 7)
        self.features = nn.Sequential(_conv_bn_relu(s, c, 3),
                                      *(_conv_bn_relu(c, c, 3, stride=2) for _ in range(config.downsample)))
        self.normal_features = _residual_stack(c, config.blocks)
        self.albedo_features = _residual_stack(c, config.blocks)
        self.normal_generator = Generator(c, s, config.skip)
        self.albedo_generator = Generator(c, s, config.skip)
        if config.light_moments:
            self.light_estimator = MomentLightEstimator(c)
        else:
            self.light_estimator = nn.Sequential(_conv_bn_relu(3 * c, c, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                                                 nn.Linear(c, SH_COEFFICIENTS))
        if config.residue:
            self.residue_features = _residual_stack(c, config.blocks)
            self.residue_generator = Generator(c, s, config.skip)
        if config.mask:
            self.mask_generator = Generator(c, s, config.skip, out_channels=1)

    def decompose(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        """normals, albedo, sh, residue, shading (SH shading plus residue) and reconstruction; with
        ``config.mask`` also ``mask`` (N, 1, H, W), the probability that a pixel belongs to the person."""
        stem = self.stem(image)
        features = self.features(stem)
        normal_features = self.normal_features(features)
        albedo_features = self.albedo_features(features)
        normals = F.normalize(self.normal_generator(normal_features, stem), dim=1, eps=1e-6)
        albedo = self._albedo(image, self.albedo_generator(albedo_features, stem))
        pooled = torch.cat([features, normal_features, albedo_features], dim=1)
        if self.config.light_moments:
            sh = self.light_estimator(pooled, normals, image / albedo.clamp_min(0.02))
        else:
            sh = self.light_estimator(pooled)
        if self.config.residue:
            residue = self.residue_generator(self.residue_features(features), stem)
        else:
            residue = torch.zeros_like(albedo)
        shading = sh_shading(normals, sh) + residue
        parts = {"normals": normals, "albedo": albedo, "sh": sh, "residue": residue, "shading": shading,
                 "reconstruction": albedo * shading}
        if self.config.mask:
            parts["mask"] = torch.sigmoid(self.mask_generator(albedo_features, stem))
        return parts

    def intrinsics(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Unit normals and albedo only (the light and residue branches are skipped)."""
        stem = self.stem(image)
        features = self.features(stem)
        normals = F.normalize(self.normal_generator(self.normal_features(features), stem), dim=1, eps=1e-6)
        albedo = self._albedo(image, self.albedo_generator(self.albedo_features(features), stem))
        return normals, albedo

    def _albedo(self, image: torch.Tensor, raw: torch.Tensor) -> torch.Tensor:
        if self.config.albedo_from_image:
            return (image * torch.exp(4.0 * torch.tanh(raw * 0.25))).clamp(0.0, 1.0)
        return torch.sigmoid(raw)

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, ...]:
        parts = self.decompose(image)
        return tuple(parts[name] for name in SFSNET_OUTPUTS)

    def relight(self, image: torch.Tensor, sh: torch.Tensor, residue_weight: float = 0.0) -> torch.Tensor:
        """The image under new SH coefficients (N, 27): albedo * (sh_shading(normals, sh) + w * residue)."""
        parts = self.decompose(image)
        sh = sh.to(image.dtype).expand(image.shape[0], -1)
        return parts["albedo"] * (sh_shading(parts["normals"], sh) + residue_weight * parts["residue"])

    def io_contract(self) -> dict:
        """Names, channels, value ranges and normalisation of the inputs and the outputs."""
        return {
            "layout": "NCHW",
            "dtype": "float32",
            "inputs": [
                {"name": "image", "channels": 3, "range": [0.0, 1.0], "normalisation": "none: linear RGB"},
            ],
            "outputs": [
                {"name": "normals", "channels": 3, "range": [-1.0, 1.0],
                 "normalisation": "none: unit vectors (x right, y down, z towards the camera)"},
                {"name": "albedo", "channels": 3, "range": [0.0, 1.0], "normalisation": "none: linear reflectance"},
                {"name": "sh", "shape": ["N", SH_COEFFICIENTS], "range": [None, None],
                 "normalisation": "SfSNet second-order SH of the radiance, R(0..8) G(9..17) B(18..26)"},
                {"name": "residue", "channels": 3, "range": [None, None],
                 "normalisation": "none: shading residue added to the SH shading"},
                {"name": "reconstruction", "channels": 3, "range": [0.0, 1.0],
                 "normalisation": "none: linear RGB, albedo * (SH shading + residue)"},
            ],
        }

    def config_dict(self) -> dict:
        """The full config as plain JSON-able values."""
        return config_dict(self.config)

