"""What the runtime does with a model: enhance frames, relight frames, or render a captured scene.

A task checks the model's sidecar (a low-light model given to ``relight`` is an error), turns a
uint8 BGR frame into the model's inputs and its outputs back into a frame, and fits frames into
the shapes the model accepts (an engine's optimisation profile) and back to their own size.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from .errors import TaskError, UserError
from .runners.base import Runner

__all__ = ["Task", "EnhanceTask", "RelightTask", "IBRTask", "Fit", "fit_frame", "frame_to_tensor", "tensor_to_frame"]

log = logging.getLogger("runtime")


def frame_to_tensor(frame: np.ndarray) -> np.ndarray:
    """uint8 HxWx3 BGR -> float32 1x3xHxW RGB in 0..1."""
    return np.ascontiguousarray(frame[..., ::-1].transpose(2, 0, 1)[None], dtype=np.float32) * np.float32(1 / 255)


def tensor_to_frame(tensor: np.ndarray) -> np.ndarray:
    """float 1x3xHxW (or 3xHxW) RGB in 0..1 -> uint8 HxWx3 BGR, clipped and rounded."""
    chw = tensor[0] if tensor.ndim == 4 else tensor
    rgb = np.clip(chw.transpose(1, 2, 0).astype(np.float32, copy=False), 0.0, 1.0)
    return np.ascontiguousarray((rgb[..., ::-1] * 255.0 + 0.5).astype(np.uint8))


@dataclass(frozen=True)
class Fit:
    """How a frame of ``size`` is brought within the model's limits: resized to ``scaled``, padded to ``padded``."""

    size: tuple[int, int]
    scaled: tuple[int, int]
    padded: tuple[int, int]

    @property
    def identity(self) -> bool:
        return self.size == self.scaled == self.padded

    def apply(self, frame: np.ndarray) -> np.ndarray:
        import cv2

        if self.scaled != self.size:
            frame = cv2.resize(frame, self.scaled[::-1], interpolation=cv2.INTER_AREA)
        if self.padded != self.scaled:
            dy, dx = self.padded[0] - self.scaled[0], self.padded[1] - self.scaled[1]
            frame = cv2.copyMakeBorder(frame, 0, dy, 0, dx, cv2.BORDER_REFLECT_101)
        return frame

    def restore(self, frame: np.ndarray) -> np.ndarray:
        import cv2

        frame = frame[: self.scaled[0], : self.scaled[1]]
        if self.scaled != self.size:
            frame = cv2.resize(frame, self.size[::-1], interpolation=cv2.INTER_LINEAR)
        return np.ascontiguousarray(frame)


def fit_frame(size: tuple[int, int], low: tuple[int, int], high: tuple[int, int]) -> Fit:
    """The fit of a ``size`` (H, W) frame into the range ``low``..``high``: shrink (keeping the aspect)
    when a side is too large, then pad (reflected) when a side is too small."""
    h, w = size
    scale = min(1.0, high[0] / h, high[1] / w)
    scaled = (max(1, int(h * scale)), max(1, int(w * scale))) if scale < 1.0 else (h, w)
    padded = (max(scaled[0], low[0]), max(scaled[1], low[1]))
    if padded[0] > high[0] or padded[1] > high[1]:
        raise UserError(f"a {h}x{w} frame cannot be fitted into the model's {low[0]}x{low[1]}..{high[0]}x{high[1]}")
    return Fit((h, w), scaled, padded)


@dataclass
class Task:
    """Base class: the families a task takes, and how frames become inputs and outputs become frames."""

    name: str = "task"
    families: tuple[str, ...] = ()
    image_input: str = "image"
    output: str = ""
    _fits: dict = field(default_factory=dict, repr=False)
    _warned: bool = field(default=False, repr=False)

    def check(self, runner: Runner) -> None:
        """Raise TaskError unless ``runner``'s model is one of this task's families."""
        if runner.family not in self.families:
            wanted = " or ".join(self.families)
            hint = {"lowlight": "enhance", "relight": "relight", "ibr": "ibr"}.get(runner.family)
            raise TaskError(f"{runner.sidecar.get('artefact', runner.name)} is a {runner.family!r} model "
                            f"({runner.name}); '{self.name}' needs a {wanted} model"
                            + (f" (use python -m runtime {hint})" if hint else ""))
        self.output = self.output or runner.contract["outputs"][0]["name"]

    def limits(self, runner: Runner) -> tuple[tuple[int, int], tuple[int, int]]:
        """The smallest and largest (H, W) the model accepts for its image input: an engine's profile,
        an ONNX file's dynamic range."""
        dynamic = runner.sidecar.get("dynamic")
        if runner.sidecar.get("kind") == "onnx" and dynamic:
            return (dynamic["height"][0], dynamic["width"][0]), (dynamic["height"][1], dynamic["width"][1])
        shapes = runner.profile[self.image_input]
        return tuple(shapes["min"][2:]), tuple(shapes["max"][2:])

    def fit(self, runner: Runner, size: tuple[int, int]) -> Fit:
        if size not in self._fits:
            fit = fit_frame(size, *self.limits(runner))
            if fit.scaled != size and not self._warned:
                log.warning("frames of %dx%d exceed the model's largest %dx%d: resized to %dx%d and back",
                            *size, *self.limits(runner)[1], *fit.scaled)
                self._warned = True
            self._fits[size] = fit
        return self._fits[size]

    def extras(self, index: int) -> dict[str, np.ndarray]:
        """The per-frame inputs besides the image (a light)."""
        return {}

    def feeds(self, frame: np.ndarray, index: int) -> dict[str, np.ndarray]:
        return {self.image_input: frame_to_tensor(frame), **self.extras(index)}

    def postprocess(self, outputs: dict[str, np.ndarray], fitted: np.ndarray) -> np.ndarray:
        """The model's outputs -> a uint8 BGR frame of the fitted size."""
        return self.finish(tensor_to_frame(outputs[self.output]), fitted)

    def finish(self, frame: np.ndarray, fitted: np.ndarray) -> np.ndarray:
        """A last step on the uint8 output frame (also after GPU conversion); none by default."""
        return frame


@dataclass
class EnhanceTask(Task):
    """Low-light enhancement; optionally smooths the estimated illumination over time against flicker.

    Args:
        smoothing: 0 (off) .. <1: weight of the previous frames in an exponential moving average of the
            illumination ``input / enhanced`` (Retinex: image = reflectance x illumination), kept at
            1/8 resolution; each frame is then ``input / smoothed illumination``.
    """

    name: str = "enhance"
    families: tuple[str, ...] = ("lowlight",)
    smoothing: float = 0.0
    _illumination: np.ndarray | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if not 0.0 <= self.smoothing < 1.0:
            raise UserError(f"--smooth must be in [0, 1), got {self.smoothing}")

    def finish(self, frame: np.ndarray, fitted: np.ndarray) -> np.ndarray:
        if not self.smoothing:
            return frame
        import cv2

        enhanced = np.maximum(frame.astype(np.float32), 1.0)
        source = np.maximum(fitted.astype(np.float32), 1.0)
        h, w = source.shape[:2]
        small = (max(1, w // 8), max(1, h // 8))
        illumination = cv2.resize(source / enhanced, small, interpolation=cv2.INTER_AREA)
        if self._illumination is None or self._illumination.shape != illumination.shape:
            self._illumination = illumination
        else:
            self._illumination = self.smoothing * self._illumination + (1 - self.smoothing) * illumination
        full = cv2.resize(self._illumination, (w, h), interpolation=cv2.INTER_LINEAR)
        return np.ascontiguousarray(np.clip(source / full + 0.5, 0, 255).astype(np.uint8))


@dataclass
class RelightTask(Task):
    """Relighting with a ``relight`` chain: one light per frame from a fixed light or a path.

    Args:
        lights: (F, 3) point lights or (F, 27) SH lights; frame i uses row i mod F.
    """

    name: str = "relight"
    families: tuple[str, ...] = ("relight",)
    lights: np.ndarray = field(default_factory=lambda: np.zeros((1, 3), np.float32))

    def check(self, runner: Runner) -> None:
        super().check(runner)
        spec = runner.contract["inputs"][1]
        self.light_input, width = spec["name"], int(spec["shape"][1])
        if self.lights.shape[1] != width:
            kind = "SH (27 coefficients: --sh or an SH light path)" if width == 27 else "point (x,y,z: --light)"
            raise TaskError(f"{runner.name} takes a {kind} light; got {self.lights.shape[1]} numbers per light")

    def extras(self, index: int) -> dict[str, np.ndarray]:
        return {self.light_input: self.lights[index % len(self.lights)][None].astype(np.float32)}


@dataclass
class IBRTask(Task):
    """Renders a captured scene (its average image) along a light path; no input video.

    Args:
        average: the capture's linear HDR average image (H, W, 3).
        lights: normalised (F, 2) light positions, one per output frame.
        white: the linear value shown as white (default: twice the average's 99.5th percentile).
    """

    name: str = "ibr"
    families: tuple[str, ...] = ("ibr",)
    image_input: str = "average"
    average: np.ndarray = field(default_factory=lambda: np.zeros((1, 1, 3), np.float32))
    lights: np.ndarray = field(default_factory=lambda: np.zeros((1, 2), np.float32))
    white: float | None = None

    def frames(self) -> int:
        return len(self.lights)

    def feeds(self, frame: np.ndarray, index: int) -> dict[str, np.ndarray]:
        average = np.ascontiguousarray(self.average.transpose(2, 0, 1)[None], dtype=np.float32)
        return {"average": average, "light": self.lights[index % len(self.lights)][None].astype(np.float32)}

    def postprocess(self, outputs: dict[str, np.ndarray], fitted: np.ndarray) -> np.ndarray:
        white = self.white or float(np.percentile(self.average, 99.5) * 2) or 1.0
        linear = np.clip(outputs[self.output][0] / white, 0.0, 1.0)
        srgb = np.where(linear <= 0.0031308, 12.92 * linear, 1.055 * np.power(linear, 1 / 2.4) - 0.055)
        return tensor_to_frame(srgb[None])
