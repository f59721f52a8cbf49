"""python -m runtime relight with relight_edge on the CPU: SH light by name, the background option, the light
history kept between frames, temporal denoising."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from export.pipeline import ExportOptions, run_export
from runtime import Pipeline, load
from runtime.cli import main
from runtime.core.errors import TaskError
from runtime.core.lighting import sh_preset
from runtime.democlip import make_demo_clip
from runtime.tasks import RelightTask
from train.checkpoint import save_checkpoint
from train.models import create_model

from .clips import read_frames

pytest.importorskip("onnxruntime")

SIZE = (64, 96)  # frames of the test clip (H, W)


@pytest.fixture(scope="module")
def edge(tmp_path_factory) -> Path:
    """A tiny untrained relight_edge exported to ONNX (its export folder)."""
    folder = tmp_path_factory.mktemp("edge")
    torch.manual_seed(0)
    model = create_model("relight_edge", sfsnet={"name": "sfsnet_test", "config": {"mask": True}})
    save_checkpoint(folder / "best.ckpt", model.eval())
    run_export(ExportOptions(checkpoint=str(folder / "best.ckpt"), out=str(folder / "export"), min_shape=(32, 32),
                             opt_shape=(64, 96), max_shape=(128, 128), max_batch=2, parity_shapes=((1, 48, 64),),
                             engine=False, quiet=True))
    return folder / "export"


@pytest.fixture(scope="module")
def faces(tmp_path_factory) -> Path:
    return make_demo_clip(tmp_path_factory.mktemp("clip") / "faces.avi", kind="faces", frames=6, size=SIZE)


def test_relight_edge_relights_a_clip_with_a_named_sh_light(edge, faces, tmp_path):
    out = tmp_path / "relit.avi"
    assert main(["relight", "--model", str(edge), "--input", str(faces), "--output", str(out), "--sh", "left",
                 "--background", "keep", "--denoise", "0.5", "--quiet"]) == 0
    inputs, outputs = read_frames(faces), read_frames(out)
    assert len(outputs) == len(inputs) == 6 and outputs[0].shape == (*SIZE, 3)
    for a, b in zip(inputs, outputs):
        assert np.abs(a.astype(int) - b).mean() > 2.0  # relit, not passed through


def test_relight_task_feeds_the_background_and_keeps_the_light_history(edge, faces):
    frame = read_frames(faces)[0]
    with load(edge / "model.onnx", threads=1) as runner:
        task = RelightTask(lights=sh_preset("left")[None], background="relit", light_smoothing=0.7)
        task.check(runner)
        first = task.extras(0)
        assert first["background"].tolist() == [[1.0]] and first["sh"].shape == (1, 27)
        assert first["history"].shape == (1, 28) and not first["history"].any()  # a first frame: no history
        estimate = runner.infer(task.feeds(frame, 0))["sh_estimate"]
        Pipeline(runner, task).process(frame, 0)
        history = task.extras(1)["history"]
        assert history[0, 0] == pytest.approx(0.7)
        np.testing.assert_allclose(history[0, 1:], estimate[0], atol=1e-6)  # the previous frame's estimate

        # --light-smoothing 0 never feeds the history; --background keep feeds 0.
        off = RelightTask(lights=sh_preset("left")[None], light_smoothing=0.0)
        Pipeline(runner, off).process(frame, 0)
        assert not off.extras(1)["history"].any() and off.extras(1)["background"].tolist() == [[0.0]]

        # Outputs without the estimate: history stays off.
        gpu = RelightTask(lights=sh_preset("left")[None])
        gpu.check(runner)
        relit = runner.infer(gpu.feeds(frame, 0))["relit"]
        assert gpu.postprocess({"relit": relit}, frame).shape == frame.shape
        assert not gpu.extras(1)["history"].any()

        # The benchmarks' task feeds every input; a point light is refused with one line naming SH.
        bench = RelightTask.for_benchmark(runner, 4)
        pipeline = Pipeline(runner, bench)
        assert pipeline.process(frame, 0).shape == frame.shape and pipeline.process(frame, 1).shape == frame.shape
        assert bench.extras(2)["history"][0, 0] == pytest.approx(0.8)
        with pytest.raises(TaskError, match="SH"):
            RelightTask(lights=np.zeros((1, 3), np.float32)).check(runner)


def test_the_light_history_is_kept_on_the_gpu_executor(edge, faces):
    """The executor brings the light estimate back with each frame (the simulated CUDA layer here), so a GPU run
    smooths the light as the CPU run does rather than starting every frame afresh."""
    from runtime.video import open_source

    with load(edge / "model.onnx", threads=1, device="cpu", cuda_lib="sim") as runner:
        task = RelightTask(lights=sh_preset("left")[None], light_smoothing=0.7)
        stats = Pipeline(runner, task, open_source(faces)).run()
        assert stats["frames"] == 6 and "gpu_infer" in stats["stages"]
        history = task.extras(6)["history"]
        assert history[0, 0] == pytest.approx(0.7) and np.abs(history[0, 1:]).sum() > 0


@pytest.mark.parametrize("option", [["--light-smoothing", "1"], ["--denoise", "1"], ["--background", "both"]])
def test_relight_options_out_of_range_are_refused(edge, faces, tmp_path, option, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["relight", "--model", str(edge), "--input", str(faces), "--output", str(tmp_path / "x.avi"), *option])
    assert exc.value.code == 2 and option[0] in capsys.readouterr().err
    assert not (tmp_path / "x.avi").exists()
