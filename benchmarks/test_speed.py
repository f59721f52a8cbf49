"""CPU latency of each model at each resolution on each backend, as a pytest-benchmark suite.

    pytest benchmarks --benchmark-only [--bench-models lowlight_edge,unet_edge] [--bench-resolutions 360p,720p]
    pytest benchmarks --benchmark-only --benchmark-autosave        # keep the run under .benchmarks/
    pytest benchmarks --benchmark-only --benchmark-compare         # and compare with the last one saved

Backends: PyTorch eager FP32 (the reference: the checkpoint as ``TorchRunner`` runs it, channels-last) and
ONNX Runtime CPU FP32 and FP16 (the exported files), each through ``runtime.load``, batch 1, on inputs from the
family's data generator. A backend this machine lacks is skipped with the reason. On a busy machine pass
``--bench-threads 1``: multi-threaded PyTorch slows down by orders of magnitude when its threads are preempted.
Results are grouped per model and resolution; ``extra_info`` records the backend, precision, resolution
and the model's multiply-accumulates (and, for FP32, the floor this CPU allows: ``benchmarks.floor``).
"""

from __future__ import annotations

import importlib.util
import itertools
import os

import numpy as np
import pytest

BACKENDS = {
    # label: (runtime backend, precision, what the runner loads)
    "torch-fp32": ("torch", "fp32", "checkpoint"),
    "ort-cpu-fp32": ("onnxruntime", "fp32", "onnx"),
    "ort-cpu-fp16": ("onnxruntime", "fp16", "onnx_fp16"),
}


def pytest_generate_tests(metafunc):
    if {"model_spec", "resolution", "backend"} <= set(metafunc.fixturenames):
        def listed(option: str) -> list[str]:
            return [item.strip() for item in metafunc.config.getoption(option).split(",") if item.strip()]

        cases = list(itertools.product(listed("--bench-models"), listed("--bench-resolutions"), BACKENDS))
        metafunc.parametrize(("model_spec", "resolution", "backend"), cases, ids=["-".join(c) for c in cases])


def _unavailable(backend: str) -> str | None:
    """Why ``backend`` cannot run on this machine, or None."""
    kind = BACKENDS[backend][0]
    if kind == "torch":
        if importlib.util.find_spec("torch") is None:
            return "PyTorch is not installed (pip install 'edgelight[train]')"
        return None
    if importlib.util.find_spec("onnxruntime") is None:
        return "onnxruntime is not installed (pip install 'edgelight[cpu]')"
    import onnxruntime

    if "CPUExecutionProvider" not in onnxruntime.get_available_providers():
        return f"this onnxruntime has no CPUExecutionProvider ({onnxruntime.get_available_providers()})"
    return None


@pytest.fixture(scope="session")
def feeds():
    """``feeds(prepared, height, width)``: realistic batch-1 inputs, generated once per model and size."""
    from export.inputs import sample_inputs

    done: dict[tuple, dict] = {}

    def get(model, height: int, width: int) -> dict[str, np.ndarray]:
        key = (model.name, str(model.checkpoint), height, width)
        if key not in done:
            done[key] = sample_inputs(model.meta, 1, height, width, seed=0)
        return done[key]

    return get


@pytest.fixture(scope="session")
def costs():
    """``costs(prepared, height, width, precision)``: ``benchmarks.floor.model_cost``, once per combination."""
    from benchmarks.floor import model_cost

    done: dict[tuple, dict] = {}

    def get(model, height: int, width: int, precision: str) -> dict:
        key = (model.name, str(model.checkpoint), height, width, precision)
        if key not in done:
            done[key] = model_cost(model.meta, height, width, precision=precision)
        return done[key]

    return get


@pytest.fixture(scope="session")
def cpu_peaks(bench_threads):
    """This machine's measured bandwidth and FP32 compute (``benchmarks.floor.cpu_peaks``) at the suite's threads."""
    import torch

    from benchmarks.floor import cpu_peaks

    if bench_threads:
        torch.set_num_threads(bench_threads)
    return cpu_peaks()


def test_speed(benchmark, request, model_spec, resolution, backend, prepared, feeds, costs, bench_threads):
    """One forward pass at batch 1, timed by pytest-benchmark, after a check of the outputs."""
    from benchmarks.models import parse_resolution
    from runtime import load

    reason = _unavailable(backend)
    if reason:
        pytest.skip(f"{backend}: {reason}")
    kind, precision, artefact = BACKENDS[backend]
    model = prepared(model_spec)
    height, width = parse_resolution(resolution)
    inputs = feeds(model, height, width)
    cost = costs(model, height, width, precision)

    options = {"device": "cpu", "providers": "cpu", "threads": bench_threads}
    with load(getattr(model, artefact), kind, **options) as runner:
        for _ in range(2):  # warm-up: allocations, thread pools, first-run graph work
            outputs = runner.infer(inputs)
        for spec in model.contract["outputs"]:
            out = outputs[spec["name"]]
            assert out.shape == (1, spec["channels"], height, width), f"{spec['name']}: shape {out.shape}"
            assert np.isfinite(out).all(), f"{spec['name']}: non-finite values from {backend}"

        benchmark.group = f"{model.name} {resolution}"
        benchmark.extra_info.update(
            model=model.name, backend=f"{kind}-cpu" if kind == "onnxruntime" else kind, precision=precision,
            resolution=resolution, height=height, width=width, batch=1, threads=bench_threads,
            macs=cost["macs"], flops=cost["flops"], parameters=cost["parameters"], min_bytes=cost["min_bytes"],
            load_average=os.getloadavg()[0])  # other work on the machine slows multi-threaded runs
        if precision == "fp32" and not benchmark.disabled:
            from benchmarks.floor import floor_ms

            floor = floor_ms(cost, request.getfixturevalue("cpu_peaks"), precision)
            benchmark.extra_info.update(cpu_floor_ms=floor["floor_ms"], cpu_floor_bound=floor["bound"])
        benchmark(runner.infer, inputs)
