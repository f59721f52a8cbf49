"""The Runner protocol every backend implements: activate / infer / deactivate, a context manager.

The public methods check the runner's state and call the backend's ``*_impl`` methods, so a
pipeline drives any backend the same way and never needs to know which one it has::

    with runtime.load("model.fp16.onnx") as runner:
        outputs = runner.infer({"image": frame})      # {name: np.ndarray}
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np

from ..core.sidecar import ShapeRange, Sidecar

from ..core.errors import ModelError

__all__ = ["Runner", "TensorSpec", "parse_device"]


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


@dataclass(frozen=True)
class TensorSpec:
    """One input or output: its name, shape (``-1`` for a dynamic axis) and NumPy dtype."""

    name: str
    shape: tuple[int, ...]
    dtype: np.dtype


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
        """Run once: host arrays in (named by the contract), host arrays out (FP32 unless the I/O is FP16)."""
        if not self.is_active:
            raise RuntimeError(f"{type(self).__name__} is not active; call activate() or use it in a with block")
        return self.infer_impl(feeds)

    def deactivate(self) -> None:
        """Free the model, streams and buffers; idempotent."""
        if self.is_active:
            self.deactivate_impl()
            self.is_active = False

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
