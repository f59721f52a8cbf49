"""The models a benchmark runs: registry presets (seeded weights) or your own checkpoints, exported once.

``prepare(spec, cache)`` returns a ``Prepared`` with the checkpoint, the FP32, FP16 and (when asked)
INT8 ONNX files (with sidecars, so ``runtime.load`` takes them) and the contract. Registry presets get
weights from ``torch.manual_seed(0)``: speed does not depend on training, and parity is measured on
realistic inputs from the family's generator. Exports are cached by the checkpoint's content and the
training package's source (a preset whose code changed is made and exported again).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Prepared", "prepare", "RESOLUTIONS", "parse_resolution", "DEFAULT_MODELS"]

RESOLUTIONS = {"360p": (360, 640), "720p": (720, 1280), "1080p": (1080, 1920)}
DEFAULT_MODELS = ("lowlight_edge", "unet_edge", "sfsnet_edge", "ibr_edge", "relight_point", "relight_sh", "relight_edge")


def parse_resolution(text: str) -> tuple[int, int]:
    """``360p`` / ``720p`` / ``1080p`` or ``HxW`` -> (height, width)."""
    text = text.strip().lower()
    if text in RESOLUTIONS:
        return RESOLUTIONS[text]
    try:
        h, w = (int(v) for v in text.split("x"))
    except ValueError:
        raise ValueError(f"{text!r} is not 360p, 720p, 1080p or HxW") from None
    if min(h, w) < 16:
        raise ValueError(f"{text!r}: both sides must be at least 16")
    return h, w


@dataclass
class Prepared:
    """A model ready to benchmark."""

    name: str
    checkpoint: Path
    onnx: Path | None
    """None when only PyTorch rows were asked for (``prepare(..., onnx_files=False)``); so is ``onnx_fp16``."""
    onnx_fp16: Path | None
    meta: dict
    onnx_int8: Path | None = None
    """None when the INT8 file failed its parity check (``int8_note`` says why) or was not asked for."""
    int8_note: str = ""

    @property
    def contract(self) -> dict:
        return self.meta["contract"]


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def _code_digest() -> str:
    """A digest of the training package's Python source: what builds and exports the models (a family can
    use another's modules, as relight uses sfsnet's), so any change there makes and exports them again."""
    import train

    digest = hashlib.sha256()
    for path in sorted(Path(train.__file__).parent.rglob("*.py")):
        digest.update(path.read_bytes())
    return digest.hexdigest()[:8]


def prepare(spec: str, cache: Path, *, quiet: bool = True, int8: bool = False, onnx_files: bool = True) -> Prepared:
    """A registry name (``lowlight_edge``) or a checkpoint / run folder, exported to ONNX under ``cache``.

    ``onnx_files=False`` makes only the checkpoint (PyTorch rows need nothing else, and a GPU machine without the
    export extra can still run them).

    The export is ``python -m export --fp16 [--int8] --no-engine`` with a profile covering every benchmark
    size, cached by the checkpoint's content and the model code. An INT8 file that fails its parity
    check is left out (``Prepared.int8_note``), not an error: the FP32 and FP16 rows still run.
    """
    import torch

    from train.checkpoint import checkpoint_path, read_checkpoint, save_checkpoint
    from train.models import create_model, list_models

    cache.mkdir(parents=True, exist_ok=True)
    code = _code_digest()
    if spec in list_models():
        ckpt = cache / f"{spec}-{code}.ckpt"
        if not ckpt.is_file():
            torch.manual_seed(0)
            save_checkpoint(ckpt, create_model(spec).eval())
    else:
        ckpt = checkpoint_path(spec)
    meta = read_checkpoint(ckpt)["edgelight"]
    if not onnx_files:
        return Prepared(meta["name"], ckpt, None, None, meta)
    folder = cache / f"{meta['name']}-{_digest(ckpt)}-{code}"
    onnx, half, q8 = folder / "model.onnx", folder / "model.fp16.onnx", folder / "model.int8.onnx"
    report_path = folder / "export_report.json"
    tried_int8 = report_path.is_file() and any(a["precision"] == "int8" for a in json.loads(
        report_path.read_text())["artefacts"])
    if not (onnx.is_file() and half.is_file()) or (int8 and not tried_int8):
        from export.pipeline import ExportOptions, run_export

        report = run_export(ExportOptions(
            checkpoint=str(ckpt), out=str(folder), fp16=True, int8=int8, engine=False, min_shape=(16, 16),
            opt_shape=(720, 1280), max_shape=(2160, 3840), max_batch=8, parity_shapes=((1, 256, 256),),
            quiet=quiet))
        failed = [a for a in report["failed"] if a != "model.int8.onnx"]
        if failed:
            raise RuntimeError(f"{meta['name']}: export failed parity: {failed} (see {folder})")
    note = ""
    if int8 and not q8.is_file():
        rows = json.loads(report_path.read_text())["artefacts"]
        note = next((r["parity"] for r in rows if r["artefact"] == "model.int8.onnx"), "not exported")
    return Prepared(meta["name"], ckpt, onnx, half, meta, q8 if int8 and q8.is_file() else None, note)
