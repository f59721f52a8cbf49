"""The sidecar: a JSON file next to every exported artefact saying what it is and how it was built.

``model.onnx`` has ``model.onnx.json``, ``model.fp16.engine`` has ``model.fp16.engine.json``. The
runtime reads the sidecar and never guesses: the contract gives the input and output names, layout,
ranges and normalisation; ``tensorrt`` gives the version and GPU an engine was built for. Nothing
is ever prepended to an engine plan (that would break trtexec and every other TensorRT tool).

This module imports only the standard library, so the lean runtime can use it.

Fields (``format`` ``edgelight-sidecar/1``):

* ``artefact`` (file name), ``kind`` (``onnx`` | ``engine``), ``sha256`` of the artefact,
  ``size_bytes``, ``precision`` (``fp32`` | ``fp16``: what the arithmetic runs in),
  ``io_precision`` (``fp32`` | ``fp16``: the type of the inputs and outputs);
* ``name``, ``family``, ``preset``, ``config`` and ``contract``: the checkpoint's;
* ``opset``; ``dynamic``: the symbolic shape of every input and output (``batch``, ``height``,
  ``width`` for dynamic axes) and the bounds of each symbol; ``profile``: per input, the
  ``min`` / ``opt`` / ``max`` shapes the artefact is built or recommended for;
* ``source``: the checkpoint path, its SHA-256 and the checkpoint's held-out metrics;
* ``parity``: ``passed``, the ``thresholds`` and one row per output and input shape;
* ``fp16``: for FP16 artefacts, how many convolutions and matmuls run in FP16 and what stays FP32;
* ``assets`` (when the model needs more than its weights): file names next to the artefact, such
  as an ibr capture's ``average`` image (``average.npy``);
* ``tensorrt`` (engines only): ``version``, ``compute_capability``, ``cache_key``,
  ``version_compatible``, ``hardware_compatible``, ``workspace_gb``;
* ``created``, ``versions`` (edgelight, torch, onnx, onnxruntime, tensorrt where used).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

__all__ = ["FORMAT", "sidecar_path", "read_sidecar", "validate_sidecar", "file_sha256", "SidecarError"]

FORMAT = "edgelight-sidecar/1"

_REQUIRED = {
    "format": str, "artefact": str, "kind": str, "sha256": str, "size_bytes": int, "precision": str,
    "io_precision": str, "name": str, "family": str, "preset": str, "config": dict, "contract": dict,
    "opset": int, "dynamic": dict, "profile": dict, "source": dict, "parity": dict, "created": str,
    "versions": dict,
}


class SidecarError(ValueError):
    """A sidecar is missing, unreadable or does not follow the schema."""


def sidecar_path(artefact: str | os.PathLike) -> Path:
    """The sidecar of ``artefact``: the same name with ``.json`` appended."""
    artefact = Path(artefact)
    return artefact.with_name(artefact.name + ".json")


def file_sha256(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def validate_sidecar(data: dict) -> dict:
    """Check ``data`` against the schema; return it, or raise SidecarError naming the first problem."""
    if not isinstance(data, dict):
        raise SidecarError("a sidecar must be a JSON object")
    if data.get("format") != FORMAT:
        raise SidecarError(f"sidecar format {data.get('format')!r}; this version reads {FORMAT!r}")
    for key, kind in _REQUIRED.items():
        if key not in data:
            raise SidecarError(f"sidecar has no {key!r}")
        if not isinstance(data[key], kind) or (kind is int and isinstance(data[key], bool)):
            raise SidecarError(f"sidecar {key!r} must be {kind.__name__}, not {type(data[key]).__name__}")
    if data["kind"] not in ("onnx", "engine"):
        raise SidecarError(f"sidecar kind {data['kind']!r} is not 'onnx' or 'engine'")
    for key in ("precision", "io_precision"):
        if data[key] not in ("fp32", "fp16"):
            raise SidecarError(f"sidecar {key} {data[key]!r} is not 'fp32' or 'fp16'")
    contract = data["contract"]
    for side in ("inputs", "outputs"):
        specs = contract.get(side)
        if not isinstance(specs, list) or not specs or not all(isinstance(s, dict) and "name" in s for s in specs):
            raise SidecarError(f"sidecar contract needs a non-empty list of named {side}")
    names = [s["name"] for s in contract["inputs"]]
    if sorted(data["profile"]) != sorted(names):
        raise SidecarError(f"sidecar profile covers {sorted(data['profile'])}, the contract's inputs are {names}")
    for name, shapes in data["profile"].items():
        if not isinstance(shapes, dict) or sorted(shapes) != ["max", "min", "opt"]:
            raise SidecarError(f"sidecar profile for {name!r} needs min, opt and max")
        low, opt, high = shapes["min"], shapes["opt"], shapes["max"]
        if not (len(low) == len(opt) == len(high)) or any(not 0 < a <= b <= c for a, b, c in zip(low, opt, high)):
            raise SidecarError(f"sidecar profile for {name!r} is not min <= opt <= max: {low}, {opt}, {high}")
    if not isinstance(data["parity"].get("passed"), bool):
        raise SidecarError("sidecar parity needs 'passed'")
    if data["kind"] == "engine":
        trt = data.get("tensorrt")
        if not isinstance(trt, dict) or not all(k in trt for k in ("version", "compute_capability", "cache_key")):
            raise SidecarError("an engine's sidecar needs tensorrt.version, compute_capability and cache_key")
    return data


def read_sidecar(artefact: str | os.PathLike) -> dict:
    """Load and check the sidecar of ``artefact``.

    Raises:
        SidecarError: the sidecar is missing, not JSON or not in the schema; the message names the file.
    """
    path = sidecar_path(artefact)
    if not path.is_file():
        raise SidecarError(f"{artefact} has no sidecar {path.name}; export it with python -m export")
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SidecarError(f"cannot read sidecar {path}: {exc}") from None
    try:
        return validate_sidecar(data)
    except SidecarError as exc:
        raise SidecarError(f"{path}: {exc}") from None
