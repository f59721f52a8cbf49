"""``runtime.load``: the right runner for a model file or folder, from the backend registry."""

from __future__ import annotations

import os
from pathlib import Path

from .backends import backend_for_file, get_backend, pick_file
from .core.errors import ModelError
from .runners.base import Runner

__all__ = ["load"]


def load(path: str | os.PathLike, backend: str = "auto", precision: str = "auto", **options) -> Runner:
    """The runner for ``path``, not yet active (use it in a ``with`` block or call ``activate()``).

    Args:
        path: a file a registered backend runs (an engine ``.engine`` / ``.plan``: TensorRT; ``.onnx``:
            ONNX Runtime; ``.ckpt``: PyTorch), or a folder: a training run (its ``best.ckpt``) or an
            export folder (its engine when TensorRT can run here, else ``model.onnx`` on the CPU or
            ``model.fp16.onnx`` with a GPU build of ONNX Runtime). ``runtime.backends.pick_file`` states the rule.
        backend: ``auto`` (by suffix) or a registered backend name to insist on.
        precision: ``auto`` or ``fp32`` / ``fp16`` / ``int8``: which artefact of an export folder to run;
            a file must be of that precision (its sidecar says).
        **options: runner options from ``runtime.backends.OPTIONS`` (``threads``, ``device``, ``providers``,
            ``cuda_lib``, ``fp16``, ``cuda_graphs``, ...); None means "not given". An option the chosen
            backend does not take is a ModelError naming it.

    Raises:
        ModelError: the file is missing, has no sidecar, does not suit ``backend``, or an option does not apply.
    """
    if backend != "auto":
        get_backend(backend)  # an unknown name fails before the path is looked at
    path = Path(path)
    if not path.exists():
        raise ModelError(f"no model at {path}")
    if path.is_dir():
        path = pick_file(path, backend, precision)
    chosen = backend_for_file(path)
    if backend not in ("auto", chosen.name):
        raise ModelError(f"{path.name} is a {chosen.name} model; --backend {backend} needs "
                         f"{get_backend(backend).artefact}")
    runner = chosen.create(path, **options)
    if precision not in ("auto", runner.sidecar.precision):
        raise ModelError(f"{path.name} is a {runner.sidecar.precision.upper()} model; --precision {precision} needs "
                         f"its {precision.upper()} export (python -m export --{precision}, or give the folder)")
    return runner
