"""The overlapped GPU executor (``runtime.cuda_executor``) driving each kind of runner.

On the CPU it runs on ``SimCuda`` (``runtime.cuda.sim``), whose streams run lazily and out of order unless events
order them, with the fake ``tensorrt`` of tests/runtime/fakes.py; on a GPU with TensorRT, with real engines.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from runtime.core.errors import ModelError
from runtime.cuda.sim import SimStream
from runtime.cuda_executor import STAGES, CudaFrameExecutor
from runtime.runners.tensorrt import TensorRTRunner
from runtime.tasks import frame_to_tensor, tensor_to_frame

from .fakes import cuda_lib_params, make_sidecar, write_plan


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
        assert [f.tag for f in done] == list(range(8))
        for (_, got, _), want in zip(done, expected):
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
    assert any(not np.array_equal(got, want) for (_, got, _), want in zip(done, expected))


def test_executor_checks_its_arguments(fake_gpu, tmp_path):
    with TensorRTRunner(write_plan(tmp_path / "m.engine"), make_sidecar()) as runner:
        with pytest.raises(ValueError, match="at least 2 frames in flight"):
            CudaFrameExecutor(runner, image_input="image", output="out", extra_inputs=("light",), depth=1)
        with pytest.raises(ValueError, match=r"the model also takes \['light'\]; name them in extra_inputs"):
            CudaFrameExecutor(runner, image_input="image", output="out")
        with pytest.raises(ValueError, match="'rgb' is not an input of the model"):
            CudaFrameExecutor(runner, image_input="rgb", output="out", extra_inputs=("light",))
        with pytest.raises(ModelError, match=r"output 'aux' has shape \(1, 1, 32, 48\); the GPU executor needs "
                                             "Nx3xHxW images"):
            CudaFrameExecutor(runner, image_input="image", output="aux", extra_inputs=("light",))
        with CudaFrameExecutor(runner, image_input="image", output="out", extra_inputs=("light",)) as executor:
            light = {"light": np.ones((1, 3), np.float32)}
            with pytest.raises(ModelError, match="a 40x40 frame is larger than the model's profile allows "
                                                 r"\(32x48\): fit it first"):
                executor.submit(0, np.zeros((40, 40, 3), np.uint8), light)
            with pytest.raises(ValueError, match="uint8 HxWx3"):
                executor.submit(0, np.zeros((8, 8, 3), np.float32), light)
            with pytest.raises(ValueError, match="no array for the extra input 'light'"):
                executor.submit(0, np.zeros((8, 8, 3), np.uint8), {})
            with pytest.raises(ModelError, match="outside the engine's profile"):  # too small: enqueue refuses it
                executor.submit(0, np.zeros((4, 8, 3), np.uint8), light)
            frame = np.full((8, 8, 3), 64, np.uint8)  # a failed submit leaves the executor usable
            (tag, out, _), = executor.submit("a", frame, light) + executor.flush()
            np.testing.assert_array_equal(out, _host_path(runner, frame, light["light"]))
        with pytest.raises(RuntimeError, match="closed"):
            executor.submit(1, frame, light)


@pytest.mark.needs_tensorrt
@pytest.mark.parametrize("lib", cuda_lib_params())
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
        assert [f.tag for f in done] == list(range(8))
        for (_, got, _), want in zip(done, expected):
            assert got.shape == want.shape
            difference = np.abs(got.astype(int) - want.astype(int))
            assert difference.max() <= 1 and (difference == 0).mean() > 0.999


# --- PyTorch on the simulated CUDA layer: the executor path every CUDA runner shares -----------------------------


def _video(count: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    sizes = [(32, 48), (64, 64), (40, 30), (64, 64), (17, 23), (32, 48)]
    return [rng.integers(0, 256, (*sizes[i % len(sizes)], 3), dtype=np.uint8) for i in range(count)]


def _run(executor: CudaFrameExecutor, frames: list[np.ndarray]) -> list[tuple[object, np.ndarray]]:
    done = []
    for index, frame in enumerate(frames):
        done += executor.submit(index, frame, {})
    return done + executor.flush()


@pytest.mark.parametrize("depth", [2, 3])
def test_executor_drives_the_pytorch_runner_as_it_drives_an_engine(lowlight_checkpoint, depth):
    """uint8 frames up, conversion and the model in the compute stream's order, uint8 frames down: the frames of
    ``infer`` with host conversion, as frame sizes change (the slots' buffers grow)."""
    from runtime.runners.torch import TorchRunner

    frames = _video(8)
    with TorchRunner(lowlight_checkpoint, device="cpu", cuda_lib="sim") as runner:
        expected = [tensor_to_frame(runner.infer({"image": frame_to_tensor(f)})["enhanced"]) for f in frames]
        with CudaFrameExecutor(runner, image_input="image", output="enhanced", depth=depth) as executor:
            done = _run(executor, frames)
            assert not executor.host_conversion and all(len(v) == 8 for v in executor.timings.values())
    assert [f.tag for f in done] == list(range(8))
    for (_, got, _), want in zip(done, expected):
        np.testing.assert_array_equal(got, want)


def test_a_plain_cpu_runner_is_not_driven_by_the_executor(lowlight_checkpoint):
    from runtime.runners.torch import TorchRunner

    with TorchRunner(lowlight_checkpoint, device="cpu") as runner:
        assert runner.executor_cuda() is None
        with pytest.raises(ValueError, match="the torch runner computes on host arrays here"):
            CudaFrameExecutor(runner, image_input="image", output="enhanced")


def test_without_the_conversion_kernels_frames_are_converted_on_the_host(lowlight_checkpoint, caplog):
    """No NVRTC (or no nvcc for pycuda): one warning, the float tensors travel instead, the same frames come out."""
    import logging

    from runtime.cuda.sim import SimCuda
    from runtime.runners.torch import TorchRunner

    cuda = SimCuda(seed=3)
    cuda.kernel_error = "NVRTC, which compiles the conversion kernels, does not load"
    frames = _video(6, seed=1)
    with TorchRunner(lowlight_checkpoint, device="cpu", cuda_lib="sim") as runner:
        expected = [tensor_to_frame(runner.infer({"image": frame_to_tensor(f)})["enhanced"]) for f in frames]
        with caplog.at_level(logging.WARNING, logger="runtime"):
            with CudaFrameExecutor(runner, image_input="image", output="enhanced", cuda=cuda) as executor:
                done = _run(executor, frames)
                assert executor.host_conversion
    assert [r.getMessage() for r in caplog.records] == [
        "the GPU frame conversion is unavailable (NVRTC, which compiles the conversion kernels, does not load); "
        "converting frames on the CPU"]
    for (_, got, _), want in zip(done, expected):
        np.testing.assert_array_equal(got, want)
    assert cuda.memory == {} and cuda.pinned == 0


def test_the_pipeline_runs_a_video_through_the_executor_with_a_pytorch_runner(lowlight_checkpoint, tmp_path):
    """The pipeline picks the executor for a PyTorch runner on a (simulated) GPU: the same video as the host path,
    and the executor's per-stage timings in the statistics."""
    from runtime import Pipeline
    from runtime.runners.torch import TorchRunner
    from runtime.tasks import EnhanceTask
    from runtime.democlip import make_demo_clip
    from runtime.video import open_sink, open_source

    clip = make_demo_clip(tmp_path / "clip.mp4", frames=12, size=(48, 64))
    outputs = {}
    for lib in ("sim", "auto"):
        with TorchRunner(lowlight_checkpoint, device="cpu", cuda_lib=lib) as runner:
            source = open_source(clip)
            sink = open_sink(tmp_path / lib, fps=source.fps)  # PNG frames: compared exactly
            stats = Pipeline(runner, EnhanceTask(), source, sink).run()
            sink.close()
        assert stats["frames"] == 12
        assert ("gpu_infer" in stats["stages"]) == (lib == "sim")
        outputs[lib] = [cv2.imread(str(path)) for path in sorted((tmp_path / lib).glob("*.png"))]
    assert len(outputs["sim"]) == 12
    np.testing.assert_array_equal(outputs["sim"], outputs["auto"])


def test_without_a_cuda_library_the_pipeline_says_so_once_and_runs_on_the_host(lowlight_checkpoint, caplog,
                                                                                monkeypatch):
    import logging

    from runtime import Pipeline
    from runtime.core.errors import UserError
    from runtime.runners.torch import TorchRunner
    from runtime.tasks import EnhanceTask

    def no_library():
        raise UserError("no CUDA Python library is available: pip install cuda-python (or pip install pycuda)")

    with TorchRunner(lowlight_checkpoint, device="cpu") as runner:
        monkeypatch.setattr(runner, "executor_cuda", no_library)
        pipeline = Pipeline(runner, EnhanceTask(), _MemorySource(_video(5)))
        with caplog.at_level(logging.WARNING, logger="runtime"):
            stats = pipeline.run()
    assert stats["frames"] == 5 and "gpu_infer" not in stats["stages"]
    assert [r.getMessage() for r in caplog.records] == [
        "frames go through the host, not the overlapped GPU executor: no CUDA Python library is available: pip "
        "install cuda-python (or pip install pycuda)"]


class _MemorySource:
    """The few frames of a test as a file-like source."""

    live, fps, dropped, waiting_max, error = False, 30.0, 0, 0, None

    def __init__(self, frames: list[np.ndarray]) -> None:
        from runtime.video.sources import Frame

        self.frames = [Frame(i, f, 0.0) for i, f in enumerate(frames)]
        self.frame_count = len(frames)

    def start(self):
        return self

    def read(self, timeout=None):
        return self.frames.pop(0) if self.frames else None

    def stop(self) -> None:
        pass


@pytest.mark.parametrize("name", ["model.onnx", "model.fp16.onnx"])
def test_executor_drives_the_onnx_runtime_runner_with_io_binding(exported_lowlight, name):
    """ONNX Runtime bound to the executor's device buffers (the CPU provider on the simulated layer here; the CUDA
    provider on a GPU): the frames of ``infer`` with host conversion."""
    pytest.importorskip("onnxruntime")
    from runtime.runners.onnxruntime import OnnxRuntimeRunner

    frames = [f for f in _video(6, seed=2) if min(f.shape[:2]) >= 32]  # the export's profile starts at 32x32
    with OnnxRuntimeRunner(exported_lowlight / "export" / name, device="cpu", threads=1, cuda_lib="sim") as runner:
        expected = [tensor_to_frame(runner.infer({"image": frame_to_tensor(f)})["enhanced"]) for f in frames]
        with CudaFrameExecutor(runner, image_input="image", output="enhanced") as executor:
            done = _run(executor, frames)
    for (_, got, _), want in zip(done, expected):
        np.testing.assert_array_equal(got, want)


def test_a_failed_submit_loses_no_finished_frame(lowlight_checkpoint, monkeypatch):
    """With every slot busy, submit retires the oldest frame before it queues the new one; when queueing then
    fails, that finished frame comes back from the next call instead of vanishing with the exception."""
    from runtime.runners.torch import TorchRunner

    frames = _video(4)
    with TorchRunner(lowlight_checkpoint, device="cpu", cuda_lib="sim") as runner:
        with CudaFrameExecutor(runner, image_input="image", output="enhanced", depth=2) as executor:
            done = executor.submit(0, frames[0], {}) + executor.submit(1, frames[1], {})
            real = runner.output_shapes
            monkeypatch.setattr(runner, "output_shapes", lambda shapes: (_ for _ in ()).throw(ModelError("refused")))
            with pytest.raises(ModelError, match="refused"):
                executor.submit(2, frames[2], {})
            monkeypatch.setattr(runner, "output_shapes", real)
            done += executor.submit(3, frames[3], {}) + executor.flush()
    assert [f.tag for f in done] == [0, 1, 3]
