"""Generated demo clips: moving content with changing light, for trying the runtime without a camera.

``lowlight``: a photograph panned and zoomed, with a few moving shapes, under an exposure that drifts
between x0.05 and x0.25 (linear light) and with a phone sensor's Poisson shot noise, Gaussian read noise,
a colour cast and gamma: the kind of video a low-light enhancer is for. ``faces``: a well-lit person moving
in front of a slowly panning background, for relighting. Photographs come from scikit-image's bundled
images when scikit-image is installed, procedural textures otherwise. The same seed gives the same clip.
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from .core.errors import UserError
from .video import VideoFileSink

__all__ = ["make_demo_clip", "KINDS"]

KINDS = ("lowlight", "faces")
_SCENES = ("astronaut", "coffee", "chelsea", "rocket")
_BACKGROUNDS = ("coffee", "rocket", "chelsea")
# Head and shoulders in skimage.data.astronaut(): (top, bottom, left, right).
_ASTRONAUT_SUBJECT = (0, 330, 100, 370)


def make_demo_clip(path: str | os.PathLike, *, kind: str = "lowlight", frames: int = 150,
                   size: tuple[int, int] = (360, 640), fps: float = 30.0, seed: int = 0,
                   overwrite: bool = False) -> Path:
    """Write a generated MP4 (or any video suffix :func:`runtime.video.open_sink` writes), atomically.

    Args:
        path: the output video.
        kind: ``lowlight`` (dark, noisy, exposure changing over time) or ``faces`` (well lit, a person moving).
        frames: number of frames.
        size: (height, width).
        fps: frame rate.
        seed: the same seed gives the same clip.
        overwrite: replace an existing file.

    Returns:
        The path written.

    Raises:
        UserError: unknown ``kind``, or the output exists without ``overwrite``.
    """
    if kind not in KINDS:
        raise UserError(f"unknown demo clip kind {kind!r}; use one of {', '.join(KINDS)}")
    if frames < 1:
        raise UserError("a demo clip needs at least 1 frame")
    height, width = int(size[0]), int(size[1])
    if height < 16 or width < 16:
        raise UserError(f"demo clip size {height}x{width} is too small; use at least 16x16")
    rng = np.random.default_rng(seed)
    render = _LowLight(rng, height, width, frames) if kind == "lowlight" else _Faces(rng, height, width, frames)
    path = Path(path)
    with VideoFileSink(path, fps=fps, size=(height, width), overwrite=overwrite) as sink:
        for t in range(frames):
            rgb = render(t, np.random.default_rng([seed, t]))
            sink.write(np.ascontiguousarray(rgb[..., ::-1]))
    return path


# ------------------------------------------------------------------------------------------------ images


def _photo(name: str) -> np.ndarray | None:
    """A bundled scikit-image photo as float32 RGB in [0, 1], or None without scikit-image."""
    try:
        import skimage.data
    except ImportError:
        return None
    try:
        image = getattr(skimage.data, name)()
    except (AttributeError, OSError, ModuleNotFoundError):
        return None
    image = np.asarray(image, dtype=np.float32) / 255.0
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    return np.ascontiguousarray(image[..., :3])


def _texture(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A procedural colour texture (smooth noise plus gratings), float32 RGB in [0, 1]."""
    out = np.zeros((height, width, 3), np.float32)
    for scale in (8, 32, 128):
        small = rng.random((max(2, height // scale), max(2, width // scale), 3)).astype(np.float32)
        out += cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC) * (scale / 168)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    for _ in range(3):
        angle, period = rng.uniform(0, np.pi), rng.uniform(12, 60)
        wave = 0.5 + 0.5 * np.sin((x * np.cos(angle) + y * np.sin(angle)) * 2 * np.pi / period)
        out += 0.15 * wave[..., None] * rng.uniform(0.2, 1.0, 3).astype(np.float32)
    out -= out.min()
    return out / max(float(out.max()), 1e-6)


def _cover(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize (keeping the aspect ratio) and centre-crop to exactly (height, width)."""
    scale = max(height / image.shape[0], width / image.shape[1])
    resized = cv2.resize(image, (max(width, round(image.shape[1] * scale)), max(height, round(image.shape[0] * scale))),
                         interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC)
    top, left = (resized.shape[0] - height) // 2, (resized.shape[1] - width) // 2
    return np.ascontiguousarray(resized[top:top + height, left:left + width])


def _canvas(names: tuple[str, ...], rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A background larger than the frame (room to pan and zoom): a photo, or a procedural texture."""
    choice = names[int(rng.integers(len(names)))]
    size = (round(height * 1.6), round(width * 1.6))
    photo = _photo(choice)
    return _texture(rng, *size) if photo is None else _cover(photo, *size)


def _camera(canvas: np.ndarray, height: int, width: int, t: float, zoom: float, phase: float) -> np.ndarray:
    """A moving virtual camera over ``canvas`` at time ``t`` (one pan cycle per unit).

    ``zoom`` is the canvas-to-view ratio: 1 shows the whole canvas, larger values a smaller window that pans
    along a Lissajous path and stays inside the canvas.
    """
    ch, cw = canvas.shape[:2]
    view_h, view_w = ch / zoom, cw / zoom
    cx = cw / 2 + (cw - view_w) / 2 * 0.95 * np.sin(2 * np.pi * t + phase)
    cy = ch / 2 + (ch - view_h) / 2 * 0.95 * np.sin(4 * np.pi * t + 0.5 * phase)
    s = view_w / width
    matrix = np.float32([[s, 0, cx - s * width / 2], [0, s, cy - s * height / 2]])
    return cv2.warpAffine(canvas, matrix, (width, height), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_REFLECT)


class _LowLight:
    """Renders frame ``t`` of a low-light clip (RGB uint8)."""

    def __init__(self, rng: np.random.Generator, height: int, width: int, frames: int) -> None:
        self.height, self.width, self.frames = height, width, frames
        self.canvas = _canvas(_SCENES, rng, height, width)
        self.phase = rng.uniform(0, 2 * np.pi)
        self.shapes = [(rng.uniform(0.05, 0.12) * min(height, width) * 1.5,  # radius / half side
                        rng.uniform(0.3, 1.0, 3).astype(np.float32),            # colour
                        rng.uniform(0, 2 * np.pi, 2), rng.uniform(0.5, 1.5, 2),  # phase, speed
                        bool(rng.integers(2)))                                   # circle or square
                       for _ in range(3)]
        cast = rng.uniform(0.8, 1.2, 3).astype(np.float32)
        self.cast = cast / cast.mean()
        self.electrons = rng.uniform(1500.0, 4000.0)
        self.read_noise = rng.uniform(0.001, 0.003)
        self.gamma = rng.uniform(2.0, 2.4)
        self.light_phase = rng.uniform(0, 2 * np.pi)

    def exposure(self, t: int) -> float:
        """Exposure in linear light: drifts between x0.05 and x0.25 on a log scale, with a slight flicker."""
        u = t / max(self.frames, 2)
        wave = 0.5 + 0.5 * np.sin(2 * np.pi * 1.3 * u + self.light_phase)
        flicker = 1.0 + 0.03 * np.sin(2 * np.pi * t / 7.0)
        return float(np.exp(np.log(0.05) + wave * np.log(0.25 / 0.05)) * flicker)

    def __call__(self, t: int, rng: np.random.Generator) -> np.ndarray:
        u = t / max(self.frames, 2)
        zoom = 1.15 + 0.4 * (0.5 - 0.5 * np.cos(2 * np.pi * u))
        frame = _camera(self.canvas, self.height, self.width, u, zoom, self.phase)
        for radius, colour, phase, speed, circle in self.shapes:
            x = self.width * (0.5 + 0.4 * np.sin(2 * np.pi * speed[0] * u + phase[0]))
            y = self.height * (0.5 + 0.35 * np.sin(2 * np.pi * speed[1] * u + phase[1]))
            r = int(radius)
            if circle:
                cv2.circle(frame, (int(x), int(y)), r, colour.tolist(), -1, cv2.LINE_AA)
            else:
                cv2.rectangle(frame, (int(x) - r, int(y) - r), (int(x) + r, int(y) + r), colour.tolist(), -1,
                              cv2.LINE_AA)
        linear = np.clip(frame, 0.0, 1.0) ** 2.2 * (self.exposure(t) * self.cast)
        noisy = rng.poisson(linear * self.electrons).astype(np.float32) / np.float32(self.electrons)
        noisy += rng.normal(0.0, self.read_noise, linear.shape).astype(np.float32)
        encoded = np.clip(noisy, 0.0, 1.0) ** (1.0 / self.gamma)
        return np.round(encoded * 255.0).astype(np.uint8)


class _Faces:
    """Renders frame ``t`` of a well-lit clip with a person moving over a panning background (RGB uint8)."""

    def __init__(self, rng: np.random.Generator, height: int, width: int, frames: int) -> None:
        self.height, self.width, self.frames = height, width, frames
        self.background = _canvas(_BACKGROUNDS, rng, height, width)
        self.phase = rng.uniform(0, 2 * np.pi)
        photo = _photo("astronaut")
        if photo is not None:
            top, bottom, left, right = _ASTRONAUT_SUBJECT
            subject = photo[top:bottom, left:right]
            sh, sw = subject.shape[:2]
            mask = np.zeros((sh, sw), np.float32)  # a soft oval portrait around head and shoulders
            cv2.ellipse(mask, (sw // 2, int(sh * 0.55)), (int(sw * 0.47), int(sh * 0.52)), 0, 0, 360, 1.0, -1)
        else:
            subject, mask = _procedural_head(rng)
        scale = 0.85 * height / subject.shape[0]
        size = (max(8, round(subject.shape[1] * scale)), max(8, round(subject.shape[0] * scale)))
        self.subject = cv2.resize(subject, size, interpolation=cv2.INTER_AREA)
        mask = cv2.resize(mask, size, interpolation=cv2.INTER_AREA)
        self.mask = cv2.GaussianBlur(mask, (0, 0), max(1.0, 0.01 * size[0]))[..., None]

    def __call__(self, t: int, rng: np.random.Generator) -> np.ndarray:
        u = t / max(self.frames, 2)
        frame = _camera(self.background, self.height, self.width, 0.25 * u, 1.3, self.phase)
        frame = cv2.GaussianBlur(frame, (0, 0), 2.0)  # a shallow depth of field keeps the person in front
        sh, sw = self.subject.shape[:2]
        x = int((self.width - sw) * (0.5 + 0.45 * np.sin(2 * np.pi * u + self.phase)))
        y = int(self.height - sh + 0.04 * self.height * np.sin(2 * np.pi * 3 * u))
        x0, y0, x1, y1 = max(0, x), max(0, y), min(self.width, x + sw), min(self.height, y + sh)
        sub = self.subject[y0 - y:y1 - y, x0 - x:x1 - x]
        alpha = self.mask[y0 - y:y1 - y, x0 - x:x1 - x]
        frame[y0:y1, x0:x1] = alpha * sub + (1 - alpha) * frame[y0:y1, x0:x1]
        # Mild, slow changes in the light on a normal exposure.
        frame *= np.float32(1.0 + 0.08 * np.sin(2 * np.pi * 0.7 * u))
        frame += rng.normal(0.0, 0.004, frame.shape).astype(np.float32)
        return np.round(np.clip(frame, 0.0, 1.0) * 255.0).astype(np.uint8)


def _procedural_head(rng: np.random.Generator, size: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """A shaded head-and-shoulders figure (for machines without scikit-image): float32 RGB and its mask."""
    image = np.zeros((size, size, 3), np.float32)
    mask = np.zeros((size, size), np.float32)
    skin = np.float32([0.85, 0.65, 0.52]) * rng.uniform(0.7, 1.1)
    shirt = rng.uniform(0.2, 0.8, 3).astype(np.float32)
    cv2.ellipse(image, (size // 2, size), (int(size * 0.45), int(size * 0.3)), 0, 180, 360, shirt.tolist(), -1)
    cv2.ellipse(mask, (size // 2, size), (int(size * 0.45), int(size * 0.3)), 0, 180, 360, 1.0, -1)
    y, x = np.mgrid[0:size, 0:size].astype(np.float32)
    cx, cy, rx, ry = size / 2, size * 0.42, size * 0.24, size * 0.3
    nx, ny = (x - cx) / rx, (y - cy) / ry
    inside = nx ** 2 + ny ** 2 <= 1
    nz = np.sqrt(np.clip(1 - nx ** 2 - ny ** 2, 0, 1))
    shade = np.clip(0.2 + 0.8 * (-0.4 * nx - 0.3 * ny + 0.87 * nz), 0, 1)
    image[inside] = skin * shade[inside, None]
    mask[inside] = 1.0
    for side in (-1, 1):
        cv2.circle(image, (int(cx + side * rx * 0.4), int(cy - ry * 0.15)), max(2, size // 40), (0.1, 0.07, 0.05), -1)
    cv2.ellipse(image, (int(cx), int(cy + ry * 0.45)), (int(rx * 0.35), max(2, size // 60)), 0, 0, 180,
                (0.5, 0.2, 0.2), 2)
    return image, mask
