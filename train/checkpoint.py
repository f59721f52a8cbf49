"""The checkpoint contract: one file is enough to rebuild a model, run it and know what it expects.

A checkpoint is a ``torch.save`` dictionary (Lightning's own checkpoints qualify) holding:

* ``state_dict``: the model's weights, keys prefixed with ``model.``;
* ``edgelight``: metadata with ``format``, ``name`` (registry name), ``family``, ``task`` (the runtime
  task that drives the family, from ``train.families``), ``preset``,
  ``config`` (every field of the model's config), ``contract`` (input and output names, channels,
  value ranges, normalisation, layout), ``data`` (a summary of the training data), ``metrics``
  (validation and, after training, held-out test figures), ``parameters``, ``edgelight_version``,
  ``torch_version`` and ``created``.

``load_checkpoint`` needs none of the training code's arguments.
"""

from __future__ import annotations

import datetime as _dt
import os
from pathlib import Path

import torch
from torch import nn

from runtime.core import __version__
from runtime.core.errors import CheckpointError, UserError

from .families import get_family
from .models import create_model, get_entry
from .models.registry import current_name

__all__ = ["FORMAT", "build_metadata", "checkpoint_path", "save_checkpoint", "load_checkpoint", "read_checkpoint",
           "update_metadata", "torch_save"]

FORMAT = "edgelight-checkpoint/1"
_PREFIX = "model."


def build_metadata(model: nn.Module, *, data: dict | None = None, metrics: dict | None = None) -> dict:
    """Metadata for ``model`` (built by ``create_model``) in the checkpoint contract."""
    return {
        "format": FORMAT,
        "name": f"{model.family}_{model.preset}",
        "family": model.family,
        "task": get_family(model.family).task,
        "preset": model.preset,
        "config": model.config_dict(),
        "contract": model.io_contract(),
        "data": dict(data or {}),
        "metrics": dict(metrics or {}),
        "parameters": sum(p.numel() for p in model.parameters()),
        "edgelight_version": __version__,
        "torch_version": torch.__version__.split("+")[0],
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }


def save_checkpoint(
    path: str | os.PathLike, model: nn.Module, *, data: dict | None = None, metrics: dict | None = None
) -> Path:
    """Write ``model`` and its metadata to ``path`` atomically."""
    payload = {
        "state_dict": {_PREFIX + k: v.detach().cpu() for k, v in model.state_dict().items()},
        "edgelight": build_metadata(model, data=data, metrics=metrics),
    }
    return torch_save(payload, path)


def torch_save(payload: dict, path: str | os.PathLike) -> Path:
    """``torch.save`` to ``path`` atomically; a failed write (a full disk) is an OSError naming ``path`` and its
    cause, never PyTorch's internal error, and leaves neither a partial file nor a temporary behind."""
    import errno

    from runtime.core.io import atomic_path, free_bytes

    path = Path(path)
    with atomic_path(path) as tmp:
        try:
            torch.save(payload, tmp)
        except RuntimeError as exc:  # PytorchStreamWriter reports failed writes as RuntimeError
            if "write" not in str(exc).lower():
                raise
            code = errno.ENOSPC if (free_bytes(path.parent) or 0) < (1 << 20) else errno.EIO
            raise OSError(code, os.strerror(code), str(path)) from None
    return path


def checkpoint_path(path: str | os.PathLike) -> Path:
    """The checkpoint file a path names: the path itself, or a run folder's ``best.ckpt``."""
    path = Path(path)
    return path / "best.ckpt" if path.is_dir() else path


def _load_failure(exc: Exception) -> str:
    """What went wrong in ``torch.load``, in a few words: never PyTorch's advice to load untrusted pickles."""
    text = str(exc)
    if "PytorchStreamReader" in text or "zip archive" in text or isinstance(exc, OSError):
        return "the file is truncated or damaged"
    if isinstance(exc, EOFError) or not text.strip():
        return "the file is empty or cut short"
    if "Weights only load failed" in text:
        return "it is not a PyTorch archive of weights and metadata"
    return text.strip().splitlines()[0][:160]


def read_checkpoint(path: str | os.PathLike) -> dict:
    """Load the raw checkpoint dictionary, turning every failure into a CheckpointError."""
    path = checkpoint_path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a truncated or foreign file fails in many ways inside the unpickler
        raise CheckpointError(f"{path} is not a readable checkpoint ({_load_failure(exc)}); train one, or "
                              "point at a run folder's best.ckpt") from None
    if not isinstance(payload, dict) or "edgelight" not in payload or "state_dict" not in payload:
        raise CheckpointError(f"{path} is not an edgelight checkpoint (no 'edgelight' metadata)")
    meta = payload["edgelight"]
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{path} has checkpoint format {meta.get('format')!r}; this version reads {FORMAT!r}")
    meta["name"] = current_name(meta.get("name", ""), meta.get("config") or {})
    if "task" not in meta:  # written before the task was recorded
        try:
            meta["task"] = get_family(meta.get("family", "")).task
        except UserError as exc:
            raise CheckpointError(f"{path}: {exc}") from None
    return payload


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu", *, family: str | None = None,
                    purpose: str | None = None) -> tuple[nn.Module, dict]:
    """Rebuild the model stored at ``path`` (a file, or a run folder holding ``best.ckpt``).

    Args:
        family: the family the caller needs; a checkpoint of another family is a CheckpointError
            (checked before any weights are built).
        purpose: what needs it (``--load_model``, ``render``), to start that error's message.

    Returns:
        ``(model, metadata)``: the model in eval mode on ``map_location`` and the ``edgelight``
        metadata dictionary described in this module's docstring.
    """
    payload = read_checkpoint(path)
    meta = payload["edgelight"]
    if family is not None and meta.get("family") != family:
        raise CheckpointError(f"{purpose + ': ' if purpose else ''}{checkpoint_path(path)} holds a "
                              f"{meta.get('family')!r} model ({meta.get('name')}); "
                              f"expected a checkpoint of the {family} family")
    try:
        get_entry(meta["name"])
    except ValueError as exc:
        raise CheckpointError(f"{path}: {exc}") from None
    model = create_model(meta["name"], **meta["config"])
    weights = {k[len(_PREFIX):]: v for k, v in payload["state_dict"].items() if k.startswith(_PREFIX)}
    try:
        model.load_state_dict(weights)
    except RuntimeError as exc:
        raise CheckpointError(f"{path}: weights do not match the stored config: {str(exc).splitlines()[0]}") from None
    return model.to(map_location).eval(), meta


def update_metadata(path: str | os.PathLike, **fields) -> None:
    """Merge ``fields`` into a checkpoint's metadata (dictionaries are merged one level deep), atomically."""
    payload = read_checkpoint(path)
    meta = payload["edgelight"]
    for key, value in fields.items():
        if isinstance(value, dict) and isinstance(meta.get(key), dict):
            meta[key] = {**meta[key], **value}
        else:
            meta[key] = value
    torch_save(payload, path)
