"""The CUDA layer: library choice and its errors, lean imports, the kernels' source and NumPy definitions, and
(on a GPU, with each library) buffers, events and kernels.

``SimCuda`` (in tests/runtime/fakes.py) is a ``Cuda`` that runs on the CPU: queued work runs only when the
host waits for it, in a random interleaving of the streams that respects every event wait, so code that
forgets to order two streams (or reuses a buffer too early) computes wrong results here, as it would on a
GPU under load.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import numpy as np
import pytest

from runtime.cuda import (LIBS, available_libs, frame_to_tensor_reference, get_cuda, tensor_to_frame_reference,
                          unavailable_reason)
from runtime.cuda.base import Cuda
from runtime.cuda.kernels import KERNELS
from runtime.core.errors import UserError

from .fakes import SimCuda


def test_sim_cuda_runs_streams_out_of_order_unless_events_order_them():
    cuda = SimCuda(seed=1)
    first, second = cuda.stream(), cuda.stream()
    log: list[str] = []
    for i in range(20):
        cuda._push(first, lambda i=i: log.append(f"a{i}"))
    done = cuda.event()
    done.record(first)
    second.wait(done)
    cuda._push(second, lambda: log.append("b"))
    assert log == [] and not cuda.streams[1].ops[0].ready()
    second.synchronize()
    assert log[-1] == "b" and log[:-1] == [f"a{i}" for i in range(20)]


def test_copies_and_kernels_check_sizes():
    cuda = SimCuda()
    stream, device = cuda.stream(), cuda.device_buffer(12)
    with pytest.raises(ValueError, match="cannot copy 16 bytes: the device buffer holds 12"):
        cuda.htod_async(device, np.zeros(16, np.uint8), stream)
    with pytest.raises(ValueError, match="C-contiguous"):
        cuda.htod_async(device, np.zeros((4, 4), np.uint8)[:, ::2], stream)
    with pytest.raises(ValueError, match="a 2x3 frame needs 72"):
        cuda.frame_to_tensor(cuda.device_buffer(18), device, 2, 3, stream)
    with pytest.raises(ValueError, match="float32 or float16"):
        cuda.tensor_to_frame(device, device, 1, 1, stream, dtype="float64")


def test_sim_cuda_copies_and_kernels_round_trip():
    cuda, rng = SimCuda(), np.random.default_rng(0)
    frame = rng.integers(0, 256, (5, 7, 3), dtype=np.uint8)
    host = cuda.host_buffer(frame.shape)
    host.array[...] = frame
    stream = cuda.stream()
    raw, tensor, back = cuda.device_buffer(frame.nbytes), cuda.device_buffer(frame.size * 2), cuda.device_buffer(105)
    cuda.htod_async(raw, host, stream)
    cuda.frame_to_tensor(raw, tensor, 5, 7, stream, dtype="float16")
    cuda.tensor_to_frame(tensor, back, 5, 7, stream, dtype="float16")
    out = np.zeros_like(frame)
    cuda.dtoh_async(out, back, stream)
    stream.synchronize()
    np.testing.assert_array_equal(out, frame)


# --- choosing a library -----------------------------------------------------------------------------------------


def _importable(module: str) -> bool:
    try:
        __import__(module)
    except ImportError:
        return False
    return True


def test_available_libs_are_those_that_import_here():
    expected = [lib for lib, module in zip(LIBS, ("cuda.bindings.runtime", "pycuda.driver")) if _importable(module)]
    assert available_libs() == expected
    for lib in LIBS:
        assert (unavailable_reason(lib) is None) == (lib in expected)


@pytest.fixture
def no_cuda_libraries(monkeypatch):
    """Make cuda-python and pycuda fail to import, as on a machine without them."""
    for module in ("cuda", "cuda.bindings", "cuda.bindings.runtime", "pycuda", "pycuda.driver"):
        monkeypatch.setitem(sys.modules, module, None)
    monkeypatch.setattr("runtime.cuda._INSTANCES", {})


def test_get_cuda_says_what_to_install(no_cuda_libraries):
    assert available_libs() == []
    with pytest.raises(UserError, match=r"no CUDA Python library is available: pip install cuda-python \(or pip "
                                        r"install pycuda\)") as info:
        get_cuda()
    assert "\n" not in str(info.value)
    with pytest.raises(UserError, match=r"pycuda is unavailable: pycuda is not installed \(pip install pycuda\); "
                                        "or use cuda-python"):
        get_cuda("pycuda")
    with pytest.raises(UserError, match=r"cuda-python is not installed \(pip install cuda-python\); or use pycuda"):
        get_cuda("cuda-python")


def test_get_cuda_rejects_unknown_libraries():
    with pytest.raises(UserError, match="unknown CUDA library 'cupy'; choose auto, cuda-python or pycuda"):
        get_cuda("cupy")


def test_importing_the_cuda_layer_and_tensorrt_runner_loads_no_heavy_library():
    code = ("import sys, runtime, runtime.cuda, runtime.cuda.base, runtime.cuda.pycuda_impl, "
            "runtime.cuda.cudapython_impl, runtime.cuda.sim, runtime.cuda_executor, runtime.runners.tensorrt, "
            "runtime.runners.torch, runtime.runners.onnxruntime; "
            "heavy = sorted(m for m in ('torch', 'tensorrt', 'pycuda', 'cuda', 'onnxruntime') if m in sys.modules); "
            "assert not heavy, heavy")
    subprocess.run([sys.executable, "-c", code], check=True)


# --- the kernels' source and their NumPy definitions -------------------------------------------------------------


def test_kernel_source_compiles_with_nvrtc_to_cubin_and_ptx():
    pytest.importorskip("cuda.bindings.nvrtc", reason="cuda-python is not installed (pip install cuda-python)")
    from runtime.cuda.base import CudaError
    from runtime.cuda.cudapython_impl import compile_kernels

    image, kind = compile_kernels(80)  # NVRTC runs without a GPU
    assert kind == "cubin" and image[:4] == b"\x7fELF"
    ptx, kind = compile_kernels(999)  # newer than NVRTC knows: PTX for its newest architecture
    assert kind == "ptx" and ptx.endswith(b"\x00")
    for name in KERNELS.values():
        assert f".entry {name}(".encode() in ptx
    with pytest.raises(CudaError, match="cannot compile for compute capability 1.0"):
        compile_kernels(10)


def test_reference_conversions_are_the_host_conversions_of_runtime_tasks():
    from runtime.tasks import frame_to_tensor, tensor_to_frame

    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (9, 14, 3), dtype=np.uint8)
    np.testing.assert_array_equal(frame_to_tensor_reference(frame), frame_to_tensor(frame))
    tensor = rng.uniform(-0.2, 1.2, (1, 3, 9, 14)).astype(np.float32)
    tensor[0, 0, 0, :3] = [0.5 / 255, 1.5 / 255, 254.5 / 255]  # halfway cases round up
    np.testing.assert_array_equal(tensor_to_frame_reference(tensor), tensor_to_frame(tensor))


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_reference_frame_tensor_frame_round_trip_is_exact(dtype):
    frame = np.random.default_rng(1).integers(0, 256, (6, 11, 3), dtype=np.uint8)
    tensor = frame_to_tensor_reference(frame, dtype)
    assert tensor.dtype == np.dtype(dtype) and tensor.shape == (1, 3, 6, 11)
    red = frame[..., 2].astype(np.float32) * np.float32(1 / 255)  # RGB planes from BGR, as runtime.tasks scales
    np.testing.assert_array_equal(tensor[0, 0], red.astype(dtype))
    np.testing.assert_array_equal(tensor_to_frame_reference(tensor), frame)


def test_reference_srgb_encoding_matches_the_training_code():
    torch = pytest.importorskip("torch")
    from train.relight.model import linear_to_srgb

    linear = np.random.default_rng(2).uniform(-0.1, 1.1, (1, 3, 8, 16)).astype(np.float32)
    linear[0, 0, 0, :4] = [np.nan, np.inf, -np.inf, 0.002]
    got = tensor_to_frame_reference(linear, srgb=True)
    cleaned = np.nan_to_num(linear, nan=0.0, posinf=1.0, neginf=0.0)
    expected = tensor_to_frame_reference(linear_to_srgb(torch.from_numpy(cleaned)).numpy())
    assert np.abs(got.astype(int) - expected.astype(int)).max() <= 1


# --- on a GPU, with each library --------------------------------------------------------------------------------


@pytest.fixture(params=LIBS)
def gpu(request) -> Iterator[Cuda]:
    if reason := unavailable_reason(request.param):
        pytest.skip(reason)
    yield get_cuda(request.param)


@pytest.mark.needs_cuda
def test_buffers_round_trip_through_the_gpu(gpu):
    data = np.random.default_rng(0).integers(0, 2**16, (3, 1000), dtype=np.uint16)
    host = gpu.host_buffer(data.shape, data.dtype)
    assert host.array.shape == data.shape and host.array.dtype == data.dtype and host.ptr != 0
    host.array[...] = data
    first, second = gpu.device_buffer(data.nbytes), gpu.device_buffer(data.nbytes)
    stream = gpu.stream()
    gpu.htod_async(first, host, stream)
    gpu.dtod_async(second, first, stream)
    out = np.zeros_like(data)
    gpu.dtoh_async(out, second, stream, nbytes=data.nbytes // 2)  # half of it
    stream.synchronize()
    np.testing.assert_array_equal(out.reshape(-1)[:data.size // 2], data.reshape(-1)[:data.size // 2])
    assert not out.reshape(-1)[data.size // 2:].any()
    for buffer in (host, first, second):
        buffer.free()
        buffer.free()  # idempotent
    stream.free()


@pytest.mark.needs_cuda
def test_events_order_streams_and_time_a_copy(gpu):
    size = 64 << 20
    host, device, back = gpu.host_buffer(size), gpu.device_buffer(size), gpu.host_buffer(size)
    host.array[...] = 7
    up, down = gpu.stream(), gpu.stream()
    start, end = gpu.event(), gpu.event()
    start.record(up)
    gpu.htod_async(device, host, up)
    end.record(up)
    down.wait(end)  # the download stream waits for the upload
    gpu.dtoh_async(back, device, down)
    down.synchronize()
    assert end.query() and (back.array == 7).all()
    assert 0 < end.elapsed_ms(start) < 10_000
    with pytest.raises(ValueError, match="timing=True"):
        end.elapsed_ms(gpu.event(timing=False))
    assert gpu.compute_capability().count(".") == 1 and gpu.device_name()


@pytest.mark.needs_cuda
@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_kernels_match_the_numpy_definitions(gpu, dtype):
    rng = np.random.default_rng(3)
    height, width = 37, 53  # not multiples of the block size
    frame = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    itemsize = np.dtype(dtype).itemsize
    stream = gpu.stream()
    raw, tensor, back = (gpu.device_buffer(frame.nbytes), gpu.device_buffer(frame.size * itemsize),
                         gpu.device_buffer(frame.nbytes))
    gpu.htod_async(raw, frame, stream)
    gpu.frame_to_tensor(raw, tensor, height, width, stream, dtype=dtype)
    gpu.tensor_to_frame(tensor, back, height, width, stream, dtype=dtype)
    planes, round_trip = np.zeros((1, 3, height, width), dtype), np.zeros_like(frame)
    gpu.dtoh_async(planes, tensor, stream)
    gpu.dtoh_async(round_trip, back, stream)
    stream.synchronize()
    np.testing.assert_array_equal(planes, frame_to_tensor_reference(frame, dtype))
    np.testing.assert_array_equal(round_trip, frame)

    values = rng.uniform(-0.3, 1.3, (1, 3, height, width)).astype(dtype)
    values[0, 1, 0, :3] = [np.nan, np.inf, -np.inf]
    for srgb in (False, True):
        gpu.htod_async(tensor, values, stream)
        gpu.tensor_to_frame(tensor, back, height, width, stream, dtype=dtype, srgb=srgb)
        gpu.dtoh_async(round_trip, back, stream)
        stream.synchronize()
        expected = tensor_to_frame_reference(values, srgb=srgb)
        difference = np.abs(round_trip.astype(int) - expected.astype(int))
        if srgb:  # powf on the GPU and in NumPy may differ in the last bit
            assert difference.max() <= 1 and (difference == 0).mean() > 0.99
        else:
            assert difference.max() == 0


# --- cuda-python, through a stand-in for cuda.bindings -------------------------------------------------------------


class _Status:
    def __init__(self, value: int, name: str = "") -> None:
        self.value, self.name = value, name or f"status {value}"


@pytest.fixture
def fake_bindings(monkeypatch):
    """A stand-in for the parts of ``cuda.bindings`` that ``CudaPython`` calls, which keeps the driver's rule that a
    thread has no current context until ``cudaSetDevice`` binds one (``cudaGetDevice`` answers 0 all the same)."""
    import threading
    import types

    bound = threading.local()
    ok = _Status(0)
    cudart, driver, nvrtc, utils = (types.ModuleType(f"cuda.bindings.{n}") for n in ("runtime", "driver", "nvrtc",
                                                                                      "utils"))
    cudart.cudaError_t, driver.CUresult, nvrtc.nvrtcResult = _Status, type("CUresult", (_Status,), {}), \
        type("nvrtcResult", (_Status,), {})
    cudart.cudaGetDeviceCount = lambda: (ok, 1)
    cudart.cudaGetDevice = lambda: (ok, 0)
    cudart.cudaFree = lambda ptr: (ok,)
    cudart.cudaGetErrorName = lambda err: (ok, err.name.encode())
    driver.cuGetErrorName = lambda err: (ok, err.name.encode())

    def set_device(device):
        bound.device = device
        return (ok,)

    def load(image):
        if getattr(bound, "device", None) is None:
            return (driver.CUresult(201, "CUDA_ERROR_INVALID_CONTEXT"), None)
        return (ok, "module")

    cudart.cudaSetDevice = set_device
    driver.cuModuleLoadData = load
    driver.cuModuleGetFunction = lambda module, name: (ok, name)
    utils.get_cuda_native_handle = lambda obj: obj.address
    package = types.ModuleType("cuda.bindings")
    package.runtime, package.driver, package.nvrtc, package.utils = cudart, driver, nvrtc, utils
    root = types.ModuleType("cuda")
    root.bindings = package
    for name, module in (("cuda", root), ("cuda.bindings", package), ("cuda.bindings.runtime", cudart),
                         ("cuda.bindings.driver", driver), ("cuda.bindings.nvrtc", nvrtc),
                         ("cuda.bindings.utils", utils)):
        monkeypatch.setitem(sys.modules, name, module)
    monkeypatch.setattr("runtime.cuda.cudapython_impl.compile_kernels", lambda arch: (b"\x7fELF", "cubin"))
    monkeypatch.setattr("runtime.cuda.cudapython_impl.CudaPython.compute_capability", lambda self: "9.0")
    return bound


def test_cuda_python_binds_the_device_in_a_new_thread(fake_bindings):
    """The kernels load in whichever thread first converts a frame: that thread needs the context bound."""
    import threading

    from runtime.cuda.cudapython_impl import CudaPython

    cuda = CudaPython(0)
    errors: list[BaseException] = []

    def convert() -> None:
        try:
            cuda.prepare_kernels()
        except BaseException as exc:  # noqa: BLE001  (reported below)
            errors.append(exc)

    worker = threading.Thread(target=convert)
    worker.start()
    worker.join()
    assert errors == [] and set(cuda._functions) == set(KERNELS.values())


def test_cuda_python_handles_come_from_get_cuda_native_handle(fake_bindings):
    """``int(cuda_obj)`` is deprecated in cuda-bindings 13: the stream handle TensorRT takes comes from the utility."""
    from runtime.cuda.cudapython_impl import _Stream

    class Raw:
        address = 0x7F00

        def __int__(self):
            raise DeprecationWarning("int(cuda_obj) is deprecated")

    assert _Stream(Raw()).handle == 0x7F00


def test_the_gpu_extra_installs_cuda_bindings_with_nvrtc():
    """``cuda.bindings`` exists from cuda-python 12.6.1; NVRTC (the kernels' compiler) comes with the [all] extra."""
    import re
    from pathlib import Path

    tomllib = pytest.importorskip("tomllib")

    gpu = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    (requirement,) = [r for r in gpu["gpu"] if r.startswith("cuda-python")]
    match = re.fullmatch(r"cuda-python\[all\]>=(\d+)\.(\d+)(?:\.(\d+))?", requirement)
    assert match, requirement
    assert tuple(int(v or 0) for v in match.groups()) >= (12, 8, 0)


@pytest.mark.needs_cuda
def test_kernels_run_from_a_thread_that_never_used_the_device(gpu):
    """A pipeline converts frames in whichever thread runs it; that thread must get the device's context. A CUDA
    layer of its own, so the kernels load in that thread (the shared one loaded them in earlier tests)."""
    import threading

    frame = np.random.default_rng(4).integers(0, 256, (21, 34, 3), dtype=np.uint8)
    result: dict[str, object] = {}
    fresh = type(gpu)(gpu.device)

    def convert() -> None:
        try:
            gpu = fresh
            stream = gpu.stream()
            raw, tensor = gpu.device_buffer(frame.nbytes), gpu.device_buffer(frame.size * 4)
            gpu.htod_async(raw, frame, stream)
            gpu.frame_to_tensor(raw, tensor, 21, 34, stream)
            planes = np.zeros((1, 3, 21, 34), np.float32)
            gpu.dtoh_async(planes, tensor, stream)
            stream.synchronize()
            result["planes"] = planes
        except BaseException as exc:  # noqa: BLE001  (asserted below)
            result["error"] = exc

    worker = threading.Thread(target=convert)
    worker.start()
    worker.join()
    assert "error" not in result, result.get("error")
    np.testing.assert_array_equal(result["planes"], frame_to_tensor_reference(frame))
