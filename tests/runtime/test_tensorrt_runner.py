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

from runtime.core.errors import ModelError
from runtime.runners.tensorrt import TensorRTRunner, check_engine_compatibility, rebuild_command

from .fakes import SimGraph, cuda_lib_params, device_region, make_sidecar, model, write_plan


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


L4 = "NVIDIA L4"


def test_engine_built_on_another_gpu_of_the_same_capability_is_refused_naming_both():
    sidecar = make_sidecar(device_name=L4)
    check_engine_compatibility(sidecar, "model.fp16.engine", "10.13.0.35", "8.9", L4)
    with pytest.raises(ModelError) as info:
        check_engine_compatibility(sidecar, "model.fp16.engine", "10.13.0.35", "8.9", "NVIDIA GeForce RTX 4090")
    assert str(info.value) == (
        "model.fp16.engine was built for TensorRT 10.13.0.35 on compute capability 8.9 (NVIDIA L4); this machine has "
        "TensorRT 10.13.0.35 on 8.9 (NVIDIA GeForce RTX 4090): rebuild it here with python -m export "
        "runs/lowlight/best.ckpt --fp16 --fp16-io --engine")


def test_hardware_compatible_engines_run_on_other_gpu_models():
    sidecar = make_sidecar(device_name=L4, hardware_compatible=True)
    for capability, name in (("8.9", "NVIDIA L40S"), ("9.0", "NVIDIA H100 80GB HBM3")):
        check_engine_compatibility(sidecar, "m.engine", "10.13.0.35", capability, name)


def test_a_sidecar_without_a_device_name_is_checked_by_compute_capability_only():
    sidecar = make_sidecar()
    assert "device_name" not in sidecar["tensorrt"]  # what export wrote before it recorded the GPU
    check_engine_compatibility(sidecar, "m.engine", "10.13.0.35", "8.9", "NVIDIA GeForce RTX 4090")
    with pytest.raises(ModelError, match=r"on compute capability 8.9; this machine has TensorRT 10.13.0.35 on 9.0: "):
        check_engine_compatibility(sidecar, "m.engine", "10.13.0.35", "9.0", "NVIDIA H100 80GB HBM3")


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


def test_an_engine_from_another_gpu_model_is_refused_before_it_is_deserialized(fake_gpu, tmp_path):
    runner = TensorRTRunner(write_plan(tmp_path / "m.engine"), make_sidecar(device_name=L4))
    with pytest.raises(ModelError, match=r"on compute capability 8.9 \(NVIDIA L4\); this machine has TensorRT "
                                         r"10.13.0.35 on 8.9 \(simulated GPU\): rebuild it here"):
        runner.activate()
    assert fake_gpu.trt.deserialized == 0 and not runner.is_active
    with TensorRTRunner(write_plan(tmp_path / "m.engine"), make_sidecar(device_name="simulated GPU")) as runner:
        assert runner.is_active


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
    # A new shape: the call's own run, a warm-up on the graph's context and the captured run; the same shape
    # again: a graph launch, no TensorRT call.
    assert executions == [3, 3, 3, 6, 6]


def _feed(rng, height: int, width: int) -> dict[str, np.ndarray]:
    return {"image": rng.random((1, 3, height, width), np.float32), "light": rng.random((1, 3), np.float32)}


def test_cuda_graphs_are_kept_per_shape_so_alternating_shapes_replay(fake_gpu, tmp_path):
    trt, rng = fake_gpu.trt, np.random.default_rng(2)
    feeds = [_feed(rng, *size) for size in ((16, 16), (8, 24), (16, 16), (8, 24), (8, 24), (16, 16))]
    with TensorRTRunner(write_plan(tmp_path / "m.engine"), make_sidecar(), cuda_graphs=True) as runner:
        executions = []
        for feed in feeds:
            got = runner.infer(feed)
            executions.append(trt.executions)
            np.testing.assert_array_equal(got["out"], model(feed["image"], feed["light"], "float16")["out"])
    # A run, a warm-up and a capture for each of the two shapes, then graph launches only. Each graph has its own
    # execution context: the fake fails a graph replayed after its context ran another shape.
    assert executions == [3, 6, 6, 6, 6, 6]


def test_cuda_graphs_beyond_the_limit_free_the_least_recently_used(fake_gpu, tmp_path, monkeypatch):
    cuda, trt, rng = fake_gpu.cuda, fake_gpu.trt, np.random.default_rng(3)
    captured, freed = [], []
    end_capture = cuda.end_capture

    def record_capture(stream):
        graph = end_capture(stream)
        captured.append(graph)
        return graph

    def record_free(graph):
        assert all(not s.ops for s in cuda.streams), "a graph was freed while work was queued"
        freed.append(graph)
        graph.ops = []

    monkeypatch.setattr(cuda, "end_capture", record_capture)
    monkeypatch.setattr(SimGraph, "free", record_free)
    sizes = [(8, 8 + i) for i in range(TensorRTRunner.graph_limit + 1)]  # one shape more than a runner keeps
    with TensorRTRunner(write_plan(tmp_path / "m.engine"), make_sidecar(), cuda_graphs=True) as runner:
        def run(size):
            feed = _feed(rng, *size)
            got = runner.infer(feed)["out"]
            np.testing.assert_array_equal(got, model(feed["image"], feed["light"], "float16")["out"])

        for size in sizes:
            run(size)
        assert trt.executions == 3 * len(sizes) and freed == [captured[0]]  # the first shape's graph went
        run(sizes[1])  # kept: a launch, and now the most recently used
        assert trt.executions == 3 * len(sizes) and freed == [captured[0]]
        run(sizes[0])  # evicted: captured again, which frees the least recently used, the third shape's
        assert trt.executions == 3 * len(sizes) + 3 and freed == [captured[0], captured[2]]
        assert runner.graph_active
    assert len(captured) == len(sizes) + 1 and sorted(map(id, freed)) == sorted(map(id, captured))


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
    assert fake_gpu.trt.executions == 5  # the run, a warm-up and the failed capture, then plain runs


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


def _buffers(cuda, shapes: dict[str, tuple], smaller: str | None = None) -> dict:
    """Device buffers for the fake engine's tensors at ``shapes`` (``smaller``: one element short)."""
    types_ = {"image": np.float16, "light": np.float32, "out": np.float16, "aux": np.float32}
    return {name: cuda.device_buffer((int(np.prod(shape)) - (name == smaller)) * np.dtype(types_[name]).itemsize)
            for name, shape in shapes.items()}


SHAPES = {"image": (1, 3, 16, 16), "light": (1, 3), "out": (1, 3, 16, 16), "aux": (1, 1, 16, 16)}


def test_deactivate_waits_for_executions_enqueued_on_another_stream(fake_gpu, tmp_path):
    cuda, trt = fake_gpu.cuda, fake_gpu.trt
    buffers = _buffers(cuda, SHAPES)
    runner = TensorRTRunner(write_plan(tmp_path / "m.engine"), make_sidecar()).activate()
    stream = cuda.stream()
    runner.enqueue({"image": SHAPES["image"], "light": SHAPES["light"]}, {n: b.ptr for n, b in buffers.items()},
                   stream)
    assert trt.pending == 1  # nothing has waited for the caller's stream yet
    runner.deactivate()  # frees the execution context: the execution must have run by then
    assert trt.pending == 0
    for buffer in buffers.values():
        buffer.free()


def test_executor_protocol_gives_the_cuda_layer_and_the_output_shapes(fake_gpu, tmp_path):
    runner = TensorRTRunner(write_plan(tmp_path / "m.engine"), make_sidecar())
    assert runner.executor_cuda() is None
    with runner:
        assert runner.executor_cuda() is fake_gpu.cuda
        assert runner.output_shapes({"image": (1, 3, 17, 30), "light": (1, 3)}) == {"out": (1, 3, 17, 30),
                                                                                     "aux": (1, 1, 17, 30)}
        with pytest.raises(ModelError, match="outside the engine's profile"):
            runner.output_shapes({"image": (1, 3, 64, 64), "light": (1, 3)})
        with pytest.raises(ValueError, match=r"output_shapes needs the shape of \['light'\]"):
            runner.output_shapes({"image": (1, 3, 8, 8)})
    assert runner.executor_cuda() is None


def test_enqueue_on_buffers_too_small_for_the_shapes_is_refused_by_tensorrt(fake_gpu, tmp_path):
    cuda, trt = fake_gpu.cuda, fake_gpu.trt
    inputs = {"image": SHAPES["image"], "light": SHAPES["light"]}
    with TensorRTRunner(write_plan(tmp_path / "m.engine"), make_sidecar()) as runner:
        stream = cuda.stream()
        small = _buffers(cuda, SHAPES, smaller="out")
        with pytest.raises(RuntimeError, match="TensorRT failed to run m.engine"):
            runner.enqueue(inputs, {n: b.ptr for n, b in small.items()}, stream)
        assert "tensor 'out' is not in a live device buffer of 1536 bytes" in trt.errors[-1]
        small["aux"].free()
        small["out"].free()
        small["out"] = cuda.device_buffer(1536)
        with pytest.raises(RuntimeError, match="TensorRT failed to run m.engine"):  # a freed buffer
            runner.enqueue(inputs, {n: b.ptr for n, b in small.items()}, stream)
        assert "tensor 'aux'" in trt.errors[-1]
        # Tensors may lie anywhere inside one buffer: the runner and TensorRT only need the addresses.
        sizes = {n: b.nbytes for n, b in _buffers(cuda, SHAPES).items()}
        pool, offset, addresses = cuda.device_buffer(sum(sizes.values())), 0, {}
        for name, nbytes in sizes.items():
            addresses[name], offset = pool.ptr + offset, offset + nbytes
        image = np.full(SHAPES["image"], 0.25, np.float16)
        cuda.htod_async(pool, image, stream, nbytes=image.nbytes)
        light = np.ones(SHAPES["light"], np.float32)
        device_region(cuda, addresses["light"], light.nbytes)[...] = light.view(np.uint8)
        assert runner.enqueue(inputs, addresses, stream) == {"out": SHAPES["out"], "aux": SHAPES["aux"]}
        stream.synchronize()
        assert (device_region(cuda, addresses["out"], image.nbytes).view(np.float16) == 0.75).all()
        # infer still runs on the runner's own buffers afterwards.
        assert (runner.infer({"image": image.astype(np.float32), "light": light})["out"] == 0.75).all()


def test_fake_tensorrt_refuses_executions_without_addresses_or_input_shapes(fake_gpu, tmp_path):
    """The strictness of the fake execution context, on its own: each check catches a forgotten call."""
    cuda, trt = fake_gpu.cuda, fake_gpu.trt
    engine = trt.Runtime(trt.Logger(trt.Logger.WARNING)).deserialize_cuda_engine(
        write_plan(tmp_path / "m.engine").read_bytes())
    context, stream = engine.create_execution_context(), cuda.stream()
    buffers = _buffers(cuda, SHAPES)
    for name in ("image", "light", "out"):  # forgot the address of aux
        assert context.set_tensor_address(name, buffers[name].ptr)
    assert context.set_input_shape("image", SHAPES["image"])
    assert context.execute_async_v3(stream.handle) is False
    assert trt.errors[-1].endswith("the address of tensor 'aux' is not set")
    assert context.set_tensor_address("aux", buffers["aux"].ptr)
    fresh = engine.create_execution_context()
    for name, buffer in buffers.items():  # forgot the shape of the image
        fresh.set_tensor_address(name, buffer.ptr)
    assert fresh.execute_async_v3(stream.handle) is False
    assert trt.errors[-1].endswith("the shape of input 'image' is not set")
    assert context.execute_async_v3(stream.handle) is True and trt.pending == 1
    stream.synchronize()
    assert trt.pending == 0 and len(trt.errors) == 2
    for buffer in buffers.values():
        buffer.free()


# --- real engines on a GPU ----------------------------------------------------------------------------------------

@pytest.mark.needs_tensorrt
@pytest.mark.parametrize("lib", cuda_lib_params())
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
@pytest.mark.parametrize("lib", cuda_lib_params())
def test_cuda_graph_mode_gives_the_same_output(tiny_engines, lib):
    _, engines = tiny_engines
    rng = np.random.default_rng(1)
    # Shapes alternate: each graph is replayed after the other shape has run (and been captured).
    images = [rng.random((1, 3, *size), dtype=np.float32) for size in ((64, 96), (64, 96), (32, 32), (64, 96),
                                                                        (32, 32), (64, 96))]
    with TensorRTRunner(*engines["fp32"], cuda_lib=lib) as plain:
        expected = [plain.infer({"image": image})["output"] for image in images]
    with TensorRTRunner(*engines["fp32"], cuda_lib=lib, cuda_graphs=True) as graphed:
        for image, want in zip(images, expected):
            np.testing.assert_array_equal(graphed.infer({"image": image})["output"], want)
        assert graphed.graph_active == (lib == "cuda-python")  # pycuda cannot capture: plain runs


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


def test_an_engine_refuses_the_simulated_cuda_layer(tmp_path):
    plan = tmp_path / "model.fp16.engine"
    plan.write_bytes(b"plan")
    with pytest.raises(ModelError, match="a TensorRT engine runs on a real GPU; cuda_lib sim"):
        TensorRTRunner(plan, make_sidecar(), cuda_lib="sim")
