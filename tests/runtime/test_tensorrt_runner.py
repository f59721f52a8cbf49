"""The TensorRT runner and the overlapped GPU executor.

On the CPU they run against a fake ``tensorrt`` module (just the runtime API the runner uses, whose
names the static check in tests/export/test_tensorrt_api.py holds to the real stubs) and ``SimCuda``,
whose streams run lazily and out of order unless events order them (both in tests/runtime/fakes.py).
On a GPU with TensorRT they run real engines built from a small FP16 ONNX file.
"""

from __future__ import annotations

import logging

import numpy as np
import pytest

from runtime.cuda_executor import STAGES, CudaFrameExecutor
from runtime.core.errors import ModelError
from runtime.runners.tensorrt import TensorRTRunner, check_engine_compatibility, rebuild_command
from runtime.tasks import frame_to_tensor, tensor_to_frame

from .fakes import SimStream, make_sidecar, model, write_plan


# --- the version and GPU check ----------------------------------------------------------------------------------


def test_engine_built_here_is_compatible():
    check_engine_compatibility(make_sidecar(), "model.fp16.engine", "10.13.0.35", "8.9")


@pytest.mark.parametrize("version, capability", [("10.14.1.48", "8.9"), ("10.13.0.35", "9.0"), ("11.0.0.1", "12.0")])
def test_engine_from_another_tensorrt_or_gpu_is_refused_with_one_line_saying_how_to_rebuild(version, capability):
    with pytest.raises(ModelError) as info:
        check_engine_compatibility(make_sidecar(), "model.fp16.engine", version, capability)
    assert str(info.value) == (
        f"model.fp16.engine was built for TensorRT 10.13.0.35 on compute capability 8.9; this machine has TensorRT "
        f"{version} on {capability}: rebuild it here with python -m export runs/lowlight/best.ckpt --fp16 --fp16-io "
        "--engine")


@pytest.mark.parametrize("version, ok", [("10.13.0.35", True), ("10.14.1.48", True), ("10.12.0.36", False),
                                         ("11.0.0.1", False)])
def test_version_compatible_engines_load_in_later_versions_of_the_same_major(version, ok):
    sidecar = make_sidecar(version_compatible=True)
    if ok:
        check_engine_compatibility(sidecar, "m.engine", version, "8.9")
    else:
        with pytest.raises(ModelError, match="--version-compatible"):
            check_engine_compatibility(sidecar, "m.engine", version, "8.9")


@pytest.mark.parametrize("capability, ok", [("8.0", True), ("9.0", True), ("12.0", True), ("7.5", False)])
def test_hardware_compatible_engines_run_on_ampere_and_newer(capability, ok):
    sidecar = make_sidecar(capability="8.6", hardware_compatible=True)
    if ok:
        check_engine_compatibility(sidecar, "m.engine", "10.13.0.35", capability)
    else:
        with pytest.raises(ModelError, match="on compute capability 8.6; this machine has TensorRT 10.13.0.35 on 7.5"):
            check_engine_compatibility(sidecar, "m.engine", "10.13.0.35", capability)


def test_rebuild_command_quotes_paths_and_repeats_the_build_options():
    sidecar = make_sidecar(io="fp32", version_compatible=True)
    sidecar["source"]["checkpoint"] = "my runs/best.ckpt"
    assert rebuild_command(sidecar) == "python -m export 'my runs/best.ckpt' --fp16 --engine --version-compatible"


# --- opening an engine ------------------------------------------------------------------------------------------


def test_missing_engine_is_a_model_error(tmp_path):
    with pytest.raises(ModelError, match="no TensorRT engine at .*nothing.engine; build one with python -m export"):
        TensorRTRunner(tmp_path / "nothing.engine")


def test_engine_without_sidecar_is_a_model_error(tmp_path):
    (tmp_path / "model.fp16.engine").write_bytes(b"plan")
    with pytest.raises(ModelError, match="has no sidecar model.fp16.engine.json; export it with python -m export"):
        TensorRTRunner(tmp_path / "model.fp16.engine")
    with pytest.raises(ModelError, match="does not describe a TensorRT engine"):
        TensorRTRunner(tmp_path / "model.fp16.engine", {**make_sidecar(), "kind": "onnx"})


def test_activating_without_tensorrt_says_what_to_install(tmp_path):
    try:
        import tensorrt
        if hasattr(tensorrt, "Runtime"):
            pytest.skip("TensorRT is installed here")
    except ImportError:
        pass
    (tmp_path / "m.engine").write_bytes(b"plan")
    runner = TensorRTRunner(tmp_path / "m.engine", make_sidecar())
    assert (runner.backend, runner.device, runner.is_active) == ("tensorrt", "cuda", False)
    with pytest.raises(ModelError, match=r"the tensorrt package is not installed: pip install tensorrt"):
        runner.activate()
    assert not runner.is_active


# --- a fake TensorRT on SimCuda ---------------------------------------------------------------------------------


@pytest.mark.parametrize("io", ["float32", "float16"])
def test_infer_runs_the_engine_on_any_shape_in_its_profile(fake_gpu, tmp_path, io):
    rng = np.random.default_rng(0)
    sidecar = make_sidecar(io="fp16" if io == "float16" else "fp32")
    runner = TensorRTRunner(write_plan(tmp_path / "m.engine", io), sidecar)
    with runner:
        assert runner.is_active and runner.input_names == ["image", "light"] and runner.output_names == ["out", "aux"]
        inputs, outputs = runner.io_metadata()
        assert [(s.name, s.shape, s.dtype) for s in inputs] == [("image", (1, 3, -1, -1), np.dtype(io)),
                                                                 ("light", (1, 3), np.dtype(np.float32))]
        assert runner.max_shape("out") == (1, 3, 32, 48) and runner.profile_shapes("image")[2] == (1, 3, 32, 48)
        for height, width in ((8, 8), (32, 48), (17, 30)):
            image, light = rng.random((1, 3, height, width), np.float32), rng.random((1, 3), np.float32)
            got = runner.infer({"image": image, "light": light})
            expected = model(image, light, io)
            assert {k: (v.shape, v.dtype) for k, v in got.items()} == {k: (v.shape, v.dtype)
                                                                       for k, v in expected.items()}
            for name in expected:
                np.testing.assert_array_equal(got[name], expected[name])
    assert not runner.is_active
    assert fake_gpu.cuda.memory == {} and fake_gpu.cuda.pinned == 0  # every buffer was freed


def test_shapes_outside_the_profile_and_missing_inputs_are_model_errors(fake_gpu, tmp_path):
    with TensorRTRunner(write_plan(tmp_path / "m.engine"), make_sidecar()) as runner:
        light = np.ones((1, 3), np.float32)
        with pytest.raises(ModelError, match=r"input 'image' of shape \(1, 3, 64, 64\) is outside the engine's "
                                             r"profile \(from \(1, 3, 8, 8\) to \(1, 3, 32, 48\)\)"):
            runner.infer({"image": np.zeros((1, 3, 64, 64), np.float32), "light": light})
        with pytest.raises(ModelError, match="no array for input 'light'; m.engine takes image, light"):
            runner.infer({"image": np.zeros((1, 3, 8, 8), np.float32)})
        out = runner.infer({"image": np.zeros((1, 3, 8, 8), np.float32), "light": light})["out"]  # still usable
        assert (out == 1).all()


def test_a_mismatched_engine_is_refused_before_it_is_deserialized(fake_gpu, tmp_path):
    runner = TensorRTRunner(write_plan(tmp_path / "m.engine"), make_sidecar(version="10.9.0.34"))
    with pytest.raises(ModelError, match="built for TensorRT 10.9.0.34 on compute capability 8.9; this machine has "
                                         "TensorRT 10.13.0.35 on 8.9: rebuild it here"):
        runner.activate()
    assert fake_gpu.trt.deserialized == 0 and not runner.is_active


def test_a_plan_tensorrt_cannot_load_is_a_model_error(fake_gpu, tmp_path):
    (tmp_path / "m.engine").write_bytes(b"\x00garbage")
    runner = TensorRTRunner(tmp_path / "m.engine", make_sidecar())
    with pytest.raises(ModelError, match="TensorRT 10.13.0.35 could not load m.engine .*: rebuild it here with"):
        runner.activate()
    assert fake_gpu.cuda.memory == {} and not runner.is_active


def test_cuda_graph_replays_after_one_warm_up_per_shape(fake_gpu, tmp_path):
    trt, rng = fake_gpu.trt, np.random.default_rng(1)
    feeds = [{"image": rng.random((1, 3, h, w), np.float32), "light": rng.random((1, 3), np.float32)}
             for h, w in ((16, 16), (16, 16), (16, 16), (8, 24), (8, 24))]
    with TensorRTRunner(write_plan(tmp_path / "m.engine", light=True), make_sidecar(), cuda_graphs=True) as runner:
        executions = []
        for feed in feeds:
            got = runner.infer(feed)
            executions.append(trt.executions)
            np.testing.assert_array_equal(got["out"], model(feed["image"], feed["light"], "float16")["out"])
            assert runner.graph_active
    # A new shape: one warm-up run and one captured run; the same shape again: a graph launch, no TensorRT call.
    assert executions == [2, 2, 2, 4, 4]


def test_cuda_graph_falls_back_when_capture_fails(fake_gpu, tmp_path, caplog):
    fake_gpu.trt.capturable = False
    feed = {"image": np.full((1, 3, 8, 8), 0.25, np.float32), "light": np.ones((1, 3), np.float32)}
    with TensorRTRunner(write_plan(tmp_path / "m.engine"), make_sidecar(), cuda_graphs=True) as runner:
        with caplog.at_level(logging.WARNING, logger="runtime"):
            for _ in range(3):
                assert (runner.infer(feed)["out"] == 0.75).all()
        assert not runner.graph_active
    assert [r.getMessage() for r in caplog.records if "CUDA graph" in r.getMessage()] == [
        "CUDA graph capture of m.engine failed (TensorRT's execution cannot be captured (an operation not allowed "
        "in stream capture)); running it without CUDA graphs"]
    assert fake_gpu.trt.executions == 4  # warm-up + failed capture, then plain runs


def test_enqueue_needs_every_shape_and_address(fake_gpu, tmp_path):
    with TensorRTRunner(write_plan(tmp_path / "m.engine"), make_sidecar()) as runner:
        stream = fake_gpu.cuda.stream()
        with pytest.raises(ValueError, match=r"enqueue needs the shape of \['light'\]"):
            runner.enqueue({"image": (1, 3, 8, 8)}, {}, stream)
        with pytest.raises(ValueError, match=r"enqueue needs the device address of \['aux'\]"):
            runner.enqueue({"image": (1, 3, 8, 8), "light": (1, 3)}, {"image": 1, "light": 2, "out": 3}, stream)
        with pytest.raises(ModelError, match="outside the engine's profile"):
            runner.enqueue({"image": (1, 3, 4, 4), "light": (1, 3)}, dict.fromkeys(["image", "light", "out", "aux"], 1),
                           stream)


# --- the overlapped executor on SimCuda ---------------------------------------------------------------------------


def _frames(count: int, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(seed)
    sizes = [(8, 8), (32, 48), (17, 30), (17, 30), (9, 47), (32, 8), (20, 20), (31, 33)]
    return [(rng.integers(0, 256, (*sizes[i % len(sizes)], 3), dtype=np.uint8), rng.random((1, 3), np.float32))
            for i in range(count)]


def _host_path(runner, frame: np.ndarray, light: np.ndarray) -> np.ndarray:
    return tensor_to_frame(runner.infer({"image": frame_to_tensor(frame), "light": light})["out"])


@pytest.mark.parametrize("io", ["float32", "float16"])
@pytest.mark.parametrize("depth", [2, 3])
def test_executor_gives_the_frames_of_infer_with_host_conversion_in_order(fake_gpu, tmp_path, depth, io):
    frames = _frames(8)
    with TensorRTRunner(write_plan(tmp_path / "m.engine", io), make_sidecar()) as runner:
        expected = [_host_path(runner, frame, light) for frame, light in frames]
        with CudaFrameExecutor(runner, image_input="image", output="out", extra_inputs=("light",),
                               depth=depth) as executor:
            done = []
            for index, (frame, light) in enumerate(frames):
                done += executor.submit(index, frame, {"light": light})
                assert 0 <= index + 1 - len(done) <= depth  # at most depth frames in flight
            done += executor.flush()
            assert executor.flush() == []
            timings = executor.timings
        assert [tag for tag, _ in done] == list(range(8))
        for (_, got), want in zip(done, expected):
            np.testing.assert_array_equal(got, want)
        assert sorted(timings) == sorted(STAGES) and all(len(v) == 8 and min(v) >= 0 for v in timings.values())
        # The runner still works after the executor used its execution context.
        np.testing.assert_array_equal(_host_path(runner, *frames[1]), expected[1])
    assert fake_gpu.cuda.memory == {} and fake_gpu.cuda.pinned == 0


def test_executor_output_depends_on_the_event_ordering(fake_gpu, tmp_path, monkeypatch):
    """Without the waits between its streams the executor goes wrong here, so the test above tests them."""
    monkeypatch.setattr(SimStream, "wait", lambda self, event: None)
    frames = _frames(8, seed=3)
    with TensorRTRunner(write_plan(tmp_path / "m.engine"), make_sidecar()) as runner:
        expected = [_host_path(runner, frame, light) for frame, light in frames]
        executor = CudaFrameExecutor(runner, image_input="image", output="out", extra_inputs=("light",))
        try:
            done = [pair for index, (frame, light) in enumerate(frames)
                    for pair in executor.submit(index, frame, {"light": light})] + executor.flush()
        except AssertionError as exc:  # SimCuda caught a frame handed back before its earlier stages ran
            assert "unfinished event" in str(exc)
            return
        finally:
            executor.close()
    assert any(not np.array_equal(got, want) for (_, got), want in zip(done, expected))


def test_executor_checks_its_arguments(fake_gpu, tmp_path):
    with TensorRTRunner(write_plan(tmp_path / "m.engine"), make_sidecar()) as runner:
        with pytest.raises(ValueError, match="at least 2 frames in flight"):
            CudaFrameExecutor(runner, image_input="image", output="out", extra_inputs=("light",), depth=1)
        with pytest.raises(ValueError, match=r"the engine also takes \['light'\]; name them in extra_inputs"):
            CudaFrameExecutor(runner, image_input="image", output="out")
        with pytest.raises(ValueError, match="'rgb' is not an input of the engine"):
            CudaFrameExecutor(runner, image_input="rgb", output="out", extra_inputs=("light",))
        with pytest.raises(ModelError, match=r"output 'aux' has shape \(1, 1, 32, 48\); the GPU executor needs "
                                             "Nx3xHxW images"):
            CudaFrameExecutor(runner, image_input="image", output="aux", extra_inputs=("light",))
        with CudaFrameExecutor(runner, image_input="image", output="out", extra_inputs=("light",)) as executor:
            light = {"light": np.ones((1, 3), np.float32)}
            with pytest.raises(ModelError, match="a 40x40 frame is larger than the engine's profile allows "
                                                 r"\(32x48\): fit it first"):
                executor.submit(0, np.zeros((40, 40, 3), np.uint8), light)
            with pytest.raises(ValueError, match="uint8 HxWx3"):
                executor.submit(0, np.zeros((8, 8, 3), np.float32), light)
            with pytest.raises(ValueError, match="no array for the extra input 'light'"):
                executor.submit(0, np.zeros((8, 8, 3), np.uint8), {})
            with pytest.raises(ModelError, match="outside the engine's profile"):  # too small: enqueue refuses it
                executor.submit(0, np.zeros((4, 8, 3), np.uint8), light)
            frame = np.full((8, 8, 3), 64, np.uint8)  # a failed submit leaves the executor usable
            (tag, out), = executor.submit("a", frame, light) + executor.flush()
            np.testing.assert_array_equal(out, _host_path(runner, frame, light["light"]))
        with pytest.raises(RuntimeError, match="closed"):
            executor.submit(1, frame, light)


# --- real engines on a GPU ----------------------------------------------------------------------------------------

GPU_PROFILE = {"image": {"min": [1, 3, 16, 16], "opt": [1, 3, 64, 64], "max": [1, 3, 256, 256]}}


@pytest.fixture(scope="module")
def tiny_engines(tmp_path_factory):
    """A small conv net as FP32 ONNX, and TensorRT engines from its FP16 ONNX with FP32 and with FP16 I/O."""
    from export.engine import unavailable_reason

    if reason := unavailable_reason():
        pytest.skip(f"needs_tensorrt: {reason}")
    from export.engine import Profile, build_engine
    from tests.tiny_onnx import tiny_conv_onnx

    folder = tmp_path_factory.mktemp("engines")
    paths = tiny_conv_onnx(folder)
    engines = {}
    for io in ("fp32", "fp16"):
        build = build_engine(paths[f"{io}io"], folder / f"tiny.{io}io.engine", Profile.from_dict(GPU_PROFILE),
                             log=lambda s: None)
        sidecar = make_sidecar(build.trt_version, build.compute_capability, io=io, profile=GPU_PROFILE)
        sidecar["contract"]["outputs"] = [{"name": "output"}]
        engines[io] = (build.path, sidecar)
    return paths["fp32"], engines


def _libs():
    from runtime.cuda import LIBS, unavailable_reason

    return [pytest.param(lib, marks=pytest.mark.skipif(bool(reason), reason=str(reason)))
            for lib, reason in ((lib, unavailable_reason(lib)) for lib in LIBS)]


@pytest.mark.needs_tensorrt
@pytest.mark.parametrize("lib", _libs())
@pytest.mark.parametrize("io", ["fp32", "fp16"])
def test_tensorrt_runner_matches_onnxruntime(tiny_engines, lib, io):
    import onnxruntime as ort

    onnx_path, engines = tiny_engines
    reference = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    with TensorRTRunner(*engines[io], cuda_lib=lib) as runner:
        assert runner.cuda.name == lib
        for height, width in ((64, 64), (45, 200), (256, 256)):
            image = rng.random((1, 3, height, width), dtype=np.float32)
            got = runner.infer({"image": image})["output"]
            (expected,) = reference.run(None, {"image": image})
            assert got.dtype == (np.float16 if io == "fp16" else np.float32) and got.shape == expected.shape
            np.testing.assert_allclose(got.astype(np.float32), expected, atol=5e-3, rtol=1e-2)
        with pytest.raises(ModelError, match=r"outside the engine's profile \(from \(1, 3, 16, 16\) to "
                                             r"\(1, 3, 256, 256\)\)"):
            runner.infer({"image": np.zeros((1, 3, 300, 300), np.float32)})


@pytest.mark.needs_tensorrt
@pytest.mark.parametrize("lib", _libs())
def test_cuda_graph_mode_gives_the_same_output(tiny_engines, lib):
    _, engines = tiny_engines
    rng = np.random.default_rng(1)
    images = [rng.random((1, 3, 64, 96), dtype=np.float32) for _ in range(3)] + [rng.random((1, 3, 32, 32),
                                                                                          dtype=np.float32)]
    with TensorRTRunner(*engines["fp32"], cuda_lib=lib) as plain:
        expected = [plain.infer({"image": image})["output"] for image in images]
    with TensorRTRunner(*engines["fp32"], cuda_lib=lib, cuda_graphs=True) as graphed:
        for image, want in zip(images, expected):
            np.testing.assert_array_equal(graphed.infer({"image": image})["output"], want)
        assert graphed.graph_active == (lib == "cuda-python")  # pycuda cannot capture: plain runs


@pytest.mark.needs_tensorrt
@pytest.mark.parametrize("lib", _libs())
@pytest.mark.parametrize("depth", [2, 3])
def test_executor_gives_the_frames_of_infer_with_host_conversion_on_a_gpu(tiny_engines, lib, depth):
    _, engines = tiny_engines
    rng = np.random.default_rng(2)
    sizes = [(64, 64), (120, 200), (256, 256), (17, 250), (64, 64), (100, 30), (256, 16), (64, 64)]
    frames = [rng.integers(0, 256, (*size, 3), dtype=np.uint8) for size in sizes]
    for io in ("fp32", "fp16"):
        with TensorRTRunner(*engines[io], cuda_lib=lib) as runner:
            expected = [tensor_to_frame(runner.infer({"image": frame_to_tensor(f)})["output"]) for f in frames]
            with CudaFrameExecutor(runner, image_input="image", output="output", depth=depth) as executor:
                done = []
                for index, frame in enumerate(frames):
                    done += executor.submit(index, frame, {})
                    assert index + 1 - len(done) <= depth
                done += executor.flush()
                assert all(len(v) == 8 and min(v) >= 0 for v in executor.timings.values())
        assert [tag for tag, _ in done] == list(range(8))
        for (_, got), want in zip(done, expected):
            assert got.shape == want.shape
            difference = np.abs(got.astype(int) - want.astype(int))
            assert difference.max() <= 1 and (difference == 0).mean() > 0.999


def test_the_cli_device_option_is_accepted_by_the_engine_runner(tmp_path):
    """python -m runtime passes --device (auto by default) to whichever runner it loads."""
    from runtime.core.errors import ModelError
    from runtime.runners.tensorrt import TensorRTRunner

    plan = tmp_path / "model.fp16.engine"
    plan.write_bytes(b"plan")
    sidecar = make_sidecar("10.13.0.35", "9.0")
    assert TensorRTRunner(plan, sidecar, device="auto").device_index == 0
    assert TensorRTRunner(plan, sidecar, device=1).device_index == 1
    with pytest.raises(ModelError, match="CUDA GPU"):
        TensorRTRunner(plan, sidecar, device="cpu")
