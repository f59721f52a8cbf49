"""python -m runtime on the CPU: ONNX Runtime and PyTorch runners, enhance / relight / ibr, faults."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from export.pipeline import ExportOptions, run_export
from runtime import Pipeline, load
from runtime.cli import main
from runtime.core.errors import ModelError, TaskError
from runtime.runners.base import Runner
from runtime.tasks import EnhanceTask, RelightTask
from runtime.video import open_sink, open_source
from train.checkpoint import save_checkpoint
from train.models import create_model

from .clips import read_frames
from .fakes import IdentityRunner

pytest.importorskip("onnxruntime")

SIZE = (72, 128)  # frames of the test clips (H, W)


def _export(folder: Path, model, **shapes) -> Path:
    ckpt = folder / "best.ckpt"
    save_checkpoint(ckpt, model.eval())
    options = dict(min_shape=(32, 32), opt_shape=(64, 64), max_shape=(256, 256), max_batch=2,
                   parity_shapes=((1, 48, 64),), quiet=True)
    options.update(shapes)
    run_export(ExportOptions(checkpoint=str(ckpt), out=str(folder / "export"), **options))
    return folder / "export"


def _brightening_lowlight():
    """lowlight_edgetest_v1 made to brighten: every curve step x + 0.9 x (1 - x), the denoiser off."""
    torch.manual_seed(0)
    model = create_model("lowlight_edgetest_v1")
    with torch.no_grad():
        model.curves[-1].weight.zero_()
        model.curves[-1].bias.fill_(1.5)  # tanh(1.5) = 0.9
        model.refine[-2].weight.zero_()
        model.refine[-2].bias.zero_()
    return model


@pytest.fixture(scope="module")
def lowlight(tmp_path_factory) -> Path:
    return _export(tmp_path_factory.mktemp("lowlight"), _brightening_lowlight())


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    """24 dark, noisy frames with moving content."""
    path = tmp_path_factory.mktemp("clip") / "dark.avi"
    rng = np.random.default_rng(0)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 24.0, SIZE[::-1])
    yy, xx = np.mgrid[0:SIZE[0], 0:SIZE[1]]
    for i in range(24):
        scene = 0.5 + 0.4 * np.sin((xx + 3 * i) / 9.0)[..., None] * np.array([1.0, 0.8, 0.6])
        scene[(np.abs(yy - 36) < 10) & (np.abs(xx - 10 - 4 * i) < 10)] = 0.9
        dark = np.clip(scene * 0.15 + rng.normal(0, 0.01, scene.shape), 0, 1)
        writer.write((dark * 255).astype(np.uint8))
    writer.release()
    return path


def test_enhance_end_to_end_on_onnxruntime(lowlight, clip, tmp_path, capsys):
    out, stats = tmp_path / "enhanced.avi", tmp_path / "stats.json"
    assert main(["enhance", "--model", str(lowlight), "--input", str(clip), "--output", str(out),
                 "--stats", str(stats), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "lowlight_edgetest_v1 FP32 on onnxruntime (cpu)" in printed and "infer" in printed and "p99" in printed
    source, result = read_frames(clip), read_frames(out)
    assert len(result) == len(source) == 24 and result[0].shape == source[0].shape
    assert np.mean(result) > np.mean(source) + 20  # the model brightens; the video shows it
    # Frame by frame, the video holds what the runner computes (up to the codec).
    with load(lowlight / "model.onnx") as runner:
        expected = Pipeline(runner, EnhanceTask()).process(source[5])
    assert np.abs(result[5].astype(float) - expected).mean() < 3.0
    report = json.loads(stats.read_text())
    assert report["frames"] == 24 and report["fps"] > 0 and {"infer", "encode", "latency"} <= set(report["stages"])


def test_pytorch_reference_and_onnxruntime_agree_frame_at_a_time(lowlight, clip):
    frame = read_frames(clip)[3]
    with load(lowlight / "model.onnx") as ort_runner, load(lowlight.parent) as torch_runner:
        assert (ort_runner.backend, torch_runner.backend) == ("onnxruntime", "torch")
        a = Pipeline(ort_runner, EnhanceTask()).process(frame)
        b = Pipeline(torch_runner, EnhanceTask()).process(frame)
    assert a.shape == frame.shape and np.abs(a.astype(int) - b).max() <= 1


class _Identity(IdentityRunner):
    """An engine-like runner (a profile of 32x32 .. 48x64) whose model returns its input."""

    def __init__(self) -> None:
        super().__init__("engine", (32, 32), (48, 64))

    def infer_impl(self, feeds):
        assert 32 <= feeds["image"].shape[2] <= 48 and 32 <= feeds["image"].shape[3] <= 64
        return super().infer_impl(feeds)


def test_frames_outside_an_engine_profile_are_fitted_into_it_and_back(clip, caplog):
    frame = read_frames(clip)[0]  # 72x128: larger than the profile
    pipeline = Pipeline(_Identity(), EnhanceTask())
    out = [pipeline.process(frame) for _ in range(3)]
    assert out[0].shape == frame.shape
    assert np.abs(out[0].astype(int) - frame).mean() < 4  # shrunk to 36x64 and back: the same picture
    assert sum("exceed the model's largest 48x64" in r.message for r in caplog.records) == 1
    tiny = frame[:20, :24]  # smaller than the profile: padded, then cropped back
    assert np.array_equal(pipeline.process(tiny), tiny)


class _Slow(Runner):
    """Wraps a runner and sleeps before each inference: a model slower than the camera."""

    def __init__(self, inner: Runner, seconds: float) -> None:
        super().__init__(inner.sidecar)
        self.inner, self.seconds, self.backend = inner, seconds, inner.backend

    def activate_impl(self):
        self.inner.activate()

    def infer_impl(self, feeds):
        time.sleep(self.seconds)
        return self.inner.infer(feeds)

    def deactivate_impl(self):
        self.inner.deactivate()

    def io_metadata(self):
        return self.inner.io_metadata()


def test_a_live_source_keeps_the_newest_frame_and_counts_drops(lowlight, clip, tmp_path):
    runner = _Slow(load(lowlight / "model.onnx"), 0.05)
    source = open_source(str(clip), live=True)
    sink = open_sink(tmp_path / "live.avi", fps=24)
    with runner:
        summary = Pipeline(runner, EnhanceTask(), source, sink).run()
    sink.close()
    assert summary["dropped"] > 0 and summary["frames"] + summary["dropped"] <= 24
    assert len(read_frames(tmp_path / "live.avi")) == summary["frames"]


def test_a_truncated_video_stops_at_the_damage_and_keeps_what_was_written(lowlight, clip, tmp_path):
    broken = tmp_path / "broken.avi"
    broken.write_bytes(clip.read_bytes()[: clip.stat().st_size // 2])
    out = tmp_path / "out.avi"
    proc = subprocess.run([sys.executable, "-m", "runtime", "enhance", "--model", str(lowlight), "--input",
                           str(broken), "--output", str(out), "--quiet"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1 and "stopped" in proc.stderr
    assert 0 < len(read_frames(out)) < 24


@pytest.mark.parametrize("case", ["wrong-task", "missing-input", "not-a-video", "missing-model", "no-sidecar",
                                  "ibr-with-lowlight", "output-under-a-file", "size-for-folder"])
def test_bad_input_is_one_line_exit_2_and_no_output(case, lowlight, clip, tmp_path):
    out = tmp_path / "out.avi"
    args = ["enhance", "--model", str(lowlight), "--input", str(clip), "--output", str(out), "--quiet"]
    if case == "wrong-task":
        args[0] = "relight"
    elif case == "missing-input":
        args[4] = str(tmp_path / "nope.mp4")
    elif case == "not-a-video":
        (tmp_path / "notes.mp4").write_text("not a video")
        args[4] = str(tmp_path / "notes.mp4")
    elif case == "missing-model":
        args[2] = str(tmp_path / "model.onnx")
    elif case == "no-sidecar":
        (tmp_path / "bare.onnx").write_bytes((lowlight / "model.onnx").read_bytes())
        args[2] = str(tmp_path / "bare.onnx")
    elif case == "ibr-with-lowlight":
        args = ["ibr", "--model", str(lowlight), "--output", str(out), "--quiet"]
    elif case == "output-under-a-file":
        (tmp_path / "afile").write_text("x")
        args[6] = str(tmp_path / "afile" / "out.avi")
    elif case == "size-for-folder":
        args[6] = str(tmp_path / "frames")
        args += ["--output-size", "36x64"]
    proc = subprocess.run([sys.executable, "-m", "runtime", *args], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert not out.exists() and not (tmp_path / "frames").exists()
    if case in ("wrong-task", "ibr-with-lowlight"):
        assert "'lowlight' model" in proc.stderr and "python -m runtime enhance" in proc.stderr


def test_relight_chain_follows_a_light_path(tmp_path, clip):
    torch.manual_seed(4)  # an untrained tiny chain whose output depends on the light (seeds 0 and 3 do not)
    chain = create_model("relight_point", sfsnet={"name": "sfsnet_test", "config": {}},
                         unet={"name": "unet_test", "config": {}})
    export = _export(tmp_path, chain)
    out = tmp_path / "relit.avi"
    assert main(["relight", "--model", str(export), "--input", str(clip), "--output", str(out),
                 "--light-path", "orbit", "--period", "8", "--quiet"]) == 0
    frames = read_frames(out)
    assert len(frames) == 24 and frames[0].shape == (*SIZE, 3)
    with load(export / "model.onnx") as runner:
        # The light moves: the same input frame relit at two points of the orbit differs.
        task = RelightTask(lights=np.array([[1.0, 0.0, 2.6], [-1.0, 0.0, 2.6]], np.float32))
        task.check(runner)
        pipeline = Pipeline(runner, task)
        first, second = pipeline.process(read_frames(clip)[0], 0), pipeline.process(read_frames(clip)[0], 1)
        assert np.abs(first.astype(int) - second).max() >= 5  # an untrained chain: small, but there
        task = RelightTask(lights=np.array([[0.5, -0.3, 2.6]], np.float32))
        task.check(runner)
        with pytest.raises(TaskError, match="point"):
            RelightTask(lights=np.zeros((1, 27), np.float32)).check(runner)
        assert Pipeline(runner, task).process(read_frames(clip)[0]).shape == (*SIZE, 3)
    with pytest.raises(TaskError, match="'relight' model"):
        Pipeline(load(export / "model.onnx"), EnhanceTask())


def test_ibr_renders_the_exported_scene_along_a_path(tmp_path):
    torch.manual_seed(0)
    folder = tmp_path / "run"
    folder.mkdir()
    np.save(folder / "average.npy", np.random.default_rng(0).uniform(0, 2, (40, 48, 3)).astype(np.float32))
    export = _export(folder, create_model("ibr_test"))
    out = tmp_path / "scene.avi"
    assert main(["ibr", "--model", str(export), "--light-path", "sweep", "--frames", "6", "--output", str(out),
                 "--quiet"]) == 0
    frames = read_frames(out)
    assert len(frames) == 6 and frames[0].shape == (40, 48, 3)


def test_load_picks_the_runner_by_suffix_and_folder(lowlight, tmp_path):
    assert load(lowlight).backend == "onnxruntime" and load(lowlight).path.name == "model.onnx"
    assert load(lowlight.parent).backend == "torch"
    assert load(lowlight.parent, backend="torch").backend == "torch"  # the run folder: its best.ckpt
    with pytest.raises(ModelError, match="unknown model type"):
        (tmp_path / "m.bin").write_bytes(b"x")
        load(tmp_path / "m.bin")
    with pytest.raises(ModelError, match="onnxruntime model"):
        load(lowlight / "model.onnx", backend="torch")
    with load(lowlight / "model.onnx", threads=1) as runner:
        (image,) = runner.input_metadata()
        assert image.name == "image" and image.shape == (-1, 3, -1, -1)


def test_import_runtime_stays_lean():
    code = ("import sys, runtime, runtime.tasks, runtime.video, runtime.stats, runtime.load; "
            "heavy = [m for m in ('torch', 'onnxruntime', 'tensorrt', 'pycuda', 'cuda', 'lightning') "
            "if m in sys.modules]; assert not heavy, heavy")
    subprocess.run([sys.executable, "-c", code], check=True)
    proc = subprocess.run([sys.executable, "-m", "runtime", "enhance", "--help"], capture_output=True, text=True)
    assert proc.returncode == 0 and "--smooth" in proc.stdout


def test_denoise_option_steadies_the_output(lowlight, clip, tmp_path):
    """--denoise: the enhanced clip changes less from frame to frame; a strength of 1 or more is refused."""
    plain, steady = tmp_path / "plain.avi", tmp_path / "steady.avi"
    for out, extra in ((plain, []), (steady, ["--denoise", "0.8"])):
        assert main(["enhance", "--model", str(lowlight), "--input", str(clip), "--output", str(out),
                     "--max-frames", "12", "--quiet", *extra]) == 0

    def unsteadiness(frames):
        return np.mean([np.abs(b.astype(float) - a).mean() for a, b in zip(frames, frames[1:])])

    assert unsteadiness(read_frames(steady)) < 0.9 * unsteadiness(read_frames(plain))
    proc = subprocess.run([sys.executable, "-m", "runtime", "enhance", "--model", str(lowlight), "--input", str(clip),
                           "--output", str(tmp_path / "x.avi"), "--denoise", "1"], capture_output=True, text=True)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1 and "--denoise" in proc.stderr


def test_output_size_option_resizes_the_written_video(lowlight, clip, tmp_path):
    out = tmp_path / "small.avi"
    assert main(["enhance", "--model", str(lowlight), "--input", str(clip), "--output", str(out),
                 "--output-size", "36x64", "--max-frames", "5", "--quiet"]) == 0
    frames = read_frames(out)
    assert len(frames) == 5 and frames[0].shape == (36, 64, 3)


class _FailingSink:
    """A sink whose disk fills up after two frames."""

    stop_requested = False

    def __init__(self) -> None:
        self.frames = 0

    def write(self, image):
        self.frames += 1
        if self.frames > 2:
            raise OSError(28, "No space left on device")

    def pump(self):
        pass


def test_a_failing_output_stops_even_an_endless_live_source(lowlight, clip):
    from runtime.video import Frame

    class Endless:  # a camera that never ends
        live, dropped, error, fps, frame_count, name = True, 0, None, 24.0, None, "endless"

        def __init__(self):
            self.image, self.index = read_frames(clip)[0], 0

        def start(self):
            return self

        def read(self, timeout=None):
            self.index += 1
            return Frame(self.index, self.image, time.monotonic())

        def stop(self):
            pass

    started = time.monotonic()
    with load(lowlight / "model.onnx") as runner, pytest.raises(OSError, match="No space"):
        Pipeline(runner, EnhanceTask(), Endless(), _FailingSink()).run()
    assert time.monotonic() - started < 60
