"""The Runner protocol every backend implements: activate / infer / deactivate, a context manager.

The public methods check the runner's state and call the backend's ``*_impl`` methods, so a
pipeline drives any backend the same way and never needs to know which one it has::

    with runtime.load("model.fp16.onnx") as runner:
        outputs = runner.infer({"image": frame})      # {name: np.ndarray}
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Generic, TypeVar

import numpy as np

from ..core.errors import ModelError
from ..core.sidecar import ShapeRange, Sidecar

if TYPE_CHECKING:
    from ..cuda import Cuda, Stream

__all__ = ["Runner", "TensorSpec", "ShapeCache", "parse_device"]

Shape = tuple[int, ...]
T = TypeVar("T")


def parse_device(device: str | int) -> tuple[str, int]:
    """The ``device`` option of every runner -> (``auto`` | ``cpu`` | ``cuda``, GPU index).

    Takes ``auto``, ``cpu``, ``cuda``, ``cuda:N`` or a GPU index N.
    """
    if isinstance(device, int) and not isinstance(device, bool) and device >= 0:
        return "cuda", device
    text = str(device).strip().lower()
    if text in ("auto", "cpu", "cuda"):
        return text, 0
    kind, _, index = text.partition(":")
    if kind == "cuda" and index.isdigit():
        return "cuda", int(index)
    raise ModelError(f"device {device!r}: expected auto, cpu, cuda or cuda:N")


class ShapeCache(Generic[T]):
    """What a runner keeps per input shape (a CUDA graph, static buffers), at most ``limit`` entries.

    The least recently used entry goes when a new shape would make one too many, through ``release``
    (which frees its GPU memory), so a video whose size keeps changing cannot grow GPU memory without bound.
    """

    def __init__(self, limit: int, release) -> None:
        if limit < 1:
            raise ValueError(f"limit {limit}: keep at least one entry")
        self.limit, self._release = int(limit), release
        self._entries: OrderedDict[tuple, T] = OrderedDict()

    def get(self, key: tuple) -> T | None:
        """The entry for ``key`` (now the most recently used), or None."""
        entry = self._entries.get(key)
        if entry is not None:
            self._entries.move_to_end(key)
        return entry

    def put(self, key: tuple, entry: T) -> None:
        """Keep ``entry`` for ``key``, releasing the least recently used entries beyond the limit."""
        self._entries[key] = entry
        self._entries.move_to_end(key)
        while len(self._entries) > self.limit:
            _, old = self._entries.popitem(last=False)
            self._release(old)

    def clear(self) -> None:
        """Release every entry."""
        while self._entries:
            _, old = self._entries.popitem(last=False)
            self._release(old)

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: tuple) -> bool:
        return key in self._entries


@dataclass(frozen=True)
class TensorSpec:
    """One input or output: its name, shape (``-1`` for a dynamic axis) and NumPy dtype."""

    name: str
    shape: tuple[int, ...]
    dtype: np.dtype


def _int(value) -> int | None:
    """A contract's size: an int, or None for a symbolic one (``"N"``, ``"K"``)."""
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


class Runner(ABC):
    """A model ready to run on one backend.

    Args:
        sidecar: the artefact's sidecar (``runtime.core.sidecar``; a dict is checked and converted): contract,
            family, task, precision, profile. Tasks check it before they use the runner.
    """

    backend: str = "base"
    """Short backend name for reports: ``tensorrt``, ``onnxruntime``, ``torch``."""

    def __init__(self, sidecar: Sidecar | dict) -> None:
        self.sidecar = sidecar if isinstance(sidecar, Sidecar) else Sidecar.from_dict(sidecar)
        self.is_active = False

    @property
    def name(self) -> str:
        """The model's registry name (``lowlight_edge``)."""
        return self.sidecar.name

    @property
    def family(self) -> str:
        return self.sidecar.family

    @property
    def contract(self) -> dict:
        return self.sidecar.contract

    @property
    def profile(self) -> dict[str, ShapeRange]:
        """Per input: the ``min`` / ``opt`` / ``max`` shapes the model accepts or is tuned for."""
        return self.sidecar.profile

    @property
    def device(self) -> str:
        """``cpu`` or ``cuda``: where the runner's inputs and outputs live while it computes."""
        return "cpu"

    def activate(self) -> Runner:
        """Load the model and allocate its buffers; idempotent."""
        if not self.is_active:
            self.activate_impl()
            self.is_active = True
        return self

    def infer(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run once: host arrays in (named by the contract), host arrays out (FP32 unless the I/O is FP16).

        ``feeds`` maps every input of the contract, and nothing else, to a float array (float32; float16
        and float64 are converted) with values in the contract's range: N x C x H x W for an image input
        (``channels`` C), N x K for a vector input (``shape`` [N, K]), every side at least 1. Anything
        else raises ModelError (a ValueError) naming the input, what it takes and what it got
        (``check_feeds``); values are not scanned (NaN is not caught).
        """
        if not self.is_active:
            raise RuntimeError(f"{type(self).__name__} is not active; call activate() or use it in a with block")
        self.check_feeds(feeds)
        return self.infer_impl(feeds)

    def check_feeds(self, feeds: dict[str, np.ndarray]) -> None:
        """Raise ModelError (a ValueError) unless ``feeds`` is what ``infer`` takes; cheap (no copies, no scans)."""
        specs = self._feed_specs()
        if not isinstance(feeds, Mapping):
            raise ModelError(f"{self._label()} takes a dict of arrays named {', '.join(specs)}; "
                             f"got {type(feeds).__name__}")
        if missing := [name for name in specs if name not in feeds]:
            raise ModelError(f"no array for input {', '.join(map(repr, missing))}; {self._label()} takes "
                             f"{', '.join(specs)}")
        if len(feeds) != len(specs):
            unknown = [name for name in feeds if name not in specs]
            raise ModelError(f"{self._label()} has no input {', '.join(map(repr, unknown))}; it takes "
                             f"{', '.join(specs)}")
        for name, (rank, width, layout, values) in specs.items():
            array = feeds[name]
            if not isinstance(array, np.ndarray):
                raise ModelError(f"input {name!r} of {self._label()} takes a numpy float32 array {layout}; "
                                 f"got {type(array).__name__}")
            shape = array.shape
            if (rank is not None and len(shape) != rank) or 0 in shape or \
                    (width is not None and len(shape) > 1 and shape[1] != width):
                hint = ""
                if rank == 4 and len(shape) == 3 and width == 3 and shape[2] == 3:
                    hint = " (runtime.core.color.frame_to_tensor turns a uint8 HxWx3 BGR frame into 1x3xHxW)"
                elif 0 in shape:
                    hint = " (an empty array)"
                raise ModelError(f"input {name!r} of {self._label()} takes float32 {layout}; "
                                 f"got {array.dtype} {shape}{hint}")
            if array.dtype.kind != "f":
                scale = f" scaled to {values}" if values and "inf" not in values else ""
                raise ModelError(f"input {name!r} of {self._label()} takes float32 {layout}"
                                 f"{f' with values in {values}' if values else ''} (float16 and float64 are "
                                 f"converted); got {array.dtype} {shape}: pass array.astype(np.float32){scale}")

    def _feed_specs(self) -> dict[str, tuple[int | None, int | None, str, str]]:
        """Per contract input: (rank, size of axis 1, the layout in words, the value range or ""), made once."""
        cached = getattr(self, "_feed_specs_cache", None)
        if cached is not None and cached[0] is self.sidecar:
            return cached[1]
        specs: dict[str, tuple[int | None, int | None, str, str]] = {}
        for spec in self.contract["inputs"]:
            name = spec["name"]
            rank: int | None
            width: int | None
            if "shape" in spec:
                rank, width = 2, _int(spec["shape"][1])
                layout = f"of shape N x {'K' if width is None else width}"
            elif "channels" in spec:
                rank, width = 4, _int(spec["channels"])
                layout = f"of shape N x {'C' if width is None else width} x H x W"
            else:  # a contract without a layout: the profile's rank, and its axis 1 where that is fixed
                shapes = self.sidecar.profile.get(name)
                low, high = (tuple(shapes.min), tuple(shapes.max)) if shapes is not None else ((), ())
                rank = len(low) or None
                width = low[1] if len(low) > 1 and low[1] == high[1] else None
                layout = f"of {rank} dimensions" if rank else "of any shape"
            bounds = list(spec.get("range") or [])[:2]
            values = ""
            if len(bounds) == 2 and bounds != [None, None]:
                lo, hi = (("-inf", "inf")[i] if v is None else f"{v:g}" for i, v in enumerate(bounds))
                values = f"{lo}..{hi}"
            specs[name] = (rank, width, layout, values)
        self._feed_specs_cache = (self.sidecar, specs)
        return specs

    def _label(self) -> str:
        """The model's file name, for messages."""
        path = getattr(self, "engine_path", None) or getattr(self, "path", None)
        return Path(path).name if path else self.sidecar.artefact

    def deactivate(self) -> None:
        """Free the model, streams and buffers; idempotent."""
        if self.is_active:
            self.deactivate_impl()
            self.is_active = False

    # -- driven by the overlapped GPU executor (runtime.cuda_executor) -------------------------------------------

    def executor_cuda(self) -> Cuda | None:
        """The CUDA layer through which ``runtime.cuda_executor.CudaFrameExecutor`` drives this active runner on
        device buffers (``enqueue``), or None when it computes on host arrays only (the default).

        Raises:
            UserError: the runner is on a GPU but no CUDA Python library is installed (the message says which).
        """
        return None

    def profile_shapes(self, name: str) -> tuple[Shape, Shape, Shape]:
        """The (min, opt, max) shapes input ``name`` takes (the sidecar's profile; an engine's own)."""
        if name not in self.profile:
            raise KeyError(f"{name!r} is not an input of {self._label()}; its inputs are {list(self.profile)}")
        shapes = self.profile[name]
        return tuple(shapes.min), tuple(shapes.opt), tuple(shapes.max)

    def output_shapes(self, shapes: Mapping[str, Shape]) -> dict[str, Shape]:
        """The shape of every output for inputs of ``shapes``, without running the model.

        From the contract: an image output (``channels`` C) has the batch and size of the first image input,
        a vector output (``shape`` [N, K]) is N x K. Runners that know better (an engine) override it.
        """
        image = next((tuple(shapes[s["name"]]) for s in self.contract["inputs"]
                      if s["name"] in shapes and len(shapes[s["name"]]) == 4), None)
        batch = next(iter(shapes.values()))[0] if shapes else 1
        out = {}
        for spec in self.contract["outputs"]:
            if "shape" in spec:
                out[spec["name"]] = (int(batch), int(spec["shape"][1]))
            elif "channels" in spec and image is not None:
                out[spec["name"]] = (image[0], int(spec["channels"]), image[2], image[3])
            else:
                raise ModelError(f"{self._label()}: the contract gives no shape for output {spec['name']!r}")
        return out

    def enqueue(self, shapes: Mapping[str, Shape], addresses: Mapping[str, int], stream: Stream) -> dict[str, Shape]:
        """Queue one run on device buffers owned by the caller, in ``stream``'s order (``executor_cuda()``'s stream).

        Args:
            shapes: the shape of every input.
            addresses: the device address of every input and output, each large enough for its shape and the
                type ``input_metadata`` / ``output_metadata`` give it.
            stream: the stream that orders the run.

        Returns:
            The shape of every output.
        """
        raise NotImplementedError(f"the {self.backend} runner computes on host arrays only")

    @staticmethod
    def _check_enqueue(shapes: Mapping[str, Shape], addresses: Mapping[str, int], inputs, outputs) -> None:
        """ValueError unless ``enqueue`` got the shape of every input and the address of every input and output."""
        if missing := [name for name in inputs if name not in shapes]:
            raise ValueError(f"enqueue needs the shape of {missing}")
        if missing := [name for name in (*inputs, *outputs) if name not in addresses]:
            raise ValueError(f"enqueue needs the device address of {missing}")

    def input_metadata(self) -> list[TensorSpec]:
        """The inputs the active model takes."""
        return self.io_metadata()[0]

    def output_metadata(self) -> list[TensorSpec]:
        """The outputs the active model returns."""
        return self.io_metadata()[1]

    def __enter__(self) -> Runner:
        return self.activate()

    def __exit__(self, *exc) -> None:
        self.deactivate()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name}, {self.backend}, {'active' if self.is_active else 'inactive'})"

    @abstractmethod
    def activate_impl(self) -> None: ...

    @abstractmethod
    def infer_impl(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]: ...

    @abstractmethod
    def deactivate_impl(self) -> None: ...

    @abstractmethod
    def io_metadata(self) -> tuple[list[TensorSpec], list[TensorSpec]]: ...
