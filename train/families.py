"""The family registry: each model family is declared once, in its own package, and everything reads it.

A ``Family`` gives what export, the runtime, the benchmarks and the tests need to know about a
family besides its presets (which ``train.models.register_presets`` registers): the runtime task
that drives it, the realistic-input generator that export parity and the benchmarks use, the files
an export must ship beside the weights, the tiny presets CI builds, and one training step on a
generated batch (so tests train every family without naming it).

Families are found, not listed: every package under ``train/`` whose ``__init__`` calls
``register_family`` is imported by ``load_families()`` (``train.models`` calls it, so
``create_model`` and ``get_family`` see every family). A new family is its own package plus that
one call.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from runtime.core.errors import UserError

__all__ = ["Family", "register_family", "get_family", "list_families", "load_families", "sample_inputs",
           "no_assets", "lazy"]


def lazy(module: str, name: str) -> Callable:
    """``module.name``, imported on the first call: a family's registration stays light (its data generator
    and loss may need scikit-image, OpenCV or the renderer, which importing the registry must not load)."""

    def call(*args, **kwargs):
        return getattr(importlib.import_module(module), name)(*args, **kwargs)

    call.__name__ = call.__qualname__ = f"{module}.{name}"
    return call


def no_assets(meta: dict, checkpoint: Path) -> dict[str, Path]:
    """A family whose exports need nothing besides the model file."""
    return {}


@dataclass(frozen=True)
class Family:
    """One model family.

    Args:
        name: the family name (the ``<family>`` of ``<family>_<preset>`` registry names).
        task: the ``python -m runtime`` task that drives it (``enhance``, ``relight``, ``ibr``), written into
            checkpoints and sidecars; None for families that are parts of a chain (``unet``, ``sfsnet``).
        sample_inputs: ``(meta, batch, height, width, seed) -> {input name: float32 array}``: realistic inputs
            from the family's own data generator, for export parity and the benchmarks.
        assets: ``(meta, checkpoint path) -> {asset name: file}``: files an export copies next to the model
            (an ibr capture's ``average`` image); the sidecar lists them under ``assets``.
        tiny: ``(registry name, config overrides)`` of the small models CI builds, trains a step, exports and
            runs; every family has at least one.
        train_step: ``(model, seed) -> loss`` on a small generated batch through the family's own loss, or
            None for a family that is composed rather than trained (``relight``).
        command: the training command's module (``train.unet``).
    """

    name: str
    task: str | None
    sample_inputs: Callable[[dict, int, int, int, int], dict[str, np.ndarray]]
    tiny: tuple[tuple[str, dict], ...]
    train_step: Callable | None
    command: str
    assets: Callable[[dict, Path], dict[str, Path]] = no_assets
    description: str = field(default="", compare=False)


_FAMILIES: dict[str, Family] = {}


def register_family(family: Family) -> Family:
    """Add ``family``; registering a name twice is an error."""
    if family.name in _FAMILIES:
        raise ValueError(f"family {family.name!r} is already registered")
    if not family.tiny:
        raise ValueError(f"family {family.name!r} declares no tiny preset for CI")
    _FAMILIES[family.name] = family
    return family


def load_families() -> None:
    """Import every family package under ``train/`` (each registers itself); idempotent."""
    import train

    for info in pkgutil.iter_modules(train.__path__):
        if info.ispkg and info.name not in ("data", "models"):
            importlib.import_module(f"train.{info.name}")


def list_families() -> list[str]:
    load_families()
    return sorted(_FAMILIES)


def get_family(name: str) -> Family:
    load_families()
    try:
        return _FAMILIES[name]
    except KeyError:
        raise UserError(f"unknown model family {name!r}; registered families: {', '.join(sorted(_FAMILIES))}") \
            from None


def sample_inputs(meta: dict, batch: int, height: int, width: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Inputs for the checkpoint described by ``meta`` from its family's generator, in the contract's order.

    Args:
        meta: checkpoint metadata (``family``, ``config``, ``contract``).
        batch, height, width: the size of the batch and of every image input.
        seed: selects the scenes, photos and lights; the same seed gives the same arrays.

    Returns:
        ``{input name: float32 array}`` in the contract's order (NCHW images, (N, K) vectors).
    """
    family = get_family(meta["family"])
    feeds = family.sample_inputs(meta, batch, height, width, seed)
    names = [spec["name"] for spec in meta["contract"]["inputs"]]
    if sorted(feeds) != sorted(names):
        raise ValueError(f"{family.name}: generated inputs {sorted(feeds)} do not match the contract's {names}")
    return {name: np.ascontiguousarray(feeds[name], dtype=np.float32) for name in names}
