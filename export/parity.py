"""Parity of an exported artefact with the PyTorch FP32 reference: max abs error, PSNR, NaN and Inf.

Both sides run through the runtime's own runners (``TorchRunner`` for the reference; the ONNX Runtime
and TensorRT runners for the artefacts), so parity is measured on the code users deploy.

Every output is compared on the scale its contract gives it. Its peak (the PSNR's signal) is the
width of the contract's value range when both ends are finite (1 for images in 0..1, 2 for unit
normals) and otherwise the reference's own range (HDR images, SH coefficients). The FP32 bound on
the max abs error applies to outputs whose peak is at most 1 and grows with the peak beyond that.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

__all__ = ["Thresholds", "OutputParity", "compare", "output_peak"]


@dataclass(frozen=True)
class Thresholds:
    """What an artefact must reach to pass."""

    fp32_max_abs: float = 1e-4
    """Largest abs difference of an FP32 artefact from PyTorch (times the output's peak when it exceeds 1)."""
    fp16_min_psnr: float = 45.0
    """Smallest PSNR (dB) of an FP16 artefact against PyTorch FP32."""
    int8_min_psnr: float = 35.0
    """Smallest PSNR (dB) of an INT8 artefact against PyTorch FP32."""

    def min_psnr(self, precision: str) -> float:
        """The PSNR bound of a reduced-precision artefact (``fp16`` or ``int8``)."""
        return self.int8_min_psnr if precision == "int8" else self.fp16_min_psnr


@dataclass
class OutputParity:
    """One output of one artefact at one input shape, against the PyTorch reference."""

    artefact: str
    output: str
    shape: list[int]
    max_abs: float
    psnr: float | None
    """dB, on the output's peak; None when the outputs are identical."""
    peak: float
    nonfinite: int
    """NaN and Inf values in the artefact's output."""
    passed: bool
    reason: str
    """Empty when passed; otherwise which bound failed and by how much."""

    def to_dict(self) -> dict:
        return asdict(self)


def output_peak(spec: dict, reference: np.ndarray) -> float:
    """The signal peak of an output for PSNR: its contract range, or the reference's range."""
    low, high = (spec.get("range") or [None, None])[:2]
    if low is not None and high is not None and high > low:
        return float(high - low)
    finite = reference[np.isfinite(reference)]
    spread = float(finite.max() - finite.min()) if finite.size else 0.0
    return max(spread, 1e-6)


def compare(artefact: str, precision: str, reference: dict[str, np.ndarray], candidate: dict[str, np.ndarray],
            contract: dict, thresholds: Thresholds = Thresholds()) -> list[OutputParity]:
    """Compare ``candidate`` outputs with ``reference`` ones, output by output.

    Args:
        artefact: a label for the report (``model.onnx``).
        precision: ``fp32`` (judged by max abs error), ``fp16`` or ``int8`` (judged by PSNR).
        reference, candidate: ``{output name: array}``.
        contract: the checkpoint's contract (gives each output's range).
    """
    results = []
    for spec in contract["outputs"]:
        name = spec["name"]
        ref = np.asarray(reference[name], np.float64)
        got = np.asarray(candidate[name], np.float64)
        peak = output_peak(spec, ref)
        nonfinite = int(got.size - np.isfinite(got).sum())
        if got.shape != ref.shape:
            results.append(OutputParity(artefact, name, list(got.shape), math.inf, 0.0, peak, nonfinite, False,
                                        f"shape {list(got.shape)} != PyTorch's {list(ref.shape)}"))
            continue
        both = np.isfinite(got) & np.isfinite(ref)
        diff = np.abs(got - ref)[both]
        max_abs = float(diff.max()) if diff.size else 0.0
        mse = float(np.mean(diff**2)) if diff.size else 0.0
        psnr = None if mse == 0.0 else 10.0 * math.log10(peak**2 / mse)
        reason = ""
        if not np.isfinite(ref).all():
            reason = f"the PyTorch reference has {int(ref.size - np.isfinite(ref).sum())} NaN/Inf values"
        elif nonfinite:
            reason = f"{nonfinite} NaN/Inf values of {got.size}" + (
                f" ({precision.upper()} overflow: keep the overflowing operators or nodes in FP32 with --keep-fp32)"
                if precision in ("fp16", "int8") else "")
        elif precision == "fp32":
            bound = thresholds.fp32_max_abs * max(1.0, peak)
            if max_abs > bound:
                reason = f"max abs error {max_abs:.3g} > {bound:.3g}"
        elif psnr is not None and psnr < thresholds.min_psnr(precision):
            reason = f"PSNR {psnr:.1f} dB < {thresholds.min_psnr(precision):g} dB (max abs error {max_abs:.3g})"
        results.append(OutputParity(artefact, name, list(ref.shape), max_abs, psnr, peak, nonfinite, not reason,
                                    reason))
    return results
