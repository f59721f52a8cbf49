"""What the runtime does with a model: enhance frames, relight frames, or render a captured scene.

A task is declared once (``register_task``): its name is the ``python -m runtime`` subcommand, it
adds its own options to that command and builds itself from them, and it says which clip the
benchmarks feed it. A model's sidecar names the task that drives it (from its family's
registration), so the runtime never keeps a table of families: a low-light model given to
``relight`` is refused with one line naming the right command.

A task turns a uint8 BGR frame into the model's inputs and its outputs back into a frame, and fits
frames into the shapes the model accepts (an engine's optimisation profile) and back to their own size.
"""

from __future__ import annotations

import argparse
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np

from .core.cli import bounded_float, bounded_int, positive_float
from .core.color import frame_to_tensor, linear_to_srgb, tensor_to_frame
from .core.temporal import TemporalDenoiser
from .core.errors import TaskError, UserError
from .core.io import read_float_image
from .runners.base import Runner

__all__ = ["Task", "EnhanceTask", "RelightTask", "IBRTask", "Fit", "fit_frame", "register_task", "get_task",
           "list_tasks", "task_for"]

log = logging.getLogger("runtime")

_TASKS: dict[str, type[Task]] = {}


def register_task(cls: type[Task]) -> type[Task]:
    """Class decorator: add a task under ``cls.name``; registering a name twice is an error."""
    if cls.name in _TASKS:
        raise ValueError(f"task {cls.name!r} is already registered")
    _TASKS[cls.name] = cls
    return cls


def list_tasks() -> list[str]:
    return list(_TASKS)


def get_task(name: str) -> type[Task]:
    try:
        return _TASKS[name]
    except KeyError:
        raise TaskError(f"unknown task {name!r}; the runtime has {', '.join(_TASKS)}") from None


def task_for(runner: Runner) -> type[Task] | None:
    """The task class that drives ``runner``'s model (its sidecar's ``task``), or None."""
    return _TASKS.get(runner.sidecar.task) if runner.sidecar.task else None


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
    if h < 1 or w < 1:
        raise UserError(f"a {h}x{w} frame is empty: frames need at least 1x1 pixels")
    scale = min(1.0, high[0] / h, high[1] / w)
    scaled = (max(1, int(h * scale)), max(1, int(w * scale))) if scale < 1.0 else (h, w)
    padded = (max(scaled[0], low[0]), max(scaled[1], low[1]))
    if padded[0] > high[0] or padded[1] > high[1]:
        raise UserError(f"a {h}x{w} frame cannot be fitted into the model's {low[0]}x{low[1]}..{high[0]}x{high[1]}")
    return Fit((h, w), scaled, padded)


@dataclass
class Task:
    """Base class: how frames become inputs and outputs become frames, and the task's own CLI options.

    Subclasses set ``name`` (the subcommand and the sidecar's ``task``), ``help``, ``video_input``
    (False for tasks that make their own frames) and ``demo_clip`` (the ``runtime.democlip`` kind the
    benchmarks feed it, or None), and register with ``@register_task``.
    """

    name: ClassVar[str] = "task"
    help: ClassVar[str] = ""
    video_input: ClassVar[bool] = True
    demo_clip: ClassVar[str | None] = None
    image_input: str = "image"
    output: str = ""
    _fits: dict = field(default_factory=dict, repr=False)
    _warned: bool = field(default=False, repr=False)

    # -- declared per task ----------------------------------------------------------------------------------

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        """Add the task's own options to its ``python -m runtime`` subcommand."""

    @classmethod
    def from_args(cls, args: argparse.Namespace, runner: Runner) -> Task:
        """The task as the command line asks for it (``runner`` is checked to be this task's model first)."""
        return cls()

    @classmethod
    def for_benchmark(cls, runner: Runner, frames: int) -> Task:
        """The task with the settings the benchmarks' end-to-end rows use."""
        return cls()

    # -- shared -----------------------------------------------------------------------------------------------

    @classmethod
    def check_model(cls, runner: Runner) -> None:
        """Raise TaskError unless ``runner``'s sidecar names this task."""
        if runner.sidecar.task != cls.name:
            other = runner.sidecar.task
            hint = f" (use python -m runtime {other})" if other in _TASKS else \
                " (no runtime task drives it; it is a part of a chain)"
            raise TaskError(f"{runner.sidecar.artefact} is a {runner.family!r} model ({runner.name}); "
                            f"'{cls.name}' needs a model of its task{hint}")

    def check(self, runner: Runner) -> None:
        """Raise TaskError unless ``runner``'s model is driven by this task; pick its output."""
        self.check_model(runner)
        self.output = self.output or runner.contract["outputs"][0]["name"]

    def limits(self, runner: Runner) -> tuple[tuple[int, int], tuple[int, int]]:
        """The smallest and largest (H, W) the model accepts for its image input: an engine's profile,
        an ONNX file's dynamic range."""
        return runner.sidecar.image_limits(self.image_input)

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
        self.observe(outputs)
        return self.finish(tensor_to_frame(outputs[self.output]), fitted)

    def observe(self, outputs: dict[str, np.ndarray]) -> None:
        """Take what a frame's outputs carry to later frames (a light estimate); nothing by default. On the GPU
        executor it gets the vector outputs, which come back with each frame."""

    def finish(self, frame: np.ndarray, fitted: np.ndarray) -> np.ndarray:
        """A last step on the uint8 output frame (also after GPU conversion); none by default."""
        return frame


@register_task
@dataclass
class EnhanceTask(Task):
    """Low-light enhancement; optionally smooths the estimated illumination over time against flicker
    and reduces the grain that changes from frame to frame.

    Args:
        smoothing: 0 (off) .. <1: weight of the previous frames in an exponential moving average of the
            illumination ``input / enhanced`` (Retinex: image = reflectance x illumination), kept at
            1/8 resolution; each frame is then ``input / smoothed illumination``.
        denoise: 0 (off) .. <1: strength of the motion-adaptive running average of output frames
            (``runtime.core.temporal.TemporalDenoiser``).
    """

    name: ClassVar[str] = "enhance"
    help: ClassVar[str] = "low-light enhancement of a video, camera or stream"
    demo_clip: ClassVar[str | None] = "lowlight"
    smoothing: float = 0.0
    denoise: float = 0.0
    _illumination: np.ndarray | None = field(default=None, repr=False)
    _denoiser: TemporalDenoiser | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if not 0.0 <= self.smoothing < 1.0:
            raise UserError(f"--smooth must be in [0, 1), got {self.smoothing}")
        if not 0.0 <= self.denoise < 1.0:
            raise UserError(f"--denoise must be in [0, 1), got {self.denoise}")
        self._denoiser = TemporalDenoiser(self.denoise) if self.denoise else None

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--smooth", type=bounded_float(0.0, 1.0, high_open=True), default=0.0, metavar="A",
                            help="temporal smoothing of the estimated illumination against flicker: 0 off .. 0.9 "
                                 "strong")
        parser.add_argument("--denoise", type=bounded_float(0.0, 1.0, high_open=True), default=0.0, metavar="S",
                            help="temporal noise reduction of the output (a motion-adaptive running average) "
                                 "against flickering grain on steady dark scenes: 0 off .. 0.8 strong")

    @classmethod
    def from_args(cls, args: argparse.Namespace, runner: Runner) -> Task:
        return cls(smoothing=args.smooth, denoise=args.denoise)

    def finish(self, frame: np.ndarray, fitted: np.ndarray) -> np.ndarray:
        frame = self._smooth(frame, fitted) if self.smoothing else frame
        return self._denoiser(frame) if self._denoiser is not None else frame

    def _smooth(self, frame: np.ndarray, fitted: np.ndarray) -> np.ndarray:
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


_LIGHT_MAX = 1000.0  # a light position's coordinates, in frame units (the frame spans -1..1)
_BACKGROUND = ("keep", "relit")  # --background: only the person relit, or the background too


def _vector(count: int):
    def parse(text: str) -> tuple[float, ...]:
        try:
            values = tuple(float(v) for v in text.split(","))
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {count} comma-separated numbers") from None
        if len(values) != count:
            raise argparse.ArgumentTypeError(f"{text!r}: expected {count} comma-separated numbers")
        if not all(math.isfinite(v) and abs(v) <= _LIGHT_MAX for v in values):
            raise argparse.ArgumentTypeError(f"{text!r}: each number must be finite, from -{_LIGHT_MAX:g} to "
                                             f"{_LIGHT_MAX:g}")
        return values

    parse.__name__ = "light"
    parse.numeric = True  # type: ignore[attr-defined]
    return parse


@register_task
@dataclass
class RelightTask(Task):
    """Relighting with a ``relight`` model: one light per frame from a fixed light or a path.

    Models with a ``background`` input (``relight_edge``) relight the person and leave the background as it
    is, or relight both; models with a ``history`` input get their previous light estimate back, so the
    frame's estimated light changes smoothly instead of flickering with the network's noise.

    Args:
        lights: (F, 3) point lights or (F, 27) SH lights; frame i uses row i mod F.
        background: ``keep`` (only the person is relit) or ``relit`` (the background follows the new light).
        light_smoothing: 0 (off) .. <1: weight of the previous frame's light estimate in the current one.
        denoise: 0 (off) .. <1: strength of the motion-adaptive running average of output frames
            (``runtime.core.temporal.TemporalDenoiser``); 0.5 by default, which keeps a relit static scene
            as steady as its input (benchmarks/RESULTS.md, ``python -m benchmarks.relight_video``).
    """

    name: ClassVar[str] = "relight"
    help: ClassVar[str] = "relight a video, camera or stream"
    demo_clip: ClassVar[str | None] = "faces"
    lights: np.ndarray = field(default_factory=lambda: np.zeros((1, 3), np.float32))
    background: str = "keep"
    light_smoothing: float = 0.8
    denoise: float = 0.5
    light_input: str = field(default="light", repr=False)
    _inputs: frozenset = field(default=frozenset(), repr=False)
    _estimate: np.ndarray | None = field(default=None, repr=False)
    _denoiser: TemporalDenoiser | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.background not in _BACKGROUND:
            raise UserError(f"--background must be {' or '.join(_BACKGROUND)}, got {self.background!r}")
        if not 0.0 <= self.light_smoothing < 1.0:
            raise UserError(f"--light-smoothing must be in [0, 1), got {self.light_smoothing}")
        if not 0.0 <= self.denoise < 1.0:
            raise UserError(f"--denoise must be in [0, 1), got {self.denoise}")
        self._denoiser = TemporalDenoiser(self.denoise) if self.denoise else None

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        light = parser.add_mutually_exclusive_group()
        light.add_argument("--light", type=_vector(3), metavar="X,Y,Z",
                           help="a fixed point light (relight_point): x right, y down over the frame (-1..1), z height")
        light.add_argument("--sh", metavar="NAME",
                           help="a named SH light (relight_sh, relight_edge): front, left, right, top, bottom, ambient")
        light.add_argument("--light-path", metavar="PATH",
                           help="orbit or sweep; a CSV with x,y,z columns (point lights); for SH models also a comma "
                                "list of SH light names to blend through (default: orbit)")
        parser.add_argument("--period", type=bounded_int(1, 1_000_000), default=120,
                            help="frames per cycle of --light-path")
        parser.add_argument("--background", choices=_BACKGROUND, default="keep",
                            help="models with a person mask (relight_edge): 'keep' relights only the person, 'relit' "
                                 "the background too")
        parser.add_argument("--light-smoothing", type=bounded_float(0.0, 1.0, high_open=True), default=0.8,
                            metavar="A", help="models that estimate the frame's light over time (relight_edge): "
                                              "weight of the previous estimate against flicker, 0 off .. 0.95 steady")
        parser.add_argument("--denoise", type=bounded_float(0.0, 1.0, high_open=True), default=0.5, metavar="S",
                            help="temporal noise reduction of the output (a motion-adaptive running average) "
                                 "against flicker on steady scenes: 0 off .. 0.8 strong (default: 0.5)")

    @classmethod
    def from_args(cls, args: argparse.Namespace, runner: Runner) -> Task:
        from .core.lighting import point_light_path, read_light_csv, sh_light_path, sh_preset

        if args.light is not None:
            lights = np.asarray([args.light], np.float32)
        elif args.sh is not None:
            try:
                lights = sh_preset(args.sh)[None]
            except ValueError as exc:
                raise UserError(str(exc)) from None
        else:
            spec = args.light_path or "orbit"
            if _takes_sh(runner):
                lights, _ = sh_light_path(spec, args.period)
            elif spec in ("orbit", "sweep"):
                lights = point_light_path(spec, args.period)
            else:
                lights = read_light_csv(spec, ("x", "y", "z")).astype(np.float32)
        return cls(lights=np.asarray(lights, np.float32), background=args.background,
                   light_smoothing=args.light_smoothing, denoise=args.denoise)

    @classmethod
    def for_benchmark(cls, runner: Runner, frames: int) -> Task:
        from .core.lighting import point_light_path, sh_light_path

        lights = sh_light_path("orbit", frames)[0] if _takes_sh(runner) else point_light_path("orbit", frames)
        return cls(lights=np.asarray(lights, np.float32))

    def check(self, runner: Runner) -> None:
        super().check(runner)
        spec = _light_spec(runner)
        self.light_input, width = spec["name"], int(spec["shape"][1])
        if self.lights.shape[1] != width:
            kind = "SH (27 coefficients: --sh or an SH light path)" if width == 27 else "point (x,y,z: --light)"
            raise TaskError(f"{runner.name} takes a {kind} light; got {self.lights.shape[1]} numbers per light")
        self._inputs = frozenset(s["name"] for s in runner.contract["inputs"])
        if self.background != "keep" and "background" not in self._inputs:
            log.warning("--background %s: %s has no person mask, it relights the whole frame", self.background,
                        runner.name)

    def extras(self, index: int) -> dict[str, np.ndarray]:
        feeds = {self.light_input: self.lights[index % len(self.lights)][None].astype(np.float32)}
        if "background" in self._inputs:
            feeds["background"] = np.full((1, 1), 1.0 if self.background == "relit" else 0.0, np.float32)
        if "history" in self._inputs:
            estimate = self._estimate  # one read: the encode thread replaces it
            history = np.zeros((1, 28), np.float32)
            if estimate is not None and self.light_smoothing:
                history[0, 0], history[0, 1:] = self.light_smoothing, estimate
            feeds["history"] = history
        return feeds

    def observe(self, outputs: dict[str, np.ndarray]) -> None:
        # The light estimate comes back with the frame (also from the GPU executor, a few frames late when
        # frames are in flight).
        estimate = outputs.get("sh_estimate")
        if estimate is not None and np.isfinite(estimate).all():
            self._estimate = np.array(estimate, np.float32).reshape(-1)[:27]

    def finish(self, frame: np.ndarray, fitted: np.ndarray) -> np.ndarray:
        return self._denoiser(frame) if self._denoiser is not None else frame


def _light_spec(runner: Runner) -> dict:
    """The contract of the model's light input: ``sh`` (27 SH coefficients) or ``light`` (a point light)."""
    for spec in runner.contract["inputs"]:
        if spec["name"] in ("sh", "light") and "shape" in spec:
            return spec
    raise TaskError(f"{runner.name} has no light input ('sh' or 'light'); its inputs are "
                    f"{', '.join(s['name'] for s in runner.contract['inputs'])}")


def _takes_sh(runner: Runner) -> bool:
    """Whether the model's light input is 27 SH coefficients (else a point light)."""
    return int(_light_spec(runner)["shape"][1]) == 27


@register_task
@dataclass
class IBRTask(Task):
    """Renders a captured scene (its average image) along a light path; no input video.

    Args:
        average: the capture's linear HDR average image (H, W, 3).
        lights: normalised (F, 2) light positions, one per output frame.
        white: the linear value shown as white (default: twice the average's 99.5th percentile).
    """

    name: ClassVar[str] = "ibr"
    help: ClassVar[str] = "render a captured scene along a light path"
    video_input: ClassVar[bool] = False
    image_input: str = "average"
    average: np.ndarray = field(default_factory=lambda: np.zeros((1, 1, 3), np.float32))
    lights: np.ndarray = field(default_factory=lambda: np.zeros((1, 2), np.float32))
    white: float | None = None

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--light-path", default="orbit", metavar="PATH",
                            help="orbit, sweep or a CSV with x,y columns in capture units")
        parser.add_argument("--frames", type=bounded_int(1, 1_000_000), default=120, help="frames to render")
        parser.add_argument("--average", metavar="FILE.npy",
                            help="the capture's average image (default: the export's asset)")
        parser.add_argument("--white", type=positive_float, help="linear value shown as white (default: from the "
                                                                  "average)")

    @classmethod
    def from_args(cls, args: argparse.Namespace, runner: Runner) -> Task:
        from .core.lighting import ibr_light_path

        config = runner.sidecar.config
        lights = ibr_light_path(args.light_path, args.frames, config["light_low"], config["light_high"])
        return cls(average=cls.read_average(args, runner), lights=lights, white=args.white)

    @staticmethod
    def read_average(args: argparse.Namespace, runner: Runner) -> np.ndarray:
        """``--average``, else the export's ``average`` asset, else the training run's ``average.npy``."""
        path = Path(args.average) if args.average else None
        if path is None and "average" in runner.sidecar.assets:
            model = Path(args.model)
            path = (model if model.is_dir() else model.parent) / runner.sidecar.assets["average"]
        if path is None:
            path = Path(runner.sidecar.source.get("checkpoint", ".")).parent / "average.npy"
        return read_float_image(path, "average image", "pass --average FILE.npy (the run folder's average.npy)")

    def frames(self) -> int:
        return len(self.lights)

    def feeds(self, frame: np.ndarray, index: int) -> dict[str, np.ndarray]:
        average = np.ascontiguousarray(self.average.transpose(2, 0, 1)[None], dtype=np.float32)
        return {"average": average, "light": self.lights[index % len(self.lights)][None].astype(np.float32)}

    def postprocess(self, outputs: dict[str, np.ndarray], fitted: np.ndarray) -> np.ndarray:
        white = self.white or float(np.percentile(self.average, 99.5) * 2) or 1.0
        linear = np.clip(outputs[self.output][0] / white, 0.0, 1.0)
        return tensor_to_frame(linear_to_srgb(linear)[None])
