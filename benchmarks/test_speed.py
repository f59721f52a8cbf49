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

import itertools
import os

import numpy as np
import pytest

BACKENDS = {"torch-fp32": "torch", "ort-cpu-fp32": "ort-cpu", "ort-cpu-fp16": "ort-cpu-fp16"}
"""Test id (as in earlier saved runs) -> the ``benchmarks.backends`` row it times, on the CPU."""


def _row(backend: str):
    from benchmarks.backends import BACKENDS as ROWS

    return next(row for row in ROWS if row.name == BACKENDS[backend])


def pytest_generate_tests(metafunc):
    if {"model_spec", "resolution", "backend"} <= set(metafunc.fixturenames):
        def listed(option: str) -> list[str]:
            return [item.strip() for item in metafunc.config.getoption(option).split(",") if item.strip()]

        cases = list(itertools.product(listed("--bench-models"), listed("--bench-resolutions"), BACKENDS))
        metafunc.parametrize(("model_spec", "resolution", "backend"), cases, ids=["-".join(c) for c in cases])


@pytest.fixture(scope="session")
def feeds():
    """``feeds(prepared, height, width)``: realistic batch-1 inputs, generated once per model and size."""
    from train.families import sample_inputs

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

    row = _row(backend)
    reason = row.unavailable()
    if reason:
        pytest.skip(f"{backend}: {reason}")
    kind, precision = row.backend, row.precision
    model = prepared(model_spec)
    height, width = parse_resolution(resolution)
    inputs = feeds(model, height, width)
    cost = costs(model, height, width, precision)

    with load(getattr(model, row.artefact), kind, **{**row.options, "device": "cpu", "threads": bench_threads}) as runner:
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
