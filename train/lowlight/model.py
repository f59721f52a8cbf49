"""Low-light enhancement (seed 003): IllRecNet and a real-time edge variant.

IllRecNet separates each colour channel into illumination and reflectance with a Gaussian
approximation of homomorphic filtering, encodes the two maps with self- and cross-attention into a
context, and decodes the original image with a U-Net that cross-attends to that context at several
resolutions.

The edge variant keeps the separation, the attention encoder and the cross-attention, but encodes a
fixed-size thumbnail into a fixed number of context tokens, runs the cross-attention at 1/4
resolution and predicts per-pixel curve parameters (Zero-DCE's quadratic curves) that are upsampled
and applied to the full-resolution input, followed by a small denoiser that works at half resolution
on space-to-depth blocks. Its cost per pixel is constant and it keeps full-resolution detail.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import nn

from ..models.registry import config_dict

__all__ = [
    "IllRecConfig", "EdgeConfig", "EdgeV2Config", "ZeroDCEConfig", "Separation", "SelfAttentionBlock",
    "CrossAttentionBlock", "Encoder", "Decoder", "IllRecNet", "LowLightEdge", "LowLightEdgeV2", "ZeroDCEReference",
    "LOWLIGHT_PRESETS",
]


def _gaussian_kernel(size: int, sigma: float) -> torch.Tensor:
    coords = torch.arange(size, dtype=torch.float32) - (size - 1) / 2
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    kernel = torch.outer(g, g)
    return kernel / kernel.sum()


class Separation(nn.Module):
    """Homomorphic filtering approximated with a Gaussian kernel, per colour channel.

    log(x) is low-pass filtered into log-illumination; the rest is log-reflectance, so
    ``illumination * reflectance == x + eps`` exactly. The kernel is frozen unless ``trainable``;
    a trainable kernel is renormalised to sum to one, so it stays a low-pass average.
    """

    def __init__(self, channels: int = 3, kernel_size: int = 15, sigma: float = 4.0, trainable: bool = False,
                 eps: float = 1e-3) -> None:
        super().__init__()
        if kernel_size % 2 == 0 or kernel_size < 3:
            raise ValueError(f"kernel_size must be odd and >= 3, got {kernel_size}")
        kernel = _gaussian_kernel(kernel_size, sigma).expand(channels, 1, kernel_size, kernel_size).clone()
        self.weight = nn.Parameter(kernel, requires_grad=trainable)
        self.channels, self.eps, self.pad = channels, eps, kernel_size // 2

    def set_trainable(self, trainable: bool) -> None:
        self.weight.requires_grad_(trainable)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        log_x = torch.log(x.clamp_min(0.0) + self.eps)
        weight = self.weight / self.weight.sum(dim=(2, 3), keepdim=True)
        padded = F.pad(log_x, [self.pad] * 4, mode="replicate")
        log_illumination = F.conv2d(padded, weight, groups=self.channels)
        return torch.exp(log_illumination), torch.exp(log_x - log_illumination)


class Attention(nn.Module):
    """Multi-head attention of query tokens over context tokens (scaled dot product)."""

    def __init__(self, dim: int, heads: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.heads, self.dropout = heads, dropout
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.proj = nn.Linear(dim, dim)

    @staticmethod
    def macs(x: torch.Tensor, context: torch.Tensor) -> int:
        """Multiply-accumulates of the two attention products (Q K^T and A V) for these inputs."""
        return 2 * x.shape[0] * x.shape[1] * context.shape[1] * x.shape[2]

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        hd = d // self.heads
        q = self.q(x).reshape(b, -1, self.heads, hd).transpose(1, 2)
        k, v = self.kv(context).reshape(b, -1, 2, self.heads, hd).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout if self.training else 0.0)
        return self.proj(out.transpose(1, 2).reshape(b, -1, d))


class _Mlp(nn.Sequential):
    def __init__(self, dim: int, ratio: float, dropout: float) -> None:
        hidden = max(1, int(dim * ratio))
        super().__init__(nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, dim), nn.Dropout(dropout))


class SelfAttentionBlock(nn.Module):
    """Pre-norm transformer block: tokens attend to themselves, then an MLP."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float = 4.0, dropout: float = 0.0) -> None:
        super().__init__()
        self.norm1, self.attn = nn.LayerNorm(dim), Attention(dim, heads, dropout)
        self.norm2, self.mlp = nn.LayerNorm(dim), _Mlp(dim, mlp_ratio, dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.norm1(x)
        x = x + self.attn(y, y)
        return x + self.mlp(self.norm2(x))


class CrossAttentionBlock(nn.Module):
    """Pre-norm transformer block: query tokens attend to context tokens, then an MLP."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float = 4.0, dropout: float = 0.0) -> None:
        super().__init__()
        self.norm_q, self.norm_kv, self.attn = nn.LayerNorm(dim), nn.LayerNorm(dim), Attention(dim, heads, dropout)
        self.norm2, self.mlp = nn.LayerNorm(dim), _Mlp(dim, mlp_ratio, dropout)

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm_q(x), self.norm_kv(context))
        return x + self.mlp(self.norm2(x))


def _tokens(x: torch.Tensor) -> torch.Tensor:
    return x.flatten(2).transpose(1, 2)


def _grid(tokens: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return tokens.transpose(1, 2).reshape(like.shape)


class Encoder(nn.Module):
    """Illumination and reflectance maps -> context tokens.

    Each map is patch-embedded (stride ``patch_size``) with a convolutional position encoding,
    (``extra_channels`` of positive side information may ride along with the reflectance),
    refined by self-attention, then each attends to the other (cross-attention); the two are fused
    into one context map of ``embed_dim`` channels at 1/``patch_size`` resolution.
    """

    def __init__(self, channels: int, embed_dim: int, heads: int, mlp_ratio: float, dropout: float,
                 patch_size: int, depth: int, extra_channels: int = 0) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.embed = nn.ModuleList(
            nn.Conv2d(channels + extra, embed_dim, patch_size, stride=patch_size) for extra in (0, extra_channels)
        )
        self.position = nn.ModuleList(nn.Conv2d(embed_dim, embed_dim, 3, padding=1, groups=embed_dim) for _ in range(2))
        self.self_attention = nn.ModuleList(
            nn.ModuleList(SelfAttentionBlock(embed_dim, heads, mlp_ratio, dropout) for _ in range(depth)) for _ in range(2)
        )
        self.cross_attention = nn.ModuleList(CrossAttentionBlock(embed_dim, heads, mlp_ratio, dropout) for _ in range(2))
        self.fuse = nn.Linear(2 * embed_dim, embed_dim)
        self.norm = nn.LayerNorm(embed_dim)

    def forward(self, illumination: torch.Tensor, reflectance: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns the context as tokens (N, L, D) and as a map (N, D, h, w)."""
        maps, streams = [], []
        # log-domain inputs: illumination and reflectance span orders of magnitude
        for i, x in enumerate((torch.log(illumination), torch.log(reflectance))):
            if self.patch_size > 1:
                x = F.pad(x, [0, (-x.shape[-1]) % self.patch_size, 0, (-x.shape[-2]) % self.patch_size], mode="replicate")
            grid = self.embed[i](x)
            grid = grid + self.position[i](grid)
            tokens = _tokens(grid)
            for block in self.self_attention[i]:
                tokens = block(tokens)
            maps.append(grid)
            streams.append(tokens)
        ill, ref = streams
        ill, ref = self.cross_attention[0](ill, ref), self.cross_attention[1](ref, ill)
        context = self.norm(self.fuse(torch.cat([ill, ref], dim=-1)))
        return context, _grid(context, maps[0])


class _ConvBlock(nn.Sequential):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__(nn.Conv2d(cin, cout, 3, padding=1), nn.GELU(), nn.Conv2d(cout, cout, 3, padding=1), nn.GELU())


class ContextAttention(nn.Module):
    """Cross-attention from a feature map (as tokens) to the encoder's context, added residually."""

    def __init__(self, channels: int, embed_dim: int, heads: int, mlp_ratio: float, dropout: float) -> None:
        super().__init__()
        self.into = nn.Conv2d(channels, embed_dim, 1)
        self.block = CrossAttentionBlock(embed_dim, heads, mlp_ratio, dropout)
        self.out = nn.Conv2d(embed_dim, channels, 1)

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        q = self.into(x)
        return x + self.out(_grid(self.block(_tokens(q), context), q))


class Decoder(nn.Module):
    """U-Net over the original image that cross-attends to the context at its coarser resolutions.

    ``num_resolution`` levels at 1, 1/2, ... 1/2^(R-1) of the input plus a bottleneck at 1/2^R;
    levels from ``attention_from_level`` down and the bottleneck attend to the context, on the way
    down and on the way up. Skip connections join the two paths; the output is a residual added to
    the input image.
    """

    def __init__(self, channels: int, embed_dim: int, heads: int, mlp_ratio: float, dropout: float,
                 num_resolution: int, attention_from_level: int) -> None:
        super().__init__()
        widths = [max(8, embed_dim // 2 ** (num_resolution - 1 - i)) for i in range(num_resolution)]
        self.stem = nn.Conv2d(channels, widths[0], 3, padding=1)
        self.down = nn.ModuleList(_ConvBlock(widths[i], widths[i]) for i in range(num_resolution))
        self.pool = nn.ModuleList(
            nn.Conv2d(widths[i], widths[min(i + 1, num_resolution - 1)] if i + 1 < num_resolution else embed_dim, 2, stride=2)
            for i in range(num_resolution)
        )
        self.bottleneck = _ConvBlock(embed_dim, embed_dim)
        attends = [i >= attention_from_level for i in range(num_resolution)]
        self.attends = attends
        make = lambda c: ContextAttention(c, embed_dim, heads, mlp_ratio, dropout)  # noqa: E731
        self.attn_down = nn.ModuleList(make(w) if a else nn.Identity() for w, a in zip(widths, attends))
        self.attn_mid = make(embed_dim)
        self.attn_up = nn.ModuleList(make(w) if a else nn.Identity() for w, a in zip(widths, attends))
        ups_in = [widths[i + 1] if i + 1 < num_resolution else embed_dim for i in range(num_resolution)]
        self.up = nn.ModuleList(_ConvBlock(ups_in[i] + widths[i], widths[i]) for i in range(num_resolution))
        self.head = nn.Conv2d(widths[0], channels, 3, padding=1)

    def forward(self, image: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        x = self.stem(image)
        skips = []
        for i, (block, pool) in enumerate(zip(self.down, self.pool)):
            x = block(x)
            x = self.attn_down[i](x, context) if self.attends[i] else x
            skips.append(x)
            x = pool(F.pad(x, [0, x.shape[-1] % 2, 0, x.shape[-2] % 2], mode="replicate"))
        x = self.attn_mid(self.bottleneck(x), context)
        for i in reversed(range(len(self.up))):
            skip = skips[i]
            x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            x = self.up[i](torch.cat([x, skip], dim=1))
            x = self.attn_up[i](x, context) if self.attends[i] else x
        return image + self.head(x)


@dataclass(frozen=True)
class IllRecConfig:
    """Sizes of IllRecNet; the option names are seed 003's."""

    in_channels: int = 3
    embed_dim: int = 64
    """Width of the attention tokens (and of the decoder's bottleneck)."""
    num_heads: int = 4
    mlp_ratio: float = 4.0
    num_resolution: int = 3
    """Decoder levels above the bottleneck."""
    dropout_ratio: float = 0.0
    patch_size: int = 16
    """Stride of the encoder's patch embedding: the context is at 1/patch_size resolution."""
    encoder_depth: int = 2
    """Self-attention blocks per map in the encoder."""
    attention_from_level: int = 2
    """First decoder level (0 = full resolution) that cross-attends to the context."""
    kernel_size: int = 15
    sigma: float = 4.0
    trainable_separation: bool = False

    def __post_init__(self) -> None:
        _check_heads(self.embed_dim, self.num_heads)
        if self.num_resolution < 1:
            raise ValueError(f"num_resolution must be >= 1, got {self.num_resolution}")
        if not 0.0 <= self.dropout_ratio < 1.0:
            raise ValueError(f"dropout_ratio must be in [0, 1), got {self.dropout_ratio}")
        if self.patch_size < 1 or self.encoder_depth < 0 or self.mlp_ratio <= 0:
            raise ValueError("patch_size must be >= 1, encoder_depth >= 0 and mlp_ratio > 0")


def _check_heads(dim: int, heads: int) -> None:
    if heads < 1 or dim % heads:
        raise ValueError(f"embed_dim {dim} must be a positive multiple of num_heads {heads}")


def _contract(name_out: str = "enhanced") -> dict:
    return {
        "layout": "NCHW",
        "dtype": "float32",
        "inputs": [{"name": "image", "channels": 3, "range": [0.0, 1.0],
                    "normalisation": "none: 8-bit sRGB values divided by 255, RGB order"}],
        "outputs": [{"name": name_out, "channels": 3, "range": [0.0, 1.0],
                     "normalisation": "none: sRGB values; clip to [0, 1] and multiply by 255 for 8-bit"}],
    }


class _ConfigMixin:
    config: object

    def config_dict(self) -> dict:
        return config_dict(self.config)

    def io_contract(self) -> dict:
        return _contract()


class IllRecNet(_ConfigMixin, nn.Module):
    """Seed 003's enhancer: Separation -> Encoder (self + cross attention) -> context-attending U-Net."""

    family = "lowlight"

    def __init__(self, config: IllRecConfig | None = None, **overrides) -> None:
        super().__init__()
        c = self.config = replace(config or IllRecConfig(), **overrides)
        self.separation = Separation(c.in_channels, c.kernel_size, c.sigma, c.trainable_separation)
        self.encoder = Encoder(c.in_channels, c.embed_dim, c.num_heads, c.mlp_ratio, c.dropout_ratio, c.patch_size,
                               c.encoder_depth)
        self.decoder = Decoder(c.in_channels, c.embed_dim, c.num_heads, c.mlp_ratio, c.dropout_ratio, c.num_resolution,
                               c.attention_from_level)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        illumination, reflectance = self.separation(image)
        context, _ = self.encoder(illumination, reflectance)
        return self.decoder(image, context)


@dataclass(frozen=True)
class EdgeConfig:
    """Sizes of the real-time variant."""

    in_channels: int = 3
    embed_dim: int = 32
    num_heads: int = 2
    mlp_ratio: float = 2.0
    dropout_ratio: float = 0.0
    scale: int = 4
    """The separation, attention and curve prediction run at 1/scale resolution."""
    patch_size: int = 4
    """Patch size of the encoder's token embedding."""
    context_grid: int = 16
    """The encoder sees the frame resized to context_grid * patch_size pixels square, so the context
    is always context_grid^2 tokens and attention cost grows linearly with the frame's pixels."""
    encoder_depth: int = 1
    curve_iterations: int = 8
    """Zero-DCE quadratic curve steps applied at full resolution."""
    refine_channels: int = 24
    """Width of the half-resolution denoiser applied after the curves (0: none)."""
    kernel_size: int = 7
    sigma: float = 2.0
    trainable_separation: bool = False

    def __post_init__(self) -> None:
        _check_heads(self.embed_dim, self.num_heads)
        if min(self.scale, self.patch_size, self.context_grid, self.curve_iterations) < 1 or self.refine_channels < 0:
            raise ValueError("scale, patch_size, context_grid and curve_iterations must be >= 1, refine_channels >= 0")
        if not 0.0 <= self.dropout_ratio < 1.0:
            raise ValueError(f"dropout_ratio must be in [0, 1), got {self.dropout_ratio}")


class LowLightEdge(_ConfigMixin, nn.Module):
    """Real-time IllRecNet: attention at low resolution predicts curves applied at full resolution."""

    family = "lowlight"

    def __init__(self, config: EdgeConfig | None = None, **overrides) -> None:
        super().__init__()
        c = self.config = replace(config or EdgeConfig(), **overrides)
        d = c.embed_dim
        self.separation = Separation(c.in_channels, c.kernel_size, c.sigma, c.trainable_separation)
        self.encoder = Encoder(c.in_channels, d, c.num_heads, c.mlp_ratio, c.dropout_ratio, c.patch_size, c.encoder_depth,
                               extra_channels=c.in_channels)
        self.stem = nn.Sequential(nn.Conv2d(4 * c.in_channels, d, 3, padding=1), nn.GELU(), nn.Conv2d(d, d, 3, padding=1))
        self.attend = ContextAttention(d, d, c.num_heads, c.mlp_ratio, c.dropout_ratio)
        self.curves = nn.Sequential(nn.GELU(), nn.Conv2d(d, d, 3, padding=1), nn.GELU(),
                                    nn.Conv2d(d, c.in_channels * c.curve_iterations, 3, padding=1))
        self.refine = None
        if c.refine_channels:  # a denoiser at half resolution: space-to-depth, three convs, depth-to-space
            r, k = c.refine_channels, 4 * c.in_channels
            self.refine = nn.Sequential(
                nn.PixelUnshuffle(2), nn.Conv2d(2 * k, r, 3, padding=1), nn.ReLU(), nn.Conv2d(r, r, 3, padding=1),
                nn.ReLU(), nn.Conv2d(r, k, 3, padding=1), nn.PixelShuffle(2),
            )

    def curve_maps(self, image: torch.Tensor) -> torch.Tensor:
        """Curve parameters in [-1, 1] at reduced resolution, (N, 3 * iterations, h, w)."""
        c = self.config
        k = max(c.scale, 2)
        small = F.avg_pool2d(image, k, ceil_mode=True)
        # Sensor noise shows in the full-resolution pixels only: the spread within each k x k block
        # tells the network how much the frame was amplified, which the darkness alone cannot.
        spread = torch.sqrt((F.avg_pool2d(image * image, k, ceil_mode=True) - small * small).clamp_min(0) + 1e-6)
        if c.scale == 1:
            small = F.interpolate(small, size=image.shape[-2:], mode="nearest")
            spread = F.interpolate(spread, size=image.shape[-2:], mode="nearest")
        illumination, reflectance = self.separation(small)
        side = c.context_grid * c.patch_size
        thumbnail, thumb_spread = (F.interpolate(t, size=(side, side), mode="bilinear", align_corners=False)
                                   for t in (small, spread))
        thumb_ill, thumb_ref = self.separation(thumbnail)
        context, _ = self.encoder(thumb_ill, torch.cat([thumb_ref, thumb_spread], dim=1))
        features = self.stem(torch.cat([small, torch.log(illumination), torch.log(reflectance), torch.log(spread)], dim=1))
        return torch.tanh(self.curves(self.attend(features, context)))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        curves = F.interpolate(self.curve_maps(image), size=image.shape[-2:], mode="bilinear", align_corners=False)
        x = image
        for alpha in torch.split(curves, self.config.in_channels, dim=1):
            x = x + alpha * x * (1.0 - x)
        if self.refine is not None:
            h, w = image.shape[-2:]
            both = F.pad(torch.cat([x, image], dim=1), [0, w % 2, 0, h % 2], mode="replicate")
            x = x + self.refine(both)[..., :h, :w]
        return x


@dataclass(frozen=True)
class EdgeV2Config:
    """Sizes of the second-generation real-time variant (``lowlight_edge``)."""

    in_channels: int = 3
    scale: int = 4
    """The network runs at 1/scale resolution; only the local affine map touches full-resolution pixels."""
    widths: tuple[int, ...] = (16, 24, 32)
    """Channels at 1/scale, 1/(2 scale), 1/(4 scale), ...: a small U-Net over the reduced frame."""
    kernel_size: int = 7
    sigma: float = 2.0
    """The Gaussian separation of seed 003, run on the reduced frame."""
    trainable_separation: bool = False
    max_log_gain: float = 4.0
    """The local gain is exp(g) with |g| <= max_log_gain: up to 55x brighter."""
    half_guide: bool = True
    """Also map the half-resolution frame (4 pixels averaged: half the noise) with its own gain, so the
    network can choose, per cell, between full-resolution detail and a quieter version of it."""

    def __post_init__(self) -> None:
        if self.scale < 2 or self.scale & (self.scale - 1) or not self.widths or min(self.widths) < 1:
            raise ValueError("scale must be a power of two >= 2 and widths a non-empty list of positive channel "
                             "counts")
        if self.max_log_gain <= 0:
            raise ValueError(f"max_log_gain must be positive, got {self.max_log_gain}")


def mean_pool(x: torch.Tensor, k: int) -> torch.Tensor:
    """``F.avg_pool2d(x, k, ceil_mode=True)``: the mean of each k x k cell, partial cells at the far edges
    averaged over the pixels they hold.

    For k = 2 this is a replicate pad to even sides and a depthwise 2x2 stride-2 convolution of weight
    1/4, which gives the same values (a replicated row or column adds its own value to a 2-wide cell's
    mean) and runs about 3x faster in ONNX Runtime on the CPU than its AveragePool. Larger powers of
    two run as stages of that: the same values except in partial cells at the far edges of sides that
    are not multiples of k.
    """
    if k == 1:
        return x
    if k & (k - 1):
        return F.avg_pool2d(x, k, ceil_mode=True)
    weight = x.new_full((x.shape[1], 1, 2, 2), 0.25)
    for _ in range(k.bit_length() - 1):
        x = F.conv2d(F.pad(x, [0, x.shape[-1] % 2, 0, x.shape[-2] % 2], mode="replicate"), weight, stride=2,
                     groups=x.shape[1])
    return x


def _conv(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride=stride, padding=1), nn.LeakyReLU(0.1))


class LowLightEdgeV2(_ConfigMixin, nn.Module):
    """Second-generation real-time enhancer: a small U-Net at 1/4 resolution predicts a local affine map.

    The frame is reduced by averaging (``scale`` x ``scale`` cells), described by seed 003's
    illumination / reflectance separation and each cell's spread (noise and texture), and a U-Net
    over the reduced frame with a global context vector (the frame's overall exposure) predicts, per
    cell and colour channel, a gain ``A = exp(g)`` and an offset ``B``. They are upsampled
    bilinearly and applied to the full-resolution input, ``A * x + B`` (a guided, edge-preserving
    upsampling as in the guided filter and HDRNet): where the map is smooth, fine detail passes with
    the gain; where the network lowers the gain and raises the offset, noise and compression blocks
    inside a cell are replaced by the cell's denoised level. With ``half_guide`` a share of the gain
    applies to the half-resolution frame instead (folded into ``B`` at half resolution), a middle
    ground between full detail and the cell's level for noisy textures. Training starts close to the
    identity (A = 1, B = 0), which is what a well-exposed frame should get. Full-resolution work: one
    pooling, two resizes, a multiply and an add; the rest runs on 1/4 (the half-resolution guide) and
    1/16 of the pixels.
    """

    family = "lowlight"

    def __init__(self, config: EdgeV2Config | None = None, **overrides) -> None:
        super().__init__()
        if "widths" in overrides:
            overrides["widths"] = tuple(overrides["widths"])
        c = self.config = replace(config or EdgeV2Config(), **overrides)
        n, w = c.in_channels, c.widths
        self.separation = Separation(n, c.kernel_size, c.sigma, c.trainable_separation)
        self.stem = nn.Sequential(_conv(5 * n, w[0]), _conv(w[0], w[0]))
        self.down = nn.ModuleList(nn.Sequential(_conv(w[i], w[i + 1], stride=2), _conv(w[i + 1], w[i + 1]))
                                  for i in range(len(w) - 1))
        self.context = nn.Sequential(nn.Linear(w[-1] + 2 * n, w[-1]), nn.LeakyReLU(0.1), nn.Linear(w[-1], w[-1]))
        self.up = nn.ModuleList(_conv(w[i + 1] + w[i], w[i]) for i in range(len(w) - 1))
        self.head = nn.Conv2d(w[0], (3 if c.half_guide else 2) * n, 3, padding=1)
        nn.init.normal_(self.head.weight, std=1e-2)  # start close to the identity
        nn.init.zeros_(self.head.bias)

    def affine_maps(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Gain at 1/scale resolution and offset at 1/scale (or, with ``half_guide``, 1/2) resolution,
        each (N, 3, h, w), to be upsampled to the frame's size: ``out = gain * image + offset``."""
        c = self.config
        half = mean_pool(image, 2)
        # each cell's spread at half resolution: how much noise (and texture) the gain would amplify
        small, square = torch.split(mean_pool(torch.cat([half, half * half], dim=1), c.scale // 2), c.in_channels, 1)
        spread = torch.sqrt((square - small * small).clamp_min(0.0) + 1e-6)
        illumination, reflectance = self.separation(small)
        x = self.stem(torch.cat([small, torch.log(illumination), torch.log(reflectance), torch.log(spread),
                                 torch.log(small.clamp_min(0.0) + 1e-3)], dim=1))
        skips = []
        for block in self.down:
            skips.append(x)
            x = block(x)
        # the frame's overall level and colour, and the coarsest features, pooled over the whole frame
        stats = torch.cat([x.mean(dim=(2, 3)), small.mean(dim=(2, 3)), spread.mean(dim=(2, 3))], dim=1)
        x = x + self.context(stats)[..., None, None]
        for block, skip in zip(reversed(self.up), reversed(skips)):
            x = block(torch.cat([F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False), skip],
                                dim=1))
        maps = torch.split(self.head(x), c.in_channels, dim=1)
        gain = torch.exp(c.max_log_gain * torch.tanh(maps[0] / c.max_log_gain))
        if not c.half_guide:
            return gain, maps[1]
        # The full-resolution share of the gain: about 1 at the start, lowered where the quieter
        # half-resolution frame does better. That part is applied at half resolution and joins the offset.
        share = torch.sigmoid(maps[2] + 4.0)
        to_half = functools.partial(F.interpolate, size=half.shape[-2:], mode="bilinear", align_corners=False)
        return gain * share, to_half(maps[1]) + to_half(gain * (1.0 - share)) * half

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        gain, offset = self.affine_maps(image)
        size = image.shape[-2:]
        gain = F.interpolate(gain, size=size, mode="bilinear", align_corners=False)
        offset = F.interpolate(offset, size=size, mode="bilinear", align_corners=False)
        return gain * image + offset


@dataclass(frozen=True)
class ZeroDCEConfig:
    """Sizes of the Zero-DCE++-style reference (Li, Guo and Loy, TPAMI 2021)."""

    in_channels: int = 3
    channels: int = 32
    scale: int = 4
    """Curve parameters are estimated at 1/scale resolution and upsampled."""
    iterations: int = 8

    def __post_init__(self) -> None:
        if min(self.channels, self.scale, self.iterations) < 1:
            raise ValueError("channels, scale and iterations must be >= 1")


class _SeparableConv(nn.Sequential):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__(nn.Conv2d(cin, cin, 3, padding=1, groups=cin), nn.Conv2d(cin, cout, 1))


class ZeroDCEReference(_ConfigMixin, nn.Module):
    """A Zero-DCE++-style curve network, registered as a speed reference for the benchmarks (not trained here).

    Seven depthwise-separable 3x3 layers with symmetric skip concatenations estimate one
    three-channel curve-parameter map at 1/scale resolution; it is upsampled and the quadratic
    curve ``x + r (x^2 - x)`` is applied ``iterations`` times at full resolution (about 10k parameters).
    """

    family = "lowlight"
    benchmark_only = True

    def __init__(self, config: ZeroDCEConfig | None = None, **overrides) -> None:
        super().__init__()
        c = self.config = replace(config or ZeroDCEConfig(), **overrides)
        n, k = c.in_channels, c.channels
        self.convs = nn.ModuleList([_SeparableConv(n, k), _SeparableConv(k, k), _SeparableConv(k, k),
                                    _SeparableConv(k, k), _SeparableConv(2 * k, k), _SeparableConv(2 * k, k),
                                    _SeparableConv(2 * k, n)])

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        c = self.config
        small = mean_pool(image, c.scale)
        x1 = F.relu(self.convs[0](small))
        x2 = F.relu(self.convs[1](x1))
        x3 = F.relu(self.convs[2](x2))
        x4 = F.relu(self.convs[3](x3))
        x5 = F.relu(self.convs[4](torch.cat([x3, x4], 1)))
        x6 = F.relu(self.convs[5](torch.cat([x2, x5], 1)))
        r = torch.tanh(self.convs[6](torch.cat([x1, x6], 1)))
        r = F.interpolate(r, size=image.shape[-2:], mode="bilinear", align_corners=False) if c.scale > 1 else r
        x = image
        for _ in range(c.iterations):
            x = x + r * (x * x - x)
        return x


LOWLIGHT_PRESETS: dict[str, tuple[type, object]] = {
    # The seed's structure; the seed names these options but gives no values, so these are ours.
    "seed": (IllRecNet, IllRecConfig()),
    # Real-time variant for video, second generation: local affine map from a 1/4-resolution U-Net.
    "edge": (LowLightEdgeV2, EdgeV2Config()),
    # The first-generation real-time variant (attention, curves and a half-resolution denoiser).
    "edge_v1": (LowLightEdge, EdgeConfig()),
    # Zero-DCE++-style curve network: a speed reference for the benchmarks, not trained here.
    "zerodce": (ZeroDCEReference, ZeroDCEConfig()),
    # Tiny, for tests.
    "test": (IllRecNet, IllRecConfig(embed_dim=8, num_heads=2, mlp_ratio=1.0, num_resolution=2, patch_size=4,
                                     encoder_depth=1, attention_from_level=1, kernel_size=5, sigma=1.0)),
    "edgetest": (LowLightEdgeV2, EdgeV2Config(widths=(4, 8), kernel_size=3, sigma=1.0)),
    "edgetest_v1": (LowLightEdge, EdgeConfig(embed_dim=8, num_heads=2, mlp_ratio=1.0, scale=2, patch_size=2,
                                             context_grid=4, curve_iterations=2, refine_channels=4, kernel_size=3,
                                             sigma=1.0)),
}
