"""The physical floor: the least time a device could take to run a model once at a resolution.

A forward pass must do its arithmetic and must move its bytes, so it can take no less than the larger of
``flops / peak FLOP/s`` (compute-bound) and ``bytes / bandwidth`` (memory-bound), the roofline model's
bound. ``model_cost`` counts the work, ``cpu_peaks`` measures this machine, ``GPU_PEAKS`` holds the figures
NVIDIA states for its GPUs, and ``floor_ms`` combines them::

    cost = model_cost("unet_edge", 720, 1280, precision="fp16")
    floor_ms(cost, gpu_peaks("NVIDIA H100 80GB HBM3"), "fp16")   # {"floor_ms": ..., "bound": "compute", ...}

A measured latency divided by the floor says how far a backend is from what the hardware allows.
"""

from __future__ import annotations

import functools
import math
import re
import time

__all__ = ["PRECISIONS", "GPU_PEAKS", "model_cost", "cpu_peaks", "gpu_peaks", "floor_ms"]

PRECISIONS = {"fp32": 4, "fp16": 2}
"""Bytes per value at each precision the exports use."""


def _build(meta_or_model):
    """The PyTorch model behind a registry name, a checkpoint's metadata / sidecar, or a model."""
    from torch import nn

    from train.models import create_model

    if isinstance(meta_or_model, nn.Module):
        return meta_or_model
    if isinstance(meta_or_model, str):
        return create_model(meta_or_model)
    if isinstance(meta_or_model, dict) and "name" in meta_or_model:
        return create_model(meta_or_model["name"], **meta_or_model.get("config", {}))
    raise TypeError(f"model_cost needs a registry name, checkpoint metadata or an nn.Module, not "
                    f"{type(meta_or_model).__name__}")


def _values(spec: dict, height: int, width: int) -> int:
    """Values one contract tensor holds at batch 1: a per-frame vector or an image at height x width."""
    if "shape" in spec:
        return math.prod(int(d) for d in spec["shape"][1:])
    return int(spec["channels"]) * height * width


def model_cost(meta_or_model, height: int, width: int, *, precision: str = "fp32") -> dict:
    """The work one forward pass at batch 1 must do and the bytes it must move.

    ``min_bytes`` assumes every activation stays on chip (in caches, shared memory or registers), so only
    the weights are read and the inputs and outputs cross memory once: a lower bound on the traffic, as
    ``flops`` (multiply-adds of convolutions, linear layers and attention; element-wise work uncounted) is
    a lower bound on the arithmetic.

    Args:
        meta_or_model: a registry name (``unet_edge``), a checkpoint's ``edgelight`` metadata or a sidecar
            (``name`` and ``config``), or a model built by ``create_model``.
        height, width: the size of every image input (outputs are the same size, as the contracts say).
        precision: ``fp32`` or ``fp16``: the width of weights, inputs and outputs.

    Returns:
        ``{"precision", "height", "width", "parameters", "macs", "flops", "weight_bytes", "io_bytes",
        "min_bytes"}``: ``flops`` is ``2 * macs``; ``weight_bytes`` counts the parameters at ``precision``;
        ``io_bytes`` the contract's inputs and outputs at ``precision``; ``min_bytes`` their sum.
    """
    from benchmarks.model_cost import count_macs, example_inputs

    if precision not in PRECISIONS:
        raise ValueError(f"precision {precision!r}: choose from {', '.join(PRECISIONS)}")
    width_bytes = PRECISIONS[precision]
    model = _build(meta_or_model).eval()
    macs = count_macs(model, example_inputs(model, height, width))
    parameters = sum(p.numel() for p in model.parameters())
    contract = model.io_contract()
    io_values = sum(_values(s, height, width) for s in contract["inputs"] + contract["outputs"])
    weight_bytes, io_bytes = parameters * width_bytes, io_values * width_bytes
    return {"precision": precision, "height": height, "width": width, "parameters": parameters, "macs": macs,
            "flops": 2 * macs, "weight_bytes": weight_bytes, "io_bytes": io_bytes,
            "min_bytes": weight_bytes + io_bytes}


def _best_time(fn, budget: float, least: int) -> float:
    """Fastest of repeated calls of ``fn``: at least ``least`` calls, more while ``budget`` seconds last."""
    best, runs, deadline = math.inf, 0, time.perf_counter() + budget
    while runs < least or time.perf_counter() < deadline:
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
        runs += 1
    return best


def _copy_gbs(budget: float) -> float:
    """Memory bandwidth (GB/s) of the best copy of a 256 MB array: each byte read once and written once."""
    import numpy as np

    src = np.ones(256 * 2**20 // 8)  # far beyond any cache; ones() and zeros_like() touch every page
    dst = np.zeros_like(src)
    return 2 * src.nbytes / _best_time(lambda: np.copyto(dst, src), budget, least=3) / 1e9


@functools.lru_cache(maxsize=None)
def _measure_cpu(seconds: float, threads: int) -> tuple:
    """Bandwidth and FP32 matmul rate, as a tuple of pairs (hashable, so callers cannot change the cache)."""
    import torch

    from runtime.core.host import cpu_name

    bandwidth_gbs = _copy_gbs(seconds / 2)
    n = 2048
    g = torch.Generator().manual_seed(0)
    a, b = torch.rand(n, n, generator=g), torch.rand(n, n, generator=g)
    torch.mm(a[:256, :256], b[:256, :256])  # start the thread pool outside the timing
    mm_s = _best_time(lambda: torch.mm(a, b), seconds / 2, least=2)
    return (("name", cpu_name()), ("bandwidth_gbs", bandwidth_gbs), ("fp32_gflops", 2 * n**3 / mm_s / 1e9),
            ("threads", threads))


def cpu_peaks(seconds: float = 1.0) -> dict:
    """This machine's memory bandwidth and FP32 compute, measured once per process, ``seconds`` and thread count.

    Bandwidth: the best of repeated copies of a 256 MB NumPy array, counting the bytes read and written.
    Compute: the best of repeated 2048 x 2048 FP32 ``torch.mm`` at PyTorch's thread setting. Both are what
    a program reaches, somewhat below the hardware's nominal peaks, and lower on a busy machine.

    Args:
        seconds: the rough time to spend, half on each measurement (each runs at least a few times).

    Returns:
        ``{"name", "bandwidth_gbs", "fp32_gflops", "fp32_tflops", "fp16_tflops", "threads", "source"}``;
        ``fp16_tflops`` is None: no FP16 rate is measured (ONNX Runtime's CPU provider runs most FP16 nodes
        through casts to FP32).
    """
    import torch

    peaks = dict(_measure_cpu(float(seconds), torch.get_num_threads()))
    peaks.update(fp32_tflops=peaks["fp32_gflops"] / 1e3, fp16_tflops=None,
                 source=f"measured on this machine over about {seconds:g} s")
    return peaks


def _peaks(fp32_tflops: float, fp16_tflops: float | None, bandwidth_gbs: float, source: str) -> dict:
    """One GPU's stated figures: dense FP32 and FP16 Tensor Core TFLOP/s, memory GB/s, where they come from."""
    return {"fp32_tflops": fp32_tflops, "fp16_tflops": fp16_tflops, "bandwidth_gbs": bandwidth_gbs,
            "source": source}


_H100_SXM = _peaks(67.0, 989.5, 3350.0, "NVIDIA H100 Tensor Core GPU datasheet (H100 SXM)")
_H100_PCIE = _peaks(51.0, 756.5, 2000.0, "NVIDIA H100 Tensor Core GPU datasheet (H100 PCIe)")
_H200_SXM = _peaks(67.0, 989.5, 4800.0, "NVIDIA H200 Tensor Core GPU datasheet (H200 SXM)")
_A100_40GB = _peaks(19.5, 312.0, 1555.0, "NVIDIA A100 Tensor Core GPU datasheet (A100 40GB PCIe and SXM)")
_A100_80GB_PCIE = _peaks(19.5, 312.0, 1935.0, "NVIDIA A100 Tensor Core GPU datasheet (A100 80GB PCIe)")
_A100_80GB_SXM = _peaks(19.5, 312.0, 2039.0, "NVIDIA A100 Tensor Core GPU datasheet (A100 80GB SXM)")

GPU_PEAKS: dict[str, dict | None] = {
    # Dense figures (the datasheets' sparse Tensor Core figures halved); FP16 is the Tensor Core rate;
    # bandwidth is the GPU memory's. A key matches a device name when all its words appear in the name
    # (see gpu_peaks); None marks a known variant whose figures are not recorded here, so it does not fall
    # back to a faster sibling.
    #
    # NVIDIA H100 datasheet: SXM 67 FP32 TFLOPS, 1,979 FP16 Tensor TFLOPS sparse, 3.35 TB/s HBM3;
    # PCIe 51, 1,513 sparse, 2 TB/s HBM2e. PyTorch names the SXM part "NVIDIA H100 80GB HBM3".
    "H100 SXM": _H100_SXM,
    "H100 HBM3": _H100_SXM,
    "H100 PCIe": _H100_PCIE,
    "H100 NVL": None,  # 94 GB HBM3, other clocks: not recorded
    # NVIDIA H200 datasheet: H200 SXM 67 FP32 TFLOPS, 1,979 FP16 Tensor TFLOPS sparse, 4.8 TB/s HBM3e.
    "H200": _H200_SXM,
    "H200 NVL": None,  # lower clocks than the SXM part: not recorded
    # NVIDIA A100 datasheet: 19.5 FP32 TFLOPS, 312 FP16 Tensor TFLOPS dense (624 sparse);
    # 1,555 GB/s (40GB PCIe and SXM), 1,935 GB/s (80GB PCIe), 2,039 GB/s (80GB SXM).
    "A100 40GB": _A100_40GB,
    "A100 80GB PCIe": _A100_80GB_PCIE,
    "A100 SXM 80GB": _A100_80GB_SXM,
    # NVIDIA L40S datasheet: 91.6 FP32 TFLOPS, 362.05 FP16 Tensor TFLOPS dense (733 sparse), 864 GB/s GDDR6.
    "L40S": _peaks(91.6, 362.05, 864.0, "NVIDIA L40S datasheet"),
    # NVIDIA L40 datasheet: 90.5 FP32 TFLOPS, 181.05 FP16 Tensor TFLOPS dense (362.1 sparse), 864 GB/s.
    "L40": _peaks(90.5, 181.05, 864.0, "NVIDIA L40 datasheet"),
    # NVIDIA A40 datasheet: 37.4 FP32 TFLOPS, 149.7 FP16 Tensor TFLOPS dense (299.4 sparse), 696 GB/s.
    "A40": _peaks(37.4, 149.7, 696.0, "NVIDIA A40 datasheet"),
    # NVIDIA A10 datasheet: 31.2 FP32 TFLOPS, 125 FP16 Tensor TFLOPS dense (250 sparse), 600 GB/s.
    # AWS's A10G is a different part and does not match.
    "A10": _peaks(31.2, 125.0, 600.0, "NVIDIA A10 Tensor Core GPU datasheet"),
    # NVIDIA L4 datasheet: 30.3 FP32 TFLOPS, 242 FP16 Tensor TFLOPS sparse (121 dense), 300 GB/s.
    "L4": _peaks(30.3, 121.0, 300.0, "NVIDIA L4 Tensor Core GPU datasheet"),
    # NVIDIA T4 datasheet: 8.1 FP32 TFLOPS, 65 mixed-precision (FP16/FP32) TFLOPS, 320 GB/s GDDR6.
    "T4": _peaks(8.1, 65.0, 320.0, "NVIDIA T4 Tensor Core GPU datasheet"),
    # NVIDIA Ada GPU architecture whitepaper (GeForce RTX 4090): 82.6 FP32 TFLOPS, 330.3 FP16 Tensor TFLOPS
    # dense with FP16 accumulate (165.2 with FP32 accumulate), 1,008 GB/s GDDR6X. The higher rate is kept so
    # the floor stays a lower bound.
    "RTX 4090": _peaks(82.6, 330.3, 1008.0, "NVIDIA Ada GPU architecture whitepaper (GeForce RTX 4090)"),
    "RTX 4090 Laptop": None,  # a smaller chip under the same name
    # NVIDIA Jetson AGX Orin technical brief and module data sheet (64GB module): 5.3 FP32 TFLOPS on the GPU,
    # 204.8 GB/s LPDDR5 shared with the CPU. No dense FP16 Tensor Core figure is stated (the GPU's is given
    # as 170 sparse INT8 TOPS), so FP16 is left out. PyTorch names the GPU "Orin": pass the module's name
    # (/proc/device-tree/model, "NVIDIA Jetson AGX Orin Developer Kit").
    "AGX Orin": _peaks(5.3, None, 204.8, "NVIDIA Jetson AGX Orin technical brief and data sheet (64GB)"),
}


def _words(name: str) -> set[str]:
    """Lower-case words of a device name; '-' and '_' separate words and SXM4 / SXM5 read as SXM."""
    return {re.sub(r"^sxm\d$", "sxm", w) for w in re.split(r"[\s\-_]+", name.lower()) if w}


def gpu_peaks(name: str) -> dict | None:
    """The stated peaks of the GPU called ``name`` (as ``torch.cuda.get_device_name`` or nvidia-smi spell it).

    The ``GPU_PEAKS`` key whose words all appear in ``name`` wins, the one with the most words when several
    do (``NVIDIA L40S`` is the L40S, not the L40; ``NVIDIA A100-SXM4-80GB`` is the 80 GB SXM part).

    Returns:
        ``{"name", "fp32_tflops", "fp16_tflops", "bandwidth_gbs", "source"}`` (a copy), or None for a GPU
        not recorded here.
    """
    words = _words(name)
    matches = [key for key in GPU_PEAKS if _words(key) <= words]
    if not matches:
        return None
    key = max(matches, key=lambda k: len(_words(k)))
    peaks = GPU_PEAKS[key]
    return None if peaks is None else {"name": key, **peaks}


def floor_ms(cost: dict, peaks: dict, precision: str) -> dict:
    """The least time (ms) one forward pass can take on a device: the roofline bound.

    Args:
        cost: from ``model_cost`` (``flops`` and ``min_bytes``), computed at ``precision``.
        peaks: from ``cpu_peaks``, ``gpu_peaks`` or by hand: ``{precision}_tflops`` and ``bandwidth_gbs``.
        precision: ``fp32`` or ``fp16``: picks the compute peak.

    Returns:
        ``{"precision", "compute_ms", "memory_ms", "floor_ms", "bound", "max_fps"}``: ``compute_ms`` is
        ``flops / peak``, ``memory_ms`` is ``min_bytes / bandwidth``, ``floor_ms`` the larger, ``bound``
        ``"compute"`` or ``"memory"`` (whichever is larger), ``max_fps`` ``1000 / floor_ms``.

    Raises:
        ValueError: an unknown precision, a cost computed at another precision, or no peak for it.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision {precision!r}: choose from {', '.join(PRECISIONS)}")
    if cost.get("precision", precision) != precision:
        raise ValueError(f"the cost counts {cost['precision']} bytes; call model_cost(..., precision={precision!r})")
    tflops, bandwidth = peaks.get(f"{precision}_tflops"), peaks.get("bandwidth_gbs")
    if not tflops or not bandwidth:
        raise ValueError(f"{peaks.get('name', 'these peaks')} state no {precision} compute peak or bandwidth")
    compute_ms = cost["flops"] / (tflops * 1e12) * 1e3
    memory_ms = cost["min_bytes"] / (bandwidth * 1e9) * 1e3
    floor = max(compute_ms, memory_ms)
    return {"precision": precision, "compute_ms": compute_ms, "memory_ms": memory_ms, "floor_ms": floor,
            "bound": "compute" if compute_ms >= memory_ms else "memory",
            "max_fps": 1e3 / floor if floor > 0 else math.inf}
