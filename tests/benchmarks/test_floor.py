"""benchmarks.floor (work, measured CPU peaks, stated GPU peaks, the roofline floor) and the suite's smoke run."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from benchmarks.floor import GPU_PEAKS, cpu_peaks, floor_ms, gpu_peaks, model_cost
from benchmarks.model_cost import example_inputs
from train.models import create_model

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name", ["lowlight_edgetest", "unet_test"])
def test_macs_are_positive_and_grow_with_the_pixel_count(name):
    small, large = model_cost(name, 64, 96), model_cost(name, 128, 192)
    assert small["macs"] > 0 and small["flops"] == 2 * small["macs"]
    assert 3.6 < large["macs"] / small["macs"] < 4.4  # both sides doubled: four times the pixels
    assert large["weight_bytes"] == small["weight_bytes"]  # the weights do not depend on the frame size


@pytest.mark.parametrize("name", ["lowlight_edgetest", "unet_test", "ibr_test", "sfsnet_test"])
def test_min_bytes_are_the_weights_plus_the_real_inputs_and_outputs(name):
    torch.manual_seed(0)
    model = create_model(name).eval()
    inputs = example_inputs(model, 48, 80)
    with torch.no_grad():
        outputs = model(*inputs)
    outputs = outputs if isinstance(outputs, (tuple, list)) else (outputs,)
    io_values = sum(t.numel() for t in (*inputs, *outputs))
    parameters = sum(p.numel() for p in model.parameters())

    fp32 = model_cost(model, 48, 80)
    fp16 = model_cost(model, 48, 80, precision="fp16")
    assert (fp32["parameters"], fp32["weight_bytes"], fp32["io_bytes"]) == (parameters, 4 * parameters, 4 * io_values)
    for cost in (fp32, fp16):
        assert cost["min_bytes"] == cost["weight_bytes"] + cost["io_bytes"]
    assert fp16["weight_bytes"] * 2 == fp32["weight_bytes"] and fp16["io_bytes"] * 2 == fp32["io_bytes"]
    assert fp16["macs"] == fp32["macs"]
    # Metadata as a checkpoint or sidecar carries it builds the same model.
    assert model_cost({"name": name, "config": model.config_dict()}, 48, 80)["macs"] == fp32["macs"]


def test_model_cost_refuses_an_unknown_precision():
    with pytest.raises(ValueError, match="int8"):
        model_cost("unet_test", 32, 32, precision="int8")


def test_floor_is_the_larger_of_the_compute_and_memory_bounds():
    cost = {"flops": 2e12, "min_bytes": 1e9}  # 2 TFLOP, 1 GB
    slow_math = floor_ms(cost, {"fp32_tflops": 1.0, "bandwidth_gbs": 100.0}, "fp32")
    assert slow_math["bound"] == "compute"
    assert slow_math["compute_ms"] == pytest.approx(2000.0) and slow_math["memory_ms"] == pytest.approx(10.0)
    assert slow_math["floor_ms"] == pytest.approx(2000.0) and slow_math["max_fps"] == pytest.approx(0.5)

    slow_memory = floor_ms(cost, {"fp32_tflops": 1.0, "bandwidth_gbs": 0.1}, "fp32")
    assert slow_memory["bound"] == "memory" and slow_memory["floor_ms"] == pytest.approx(10000.0)

    # The precision picks the compute peak.
    fp16 = floor_ms(cost, {"fp32_tflops": 1.0, "fp16_tflops": 8.0, "bandwidth_gbs": 100.0}, "fp16")
    assert fp16["compute_ms"] == pytest.approx(250.0) and fp16["bound"] == "compute"


def test_floor_refuses_mismatched_or_missing_figures():
    cost = model_cost("unet_test", 32, 32)  # fp32 bytes
    with pytest.raises(ValueError, match="precision='fp16'"):
        floor_ms(cost, {"fp32_tflops": 1.0, "fp16_tflops": 2.0, "bandwidth_gbs": 1.0}, "fp16")
    with pytest.raises(ValueError, match="fp32"):
        floor_ms(cost, {"bandwidth_gbs": 1.0}, "fp32")


def test_cpu_peaks_are_measured_sane_and_cached():
    start = time.perf_counter()
    first = cpu_peaks(0.2)
    measured_s = time.perf_counter() - start
    assert 0.5 <= first["bandwidth_gbs"] <= 2000
    assert 0.5 <= first["fp32_gflops"] <= 100_000
    assert first["fp32_tflops"] == pytest.approx(first["fp32_gflops"] / 1e3)
    assert first["threads"] >= 1 and first["name"]

    start = time.perf_counter()
    again = cpu_peaks(0.2)
    assert again == first  # the same figures: not measured again
    assert time.perf_counter() - start < measured_s / 10

    cost = model_cost("unet_test", 64, 96)
    assert floor_ms(cost, first, "fp32")["floor_ms"] > 0


def test_gpu_peaks_find_the_device_by_its_name():
    h100 = gpu_peaks("NVIDIA H100 80GB HBM3")  # torch.cuda.get_device_name on an H100 SXM
    assert h100 is not None and h100["name"] == "H100 HBM3" and "H100" in h100["source"]
    assert {k: h100[k] for k in GPU_PEAKS["H100 SXM"]} == GPU_PEAKS["H100 SXM"]
    assert gpu_peaks("NVIDIA H100 PCIe")["bandwidth_gbs"] < h100["bandwidth_gbs"]
    assert gpu_peaks("NVIDIA L40S")["name"] == "L40S" and gpu_peaks("NVIDIA L40")["name"] == "L40"
    assert gpu_peaks("NVIDIA A100-SXM4-80GB")["name"] == "A100 SXM 80GB"
    assert gpu_peaks("NVIDIA A100-PCIE-40GB")["name"] == "A100 40GB"
    for unknown in ("NVIDIA A10G", "NVIDIA H200 NVL", "NVIDIA GeForce GTX 1080", "Radeon RX 7900 XTX", ""):
        assert gpu_peaks(unknown) is None, unknown


def test_every_stated_gpu_figure_is_complete_and_sourced():
    for key, peaks in GPU_PEAKS.items():
        if peaks is None:
            continue
        assert peaks["fp32_tflops"] > 0 and peaks["bandwidth_gbs"] > 0, key
        assert peaks["fp16_tflops"] is None or peaks["fp16_tflops"] > peaks["fp32_tflops"], key
        assert "NVIDIA" in peaks["source"], key
        assert gpu_peaks(f"NVIDIA {key}") is not None, key


def test_the_benchmark_suite_collects_and_runs_on_a_tiny_model(tmp_path):
    pytest.importorskip("pytest_benchmark")
    command = [sys.executable, "-m", "pytest", "benchmarks", "--benchmark-disable", "-q", "-p", "no:cacheprovider",
               "--bench-models", "lowlight_edgetest", "--bench-resolutions", "64x96", "--bench-cache", str(tmp_path)]
    run = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    expected = 3 if importlib.util.find_spec("onnxruntime") else 1  # PyTorch, and ONNX Runtime FP32 / FP16
    assert re.search(rf"\b{expected} passed\b", run.stdout), run.stdout[-3000:]
    assert "failed" not in run.stdout and "error" not in run.stdout.lower()
