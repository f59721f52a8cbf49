"""The sidecar: a JSON file next to every exported artefact saying what it is and how it was built.

``model.onnx`` has ``model.onnx.json``, ``model.fp16.engine`` has ``model.fp16.engine.json``. Export
writes it (``Sidecar.to_dict``), every runner reads it (``read_sidecar``) and never guesses: the
contract gives the input and output names, layout, ranges and normalisation; ``task`` says which
runtime task drives the model; ``tensorrt`` gives the version and GPU an engine was built for.
Nothing is ever prepended to an engine plan (that would break trtexec and every other TensorRT tool).
The PyTorch runner describes a checkpoint with the same class (``Sidecar.for_checkpoint``), so every
backend is checked the same way.

This module imports only the standard library.

Fields (``format`` ``edgelight-sidecar/1``):

* ``artefact`` (file name), ``kind`` (``onnx`` | ``engine``; ``checkpoint`` in memory only),
  ``sha256`` of the artefact, ``size_bytes``, ``precision`` (``fp32`` | ``fp16`` | ``int8``: what
  the arithmetic runs in), ``io_precision`` (``fp32`` | ``fp16``: the type of the inputs and outputs);
* ``name``, ``family``, ``preset``, ``config`` and ``contract``: the checkpoint's; ``task``: the
  runtime task that drives the family (``enhance``, ``relight``, ``ibr``; null for families that are
  parts of a chain);
* ``opset``; ``dynamic``: the symbolic shape of every input and output (``batch``, ``height``,
  ``width`` for dynamic axes) and the bounds of each symbol; ``profile``: per input, the
  ``min`` / ``opt`` / ``max`` shapes the artefact is built or recommended for (``make_profile``);
* ``source``: the checkpoint path, its SHA-256 and the checkpoint's held-out metrics;
* ``parity``: ``passed``, the ``thresholds`` and one row per output and input shape;
* ``fp16``: for FP16 artefacts, how many convolutions and matmuls run in FP16 and what stays FP32;
* ``int8`` (INT8 artefacts, kept in ``extra``): what is quantized, what stays float, the calibration;
* ``assets`` (when the model needs more than its weights): file names next to the artefact, such
  as an ibr capture's ``average`` image (``average.npy``);
* ``tensorrt`` (engines only): ``version``, ``compute_capability``, ``device_name`` (the GPU model; absent
  from older sidecars), ``cache_key``, ``version_compatible``, ``hardware_compatible``, ``workspace_gb``;
* ``created``, ``versions`` (edgelight, torch, onnx, onnxruntime, tensorrt where used).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from .errors import SidecarError

__all__ = ["FORMAT", "MIN_SIDE", "MAX_SIDE", "KINDS", "PRECISIONS", "IO_PRECISIONS", "ShapeRange", "TensorRTBuild",
           "Sidecar", "make_profile", "sidecar_path", "read_sidecar", "validate_sidecar", "file_sha256",
           "cached_sha256", "verify_artefact", "SidecarError"]

FORMAT = "edgelight-sidecar/1"
MIN_SIDE, MAX_SIDE = 16, 8192
"""Bounds of the dynamic height and width of every exported model (and of a checkpoint run as is)."""
KINDS = ("onnx", "engine")
"""What a sidecar file describes (a checkpoint's ``Sidecar`` lives in memory only, kind ``checkpoint``)."""
PRECISIONS = ("fp32", "fp16", "int8")
"""What an artefact's arithmetic runs in."""
IO_PRECISIONS = ("fp32", "fp16")
"""The types of an artefact's inputs and outputs (an INT8 file takes and gives FP32)."""

_LEGACY_TASKS = {"lowlight": "enhance", "relight": "relight", "ibr": "ibr"}
"""Sidecars written before ``task`` was recorded: the task their family had then."""

_REQUIRED = {
    "format": str, "artefact": str, "kind": str, "sha256": str, "size_bytes": int, "precision": str,
    "io_precision": str, "name": str, "family": str, "preset": str, "config": dict, "contract": dict,
    "opset": int, "dynamic": dict, "profile": dict, "source": dict, "parity": dict, "created": str,
    "versions": dict,
}


@dataclass(frozen=True)
class ShapeRange:
    """The ``min`` / ``opt`` / ``max`` full shapes (batch first) one input takes."""

    min: tuple[int, ...]
    opt: tuple[int, ...]
    max: tuple[int, ...]

    def to_dict(self) -> dict[str, list[int]]:
        return {"min": list(self.min), "opt": list(self.opt), "max": list(self.max)}

    @classmethod
    def from_dict(cls, name: str, data: object) -> ShapeRange:
        if not isinstance(data, dict) or sorted(data) != ["max", "min", "opt"]:
            raise SidecarError(f"sidecar profile for {name!r} needs min, opt and max")
        try:
            low, opt, high = (tuple(int(v) for v in data[k]) for k in ("min", "opt", "max"))
        except (TypeError, ValueError):
            raise SidecarError(f"sidecar profile for {name!r} must hold lists of integers") from None
        if not (len(low) == len(opt) == len(high)) or any(not 0 < a <= b <= c for a, b, c in zip(low, opt, high)):
            raise SidecarError(f"sidecar profile for {name!r} is not min <= opt <= max: {list(low)}, {list(opt)}, "
                               f"{list(high)}")
        return cls(low, opt, high)


def make_profile(contract: dict, low: tuple[int, int], opt: tuple[int, int], high: tuple[int, int],
                 max_batch: int) -> dict[str, ShapeRange]:
    """Per input of ``contract``: the shapes from batch 1 at ``low`` (H, W) to ``max_batch`` at ``high``.

    Image inputs (``channels``) get N x C x H x W shapes; vector inputs (``shape`` [N, K]) get N x K.
    Export, the PyTorch runner and the benchmarks all build profiles here.
    """
    profile = {}
    for spec in contract["inputs"]:
        if "shape" in spec:
            k = int(spec["shape"][1])
            profile[spec["name"]] = ShapeRange((1, k), (1, k), (max_batch, k))
        else:
            c = int(spec["channels"])
            profile[spec["name"]] = ShapeRange((1, c, *low), (1, c, *opt), (max_batch, c, *high))
    return profile


@dataclass(frozen=True)
class TensorRTBuild:
    """What an engine was built with; the runtime refuses it on another TensorRT, GPU architecture or GPU model."""

    version: str
    compute_capability: str
    cache_key: str
    device_name: str = ""
    """The GPU the engine was built on, such as ``"NVIDIA L4"``; empty in sidecars written before it was recorded."""
    version_compatible: bool = False
    hardware_compatible: bool = False
    workspace_gb: float | None = None
    timing_cache: str | None = None
    reused: bool = False

    @classmethod
    def from_dict(cls, data: object) -> TensorRTBuild:
        if not isinstance(data, dict) or not all(k in data for k in ("version", "compute_capability", "cache_key")):
            raise SidecarError("an engine's sidecar needs tensorrt.version, compute_capability and cache_key")
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def to_dict(self) -> dict:
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}


@dataclass(frozen=True)
class Sidecar:
    """One artefact's sidecar, checked on construction from JSON (``from_dict``)."""

    artefact: str
    kind: str
    name: str
    family: str
    preset: str
    config: dict
    contract: dict
    profile: dict[str, ShapeRange]
    task: str | None = None
    precision: str = "fp32"
    io_precision: str = "fp32"
    sha256: str = ""
    size_bytes: int = 0
    opset: int = 0
    dynamic: dict = field(default_factory=dict)
    source: dict = field(default_factory=dict)
    parity: dict = field(default_factory=lambda: {"passed": False})
    assets: dict = field(default_factory=dict)
    fp16: dict | None = None
    tensorrt: TensorRTBuild | None = None
    created: str = ""
    versions: dict = field(default_factory=dict)
    extra: dict = field(default_factory=dict)
    """Fields this version does not know (kept, so a round trip loses nothing)."""
    format: str = FORMAT

    def __post_init__(self) -> None:
        if isinstance(self.tensorrt, dict):  # frozen: set once, here
            object.__setattr__(self, "tensorrt", TensorRTBuild.from_dict(self.tensorrt))

    # -- JSON -------------------------------------------------------------------------------------------------

    @classmethod
    def from_dict(cls, data: object) -> Sidecar:
        """Check ``data`` against the schema and build the sidecar; SidecarError names the first problem."""
        data = validate_sidecar(data)
        known = {f.name for f in dataclasses.fields(cls)} - {"profile", "tensorrt", "extra"}
        values = {k: v for k, v in data.items() if k in known}
        values.setdefault("task", _LEGACY_TASKS.get(data["family"]))
        return cls(profile={n: ShapeRange.from_dict(n, s) for n, s in data["profile"].items()},
                   tensorrt=TensorRTBuild.from_dict(data["tensorrt"]) if data.get("tensorrt") is not None else None,
                   extra={k: v for k, v in data.items() if k not in known and k not in ("profile", "tensorrt")},
                   **values)

    def to_dict(self) -> dict:
        """The JSON object export writes (and ``from_dict`` reads back)."""
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name not in ("extra",)}
        data["profile"] = {name: shapes.to_dict() for name, shapes in self.profile.items()}
        data["tensorrt"] = self.tensorrt.to_dict() if self.tensorrt else None
        for key in ("fp16", "tensorrt"):
            if data[key] is None:
                del data[key]
        if not data["assets"]:
            del data["assets"]
        data.update(self.extra)
        return data

    def replace(self, **changes) -> Sidecar:
        """A copy with ``changes`` (``tensorrt`` may be given as a dict)."""
        return dataclasses.replace(self, **changes)

    # -- what runners and tasks ask -----------------------------------------------------------------------------

    @classmethod
    def for_checkpoint(cls, meta: dict, path: str | os.PathLike, *, task: str | None = None) -> Sidecar:
        """A checkpoint's description: any batch up to 64 and any size in MIN_SIDE..MAX_SIDE, like an export."""
        contract = meta["contract"]
        profile = make_profile(contract, (MIN_SIDE, MIN_SIDE), (720, 1280), (MAX_SIDE, MAX_SIDE), 64)
        return cls(artefact=Path(path).name, kind="checkpoint", name=meta["name"], family=meta["family"],
                   preset=meta["preset"], config=meta["config"], contract=contract, profile=profile,
                   task=task or meta.get("task") or _LEGACY_TASKS.get(meta["family"]),
                   source={"checkpoint": str(path), "metrics": meta.get("metrics", {})})

    def image_limits(self, name: str) -> tuple[tuple[int, int], tuple[int, int]]:
        """The smallest and largest (H, W) image input ``name`` takes: an ONNX file's dynamic range, else the
        profile (an engine's optimisation profile)."""
        if self.kind == "onnx" and self.dynamic.get("height") and self.dynamic.get("width"):
            return ((self.dynamic["height"][0], self.dynamic["width"][0]),
                    (self.dynamic["height"][1], self.dynamic["width"][1]))
        shapes = self.profile[name]
        return (shapes.min[2], shapes.min[3]), (shapes.max[2], shapes.max[3])


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


def validate_sidecar(data: object) -> dict:
    """Check ``data`` against the schema; return it, or raise SidecarError naming the first problem."""
    if isinstance(data, Sidecar):
        data = data.to_dict()
    if not isinstance(data, dict):
        raise SidecarError("a sidecar must be a JSON object")
    if data.get("format") != FORMAT:
        raise SidecarError(f"sidecar format {data.get('format')!r}; this version reads {FORMAT!r}")
    for key, kind in _REQUIRED.items():
        if key not in data:
            raise SidecarError(f"sidecar has no {key!r}")
        if not isinstance(data[key], kind) or (kind is int and isinstance(data[key], bool)):
            raise SidecarError(f"sidecar {key!r} must be {kind.__name__}, not {type(data[key]).__name__}")
    if data["kind"] not in KINDS:
        raise SidecarError(f"sidecar kind {data['kind']!r} is not one of {', '.join(KINDS)}")
    for key, allowed in (("precision", PRECISIONS), ("io_precision", IO_PRECISIONS)):
        if data[key] not in allowed:
            raise SidecarError(f"sidecar {key} {data[key]!r} is not one of {', '.join(allowed)}")
    if data.get("task") is not None and not isinstance(data["task"], str):
        raise SidecarError(f"sidecar 'task' must be a string or null, not {type(data['task']).__name__}")
    contract = data["contract"]
    for side in ("inputs", "outputs"):
        specs = contract.get(side)
        if not isinstance(specs, list) or not specs or not all(isinstance(s, dict) and "name" in s for s in specs):
            raise SidecarError(f"sidecar contract needs a non-empty list of named {side}")
    names = [s["name"] for s in contract["inputs"]]
    if sorted(data["profile"]) != sorted(names):
        raise SidecarError(f"sidecar profile covers {sorted(data['profile'])}, the contract's inputs are {names}")
    for name, shapes in data["profile"].items():
        ShapeRange.from_dict(name, shapes)
    if not isinstance(data["parity"].get("passed"), bool):
        raise SidecarError("sidecar parity needs 'passed'")
    if data["kind"] == "engine":
        TensorRTBuild.from_dict(data.get("tensorrt"))
    return data


def _cache_file() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "edgelight" / "sha256.json"


def cached_sha256(path: str | os.PathLike) -> str:
    """``file_sha256``, remembered by (real path, size, modification time) in ``~/.cache/edgelight/sha256.json``,
    so loading the same model again does not read it twice; a cache that cannot be read or written is ignored."""
    path = Path(path).resolve()
    info = path.stat()
    key, stamp = str(path), [info.st_size, info.st_mtime_ns]
    cache_file = _cache_file()
    try:
        cache = json.loads(cache_file.read_text())
        if not isinstance(cache, dict):
            cache = {}
    except (OSError, ValueError):
        cache = {}
    entry = cache.get(key)
    if isinstance(entry, list) and len(entry) == 3 and entry[:2] == stamp:
        return str(entry[2])
    digest = file_sha256(path)
    cache[key] = [*stamp, digest]
    if len(cache) > 256:  # keep the newest entries
        cache = dict(list(cache.items())[-256:])
    try:
        from .io import write_json

        write_json(cache_file, cache)
    except OSError:
        pass
    return digest


def verify_artefact(artefact: str | os.PathLike, sidecar: Sidecar) -> None:
    """Check that ``artefact`` is the file its sidecar describes (size, then SHA-256).

    Raises:
        SidecarError: one line naming both files and what differs.
    """
    artefact = Path(artefact)
    if sidecar.kind == "checkpoint":
        return
    size = artefact.stat().st_size
    fix = "re-export it with python -m export, or put back the file the sidecar was written for"
    if size != sidecar.size_bytes:
        raise SidecarError(f"{artefact} does not match its sidecar {sidecar_path(artefact).name}: the file has "
                           f"{size} bytes, the sidecar records {sidecar.size_bytes}; {fix}")
    if cached_sha256(artefact) != sidecar.sha256:
        raise SidecarError(f"{artefact} does not match its sidecar {sidecar_path(artefact).name}: its SHA-256 "
                           f"differs from the one recorded; {fix}")


def read_sidecar(artefact: str | os.PathLike, *, verify: bool = True) -> Sidecar:
    """Load and check the sidecar of ``artefact`` and, with ``verify``, that the file is the one it describes.

    Raises:
        SidecarError: the sidecar is missing, not JSON, not in the schema, or does not match the file; the
            message names the files.
    """
    path = sidecar_path(artefact)
    if not path.is_file():
        raise SidecarError(f"{artefact} has no sidecar {path.name}; export it with python -m export")
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SidecarError(f"cannot read sidecar {path}: {exc}") from None
    try:
        sidecar = Sidecar.from_dict(data)
    except SidecarError as exc:
        raise SidecarError(f"{path}: {exc}") from None
    if verify and Path(artefact).is_file():
        verify_artefact(artefact, sidecar)
    return sidecar
