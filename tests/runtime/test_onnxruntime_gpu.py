"""The ONNX Runtime runner's GPU side, checked on the CPU: the options a session on the TensorRT provider is created
with (a fake onnxruntime-gpu that lists the GPU providers, records what each session gets and computes on the CPU),
and ``enqueue`` on ``SimCuda`` device buffers against ``infer``."""

from __future__ import annotations

import hashlib
import shutil

import numpy as np
import pytest

ort = pytest.importorskip("onnxruntime")

import runtime.cuda  # noqa: E402
from runtime import load  # noqa: E402
from runtime.core.errors import UserError  # noqa: E402
from runtime.core.sidecar import read_sidecar  # noqa: E402
from runtime.runners.onnxruntime import OnnxRuntimeRunner  # noqa: E402

GPU_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider")
PROFILE_KEYS = ("trt_profile_min_shapes", "trt_profile_opt_shapes", "trt_profile_max_shapes")
FRAME = np.random.default_rng(0).random((1, 3, 48, 64), dtype=np.float32)


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    """An empty cache folder (``~/.cache``)."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture
def gpu_ort(monkeypatch):
    """ONNX Runtime as onnxruntime-gpu: the TensorRT and CUDA providers listed, every session recorded (``.path``,
    ``.providers``: [(name, options)]) and computing on the CPU."""
    real, listed = ort.InferenceSession, ort.get_available_providers()
    made = []

    class Session:
        def __init__(self, path, options=None, providers=None, **kwargs):
            self.path = str(path)
            self.providers = [p if isinstance(p, tuple) else (p, {}) for p in providers]
            self.real = real(path, options, providers=["CPUExecutionProvider"])
            made.append(self)

        def get_providers(self):
            return [name for name, _ in self.providers]

        def __getattr__(self, name):
            return getattr(self.__dict__["real"], name)

    monkeypatch.setattr(ort, "get_available_providers", lambda: [*GPU_PROVIDERS, *listed])
    monkeypatch.setattr(ort, "InferenceSession", Session)
    return made


def _tensorrt_options(session) -> dict:
    name, options = session.providers[0]
    assert name == "TensorrtExecutionProvider"
    return options


def _model(path, scale: float = 1.0, light: bool = False):
    """An ONNX file: ``out = image * scale`` (+ the mean of ``light``, a N x 27 input, when ``light``)."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    image = helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, "H", "W"])
    out = helper.make_tensor_value_info("out", TensorProto.FLOAT, ["N", 3, "H", "W"])
    weights = [numpy_helper.from_array(np.full((1, 3, 1, 1), scale, np.float32), "w")]
    nodes = [helper.make_node("Mul", ["image", "w"], ["scaled" if light else "out"])]
    inputs = [image]
    if light:
        inputs.append(helper.make_tensor_value_info("light", TensorProto.FLOAT, ["N", 27]))
        weights += [numpy_helper.from_array(np.array([1], np.int64), "axes"),
                    numpy_helper.from_array(np.array([-1, 1, 1, 1], np.int64), "shape")]
        nodes += [helper.make_node("ReduceMean", ["light", "axes"], ["mean"], keepdims=1),
                  helper.make_node("Reshape", ["mean", "shape"], ["offset"]),
                  helper.make_node("Add", ["scaled", "offset"], ["out"])]
    graph = helper.make_graph(nodes, "tiny", inputs, [out], weights)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=8), str(path))
    return path


def _sidecar(profile: dict) -> dict:
    return {"format": "edgelight-sidecar/1", "kind": "onnx", "artefact": "model.onnx", "name": "tiny",
            "family": "lowlight", "preset": "test", "precision": "fp32", "io_precision": "fp32",
            "contract": {"inputs": [{"name": n} for n in profile], "outputs": [{"name": "out", "channels": 3}]},
            "profile": profile, "source": {}, "sha256": "0" * 64, "size_bytes": 1, "config": {}, "opset": 18,
            "dynamic": {}, "parity": {"passed": True}, "created": "", "versions": {}}


IMAGE = {"min": [1, 3, 16, 16], "opt": [1, 3, 64, 64], "max": [2, 3, 256, 256]}
LIGHT = {"min": [1, 27], "opt": [1, 27], "max": [2, 27]}


def _activate(path, sidecar: dict, **options) -> OnnxRuntimeRunner:
    runner = OnnxRuntimeRunner(path, sidecar, **options)
    runner.activate()
    return runner


# -- the TensorRT provider's engine cache -------------------------------------------------------------------------


def test_each_onnx_file_gets_its_own_tensorrt_engine_cache(gpu_ort, tmp_path, cache):
    first = _model(tmp_path / "run1" / "model.onnx", scale=1.0)
    retrained = _model(tmp_path / "run2" / "model.onnx", scale=2.0)  # the same graph and names, other weights
    copied = tmp_path / "elsewhere" / "model.onnx"
    copied.parent.mkdir()
    shutil.copy(first, copied)
    sidecar = _sidecar({"image": IMAGE})
    for path in (first, retrained, copied):
        _activate(path, sidecar)
    a, b, c = (_tensorrt_options(session) for session in gpu_ort)

    cache = cache / "edgelight" / "ort-tensorrt"
    for options, path in ((a, first), (b, retrained)):
        digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
        assert options["trt_engine_cache_enable"] is True
        assert options["trt_engine_cache_path"] == str(cache / digest)
        assert digest in options["trt_engine_cache_prefix"]
        assert (cache / digest).is_dir()  # ONNX Runtime makes only the last folder of the path
    assert a["trt_engine_cache_path"] != b["trt_engine_cache_path"]
    assert a["trt_engine_cache_prefix"] != b["trt_engine_cache_prefix"]
    keys = ("trt_engine_cache_path", "trt_engine_cache_prefix")
    assert [c[k] for k in keys] == [a[k] for k in keys]  # the same bytes elsewhere find the same engines
    assert a["trt_timing_cache_path"] == b["trt_timing_cache_path"] == str(cache)  # the timing cache is shared
    assert gpu_ort[0].providers[1] == ("CUDAExecutionProvider", {"device_id": 0})


# -- the TensorRT provider's optimisation profile -----------------------------------------------------------------


def test_the_sidecar_profile_is_the_tensorrt_optimisation_profile(gpu_ort, tmp_path):
    path = _model(tmp_path / "model.onnx", light=True)
    _activate(path, _sidecar({"image": IMAGE, "light": LIGHT}), device="cuda:1")
    options = _tensorrt_options(gpu_ort[0])
    assert options["device_id"] == 1
    assert options["trt_profile_min_shapes"] == "image:1x3x16x16,light:1x27"
    assert options["trt_profile_opt_shapes"] == "image:1x3x64x64,light:1x27"
    assert options["trt_profile_max_shapes"] == "image:2x3x256x256,light:2x27"


# -- the overlapped GPU executor's protocol -----------------------------------------------------------------------


def test_executor_cuda_follows_the_session_s_provider(gpu_ort, tmp_path, monkeypatch):
    path = _model(tmp_path / "model.onnx")
    sidecar = _sidecar({"image": IMAGE})
    assert OnnxRuntimeRunner(path, sidecar, cuda_lib="sim").executor_cuda() is None  # not active

    with monkeypatch.context() as patch:
        patch.setattr(runtime.cuda, "unavailable_reason", lambda lib: f"{lib} is not installed")
        with pytest.raises(UserError, match="no CUDA Python library"):
            _activate(path, sidecar).executor_cuda()

    monkeypatch.setattr(runtime.cuda, "get_cuda", lambda lib="auto", device=0: ("cuda layer", lib, device))
    on_gpu = _activate(path, sidecar, device="cuda:1", cuda_lib="cuda-python")
    assert on_gpu.providers[0] == "TensorrtExecutionProvider"
    assert on_gpu.executor_cuda() == ("cuda layer", "cuda-python", 1)


def test_executor_cuda_on_the_cpu_provider_is_the_simulation_or_none(exported_lowlight):
    path = exported_lowlight / "export" / "model.onnx"
    with OnnxRuntimeRunner(path, device="cpu", threads=1) as plain:
        assert plain.executor_cuda() is None
        with pytest.raises(RuntimeError, match="host arrays"):
            plain.enqueue({"image": FRAME.shape}, {"image": 1, "enhanced": 2}, None)
    with load(path, backend="onnxruntime", device="cpu", threads=1, cuda_lib="sim") as dry:
        assert dry.executor_cuda() is runtime.cuda.get_cuda("sim")


def _fp16_io(exported_lowlight, tmp_path):
    """model.fp16.onnx with float16 inputs and outputs, and its sidecar."""
    onnx = pytest.importorskip("onnx")
    float16 = pytest.importorskip("onnxconverter_common.float16")
    source = exported_lowlight / "export" / "model.onnx"
    model = float16.convert_float_to_float16(onnx.load(str(source)), keep_io_types=False)
    path = tmp_path / "model.fp16io.onnx"
    onnx.save(model, str(path))
    return path, read_sidecar(source)


@pytest.mark.parametrize("file", ["model.onnx", "model.fp16.onnx", "fp16 I/O"])
def test_enqueue_on_device_buffers_computes_what_infer_does(exported_lowlight, tmp_path, file):
    if file == "fp16 I/O":
        path, sidecar = _fp16_io(exported_lowlight, tmp_path)
    else:
        path, sidecar = exported_lowlight / "export" / file, None
    with OnnxRuntimeRunner(path, sidecar, device="cpu", threads=1, cuda_lib="sim") as runner:
        (image,), (enhanced,) = runner.input_metadata(), runner.output_metadata()
        assert (image.name, enhanced.name) == ("image", "enhanced")
        assert image.dtype == enhanced.dtype == (np.float16 if file == "fp16 I/O" else np.float32)
        expected = runner.infer({"image": FRAME})["enhanced"]

        cuda = runner.executor_cuda()
        stream = cuda.stream()
        frame = FRAME.astype(image.dtype)
        source = cuda.device_buffer(frame.nbytes)
        target = cuda.device_buffer(frame.size * enhanced.dtype.itemsize)
        cuda.htod_async(source, frame, stream)
        shapes = runner.enqueue({"image": frame.shape}, {"image": source.ptr, "enhanced": target.ptr}, stream)
        assert shapes == {"enhanced": (1, 3, 48, 64)}
        out = np.full(shapes["enhanced"], np.nan, enhanced.dtype)
        cuda.dtoh_async(out, target, stream)
        assert np.isnan(out).all()  # queued: the simulated GPU runs it when the host waits
        stream.synchronize()
    assert out.dtype == expected.dtype
    np.testing.assert_array_equal(out, expected)


def test_enqueue_names_a_missing_shape_or_address(exported_lowlight):
    with OnnxRuntimeRunner(exported_lowlight / "export" / "model.onnx", device="cpu", threads=1,
                           cuda_lib="sim") as runner:
        stream = runner.executor_cuda().stream()
        with pytest.raises(ValueError, match=r"device address of \['enhanced'\]"):
            runner.enqueue({"image": FRAME.shape}, {"image": 1}, stream)
        with pytest.raises(ValueError, match=r"shape of \['image'\]"):
            runner.enqueue({}, {"image": 1, "enhanced": 2}, stream)
        assert not stream.ops  # nothing was queued


def test_the_simulated_cuda_layer_is_refused_for_a_session_on_a_gpu(gpu_ort, tmp_path):
    """Host-memory "device" buffers bound to a CUDA session would fail inside ONNX Runtime: one clear line first."""
    from runtime.core.errors import ModelError

    runner = _activate(_model(tmp_path / "model.onnx"), _sidecar({"image": IMAGE}), cuda_lib="sim")
    with pytest.raises(ModelError, match="cuda_lib sim simulates the GPU path on the CPU: use it with device cpu"):
        runner.executor_cuda()
