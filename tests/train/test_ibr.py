"""Image-based relighting (seed 001): normalisation, capture folders, the pixel sampler, the model's two
paths, training, rendering a video, ONNX export, and the CLI's handling of bad input."""

import csv
import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from train.checkpoint import load_checkpoint, save_checkpoint
from runtime.core.cli import run
from train.ibr.capture import read_capture
from train.ibr.data import (PixelSampler, fit_normalisation, hdr_to_normalised, normalised_to_hdr, pixel_coordinates,
                            render_light_stage, split_lights)
from runtime.core.errors import DatasetError
from train.ibr.cli import main
from train.ibr.evaluate import predict_frames
from train.ibr.module import BatchSchedule
from train.models import create_model

ROOT = Path(__file__).resolve().parents[2]
TINY_CAPTURE = ["--lights", "40", "--size", "24x32"]
TINY_TRAIN = ["--steps", "600", "--eval-every", "150", "--batch-size", "1024", "--min-batch-size", "256",
              "--test-every", "8", "--val-every", "10", "--threads", "1", "--quiet"]


def _one_error_line(capsys) -> str:
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


# ------------------------------------------------------------------------------------------ normalisation


def test_normalisation_round_trip_numpy_and_torch():
    rng = np.random.default_rng(0)
    hdr = rng.lognormal(mean=-1.0, sigma=1.5, size=(4, 16, 16, 3)).astype(np.float32)
    scale, exposure = fit_normalisation(hdr, median_target=0.5)
    assert scale == pytest.approx(float(hdr.max()))
    n = hdr_to_normalised(hdr, scale, exposure)
    assert n.dtype == np.float32 and n.min() >= 0 and n.max() == pytest.approx(1.0, abs=1e-6)
    assert np.median(n) == pytest.approx(0.5, abs=0.01)  # the fitted exposure spreads the dark values
    np.testing.assert_allclose(normalised_to_hdr(n, scale, exposure), hdr, rtol=1e-4, atol=1e-6)
    t = torch.from_numpy(hdr)
    nt = hdr_to_normalised(t, scale, exposure)
    np.testing.assert_allclose(nt.numpy(), n, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(normalised_to_hdr(nt, scale, exposure).numpy(), hdr, rtol=1e-4, atol=1e-6)
    model = create_model("ibr_test", hdr_scale=scale, hdr_exposure=exposure)
    np.testing.assert_allclose(model.normalise(t).numpy(), n, rtol=1e-5, atol=1e-6)
    assert (normalised_to_hdr(np.array([-0.3], np.float32), scale, exposure) == 0).all()


# ----------------------------------------------------------------------------------------------- sampler


def test_pixel_sampler_covers_every_light_and_position_and_mixes_lights():
    n, h, w = 6, 4, 5
    grid = np.stack(np.meshgrid(np.arange(n), np.arange(h), np.arange(w), indexing="ij"), -1).astype(np.float32)
    images = torch.from_numpy(grid)  # each target pixel holds its own (image, y, x)
    average = torch.rand(h, w, 3)
    lights = torch.rand(n, 2) * 2 - 1
    sampler = PixelSampler(images, average, lights, seed=3)
    seen = []
    for size in (7, 13, 32, 64, 4):  # a pass is 120 pixels whatever the batch sizes
        features, targets = sampler.sample(size)
        seen.append(targets)
        idx, y, x = targets.long().unbind(1)
        xs, ys = pixel_coordinates(h, w)
        torch.testing.assert_close(features[:, :3], average[y, x])
        torch.testing.assert_close(features[:, 3], xs[x])
        torch.testing.assert_close(features[:, 4], ys[y])
        torch.testing.assert_close(features[:, 5:], lights[idx])
    seen = torch.cat(seen)[: n * h * w].long()
    assert len({tuple(t) for t in seen.tolist()}) == n * h * w  # every (light, y, x) once per pass
    first = seen[:32, 0]
    assert len(first.unique()) >= n - 1  # one batch of 32 pixels already spans nearly all the lights


# --------------------------------------------------------------------------------------------------- model


@pytest.mark.parametrize("name", ["ibr_test", "ibr_edge", "ibr_seed"])
def test_per_pixel_path_equals_whole_frame_path(name):
    torch.manual_seed(0)
    model = create_model(name, hdr_scale=3.0, hdr_exposure=20.0).eval()
    average = torch.rand(2, 3, 5, 7) * 3
    light = torch.rand(2, 2) * 2 - 1
    with torch.no_grad():
        frame = model(average, light)
        planes = model.feature_planes(average, light)
        per_pixel = model.forward_pixels(planes.permute(0, 2, 3, 1).reshape(-1, 7))
    assert frame.shape == (2, 3, 5, 7)
    torch.testing.assert_close(model.denormalise(per_pixel).reshape(2, 5, 7, 3).permute(0, 3, 1, 2), frame,
                               rtol=1e-4, atol=1e-5)
    xs, ys = pixel_coordinates(5, 7)  # the sampler's coordinates are the model's
    torch.testing.assert_close(planes[0, 3, 0], xs)
    torch.testing.assert_close(planes[0, 4, :, 0], ys)


def test_presets_and_config_validation():
    sizes = {name: sum(p.numel() for p in create_model(name).parameters())
             for name in ("ibr_seed", "ibr_edge", "ibr_test")}
    assert sizes["ibr_seed"] > 1_000_000 > sizes["ibr_edge"] > sizes["ibr_test"]
    with pytest.raises(ValueError, match="light_high"):
        create_model("ibr_edge", light_low=(0, 0), light_high=(1, 0))
    with pytest.raises(ValueError, match="hdr_scale"):
        create_model("ibr_edge", hdr_scale=0.0)


def test_onnx_export_with_dynamic_size_matches_pytorch(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    torch.manual_seed(0)
    model = create_model("ibr_edge", hdr_scale=4.0, hdr_exposure=18.0).eval()
    h, w = torch.export.Dim("height", min=4, max=4096), torch.export.Dim("width", min=4, max=4096)
    program = torch.onnx.export(model, (torch.rand(1, 3, 24, 32) * 4, torch.zeros(1, 2)), dynamo=True,
                                input_names=["average", "light"], output_names=["image"],
                                dynamic_shapes={"average": {2: h, 3: w}, "light": None})
    program.save(str(tmp_path / "ibr.onnx"))
    session = ort.InferenceSession(str(tmp_path / "ibr.onnx"), providers=["CPUExecutionProvider"])
    for size in ((24, 32), (37, 53), (64, 16)):
        average = torch.rand(1, 3, *size) * 4
        light = torch.tensor([[0.3, -0.7]])
        with torch.no_grad():
            expected = model(average, light).numpy()
        (got,) = session.run(None, {"average": average.numpy(), "light": light.numpy()})
        assert got.shape == (1, 3, *size)
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)


# --------------------------------------------------------------------------------------------- schedule


def test_batch_size_halves_after_rate_cuts_or_at_the_floor():
    s = BatchSchedule(batch_size=1024, minimum=256, reductions=3, after=2, min_lr=1e-4)
    assert s.update(1e-3, 1e-3, step=10) is None
    assert "learning rate" in s.update(1e-3, 5e-4, step=20) and s.batch_size == 1024
    message = s.update(5e-4, 2.5e-4, step=30)
    assert "batch size 1024 -> 512 after 2 rate cuts" in message and s.batch_size == 512
    assert "batch size 512 -> 256" in s.update(2.5e-4, 1e-4, step=40)  # the rate hit its floor
    assert s.update(1e-4, 1e-4, step=50) is None and s.batch_size == 256  # never below the minimum
    assert s.done(1e-4) and not s.done(2e-4)
    assert [e["event"] for e in s.events].count("batch halved") == 2


# ------------------------------------------------------------------------------------------- captures


@pytest.fixture(scope="module")
def capture_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("captures") / "tiny"
    assert run(main, ["make-capture", "--out", str(folder), *TINY_CAPTURE, "--quiet"]) == 0
    return folder


def _copy_capture(source: Path, dest: Path) -> Path:
    import shutil

    shutil.copytree(source, dest)
    return dest


def test_make_capture_writes_hdr_images_and_lights(capture_dir):
    capture = read_capture(capture_dir)
    assert capture.images.shape == (40, 24, 32, 3) and capture.images.dtype == np.float32
    assert capture.images.max() > 1.0  # unclipped HDR
    with open(capture_dir / "lights.csv") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["image", "x", "y", "z"] and len(rows) == 40
    same = render_light_stage(40, (24, 32), seed=0)
    np.testing.assert_array_equal(same.images, capture.images)  # deterministic, lossless
    assert not list(capture_dir.parent.glob(".*"))  # nothing left of the temporary folder


def test_reads_srgb_png_and_radiance_hdr(tmp_path):
    folder = tmp_path / "cap"
    folder.mkdir()
    cv2.imwrite(str(folder / "a.png"), np.full((8, 10, 3), 128, np.uint8))
    cv2.imwrite(str(folder / "b.hdr"), np.full((8, 10, 3), 2.5, np.float32))
    (folder / "lights.csv").write_text("image,x,y\na.png,0,1\nb.hdr,1.5,-2\n")
    capture = read_capture(folder)
    assert capture.images[0].mean() == pytest.approx(0.2158, abs=1e-3)  # sRGB 128 in linear light
    assert capture.images[1].mean() == pytest.approx(2.5, rel=0.02)
    np.testing.assert_allclose(capture.lights, [[0, 1], [1.5, -2]])


@pytest.mark.parametrize("damage, message", [
    ("missing", "rows without an image file: light_005.npy"),
    ("extra", "images without a row: stray.npy"),
    ("nan", "light_003.npy: the HDR image holds non-finite values"),
    ("size", "images differ in size (most are 24x32; light_007.npy is 20x32)"),
    ("empty", "is empty"),
])
def test_bad_captures_give_one_line_and_exit_2(capture_dir, tmp_path, capsys, damage, message):
    folder = tmp_path / "cap"
    if damage == "empty":
        folder.mkdir()
    else:
        _copy_capture(capture_dir, folder)
    if damage == "missing":
        (folder / "light_005.npy").unlink()
    elif damage == "extra":
        np.save(folder / "stray.npy", np.ones((24, 32, 3), np.float32))
    elif damage == "nan":
        image = np.load(folder / "light_003.npy")
        image[2, 3, 1] = np.nan
        np.save(folder / "light_003.npy", image)
    elif damage == "size":
        np.save(folder / "light_007.npy", np.ones((20, 32, 3), np.float32))
    with pytest.raises(DatasetError):
        read_capture(folder)
    out = tmp_path / "run"
    assert run(main, ["--data", str(folder), *TINY_TRAIN, "--out", str(out)]) == 2
    line = _one_error_line(capsys)
    assert message in line and line.startswith("python -m train.ibr: error:")
    assert not out.exists()


def test_split_is_deterministic_and_disjoint():
    split = split_lights(200)
    assert [len(split[k]) for k in ("train", "val", "test")] == [170, 10, 20]
    assert set(split["test"]) == set(range(5, 200, 10)) and set(split["val"]) == set(range(0, 200, 20))
    with pytest.raises(DatasetError, match="leaves no test lights"):
        split_lights(4)


# ---------------------------------------------------------------------------------------- train + render


@pytest.fixture(scope="module")
def tiny_run(capture_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "ibr"
    assert run(main, ["--data", str(capture_dir), *TINY_TRAIN, "--out", str(out)]) == 0
    return out


def test_training_writes_the_run_and_beats_the_untrained_model(tiny_run, capture_dir):
    for name in ("best.ckpt", "last.ckpt", "average.npy", "metrics.csv", "metrics.json", "loss_curve.png",
                 "test_grid.png"):
        assert (tiny_run / name).is_file(), name
    assert not list(tiny_run.glob("*.tmp")) and not list(tiny_run.glob(".*"))
    metrics = json.loads((tiny_run / "metrics.json").read_text())
    assert metrics["model"] == "ibr_edge" and metrics["held_out_lights"] == 5
    with open(tiny_run / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["step"]) for r in rows] == [150, 300, 450, 600]
    assert float(rows[-1]["train/loss"]) < 0.5 * float(rows[0]["train/loss"])
    # The untrained network (same seed, same constants) on the same held-out lights.
    model, meta = load_checkpoint(tiny_run / "best.ckpt")
    torch.manual_seed(0)
    untrained = create_model("ibr_edge", **meta["config"]).eval()
    capture = read_capture(capture_dir)
    test = capture.subset(split_lights(40, 8, 10)["test"])
    truth = torch.from_numpy(test.images).permute(0, 3, 1, 2)
    average = np.load(tiny_run / "average.npy")
    lights = untrained.normalise_light(torch.from_numpy(test.lights))
    from train.metrics import relative_error

    before = float(relative_error(predict_frames(untrained, average, lights), truth))
    after = float(relative_error(predict_frames(model, average, lights), truth))
    assert after == pytest.approx(metrics["network"]["rel_error"], abs=1e-4)
    assert after < 0.5 * before
    assert after < metrics["baselines"]["average_image"]["rel_error"]
    assert after < metrics["baselines"]["nearest_light"]["rel_error"]


def test_checkpoint_carries_the_contract_and_normalisation(tiny_run):
    model, meta = load_checkpoint(tiny_run)
    assert meta["family"] == "ibr" and meta["name"] == "ibr_edge" and not model.training
    data = meta["data"]
    assert data["average"] == "average.npy" and data["image_size"] == [24, 32]
    assert data["hdr_scale"] > 1.0 and meta["config"]["hdr_scale"] == pytest.approx(data["hdr_scale"])
    assert [i["name"] for i in meta["contract"]["inputs"]] == ["average", "light"]
    assert "rel_error" in meta["metrics"]["test"] and "nearest_light" in meta["metrics"]["test_baselines"]
    assert np.load(tiny_run / "average.npy").shape == (24, 32, 3)


def test_render_writes_a_video_with_every_frame(tiny_run, tmp_path):
    video = tmp_path / "clips" / "orbit.mp4"
    assert run(main, ["render", "--model", str(tiny_run), "--light-path", "orbit", "--frames", "9", "--fps", "12",
                      "--output", str(video), "--quiet"]) == 0
    capture = cv2.VideoCapture(str(video))
    assert capture.isOpened()
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    capture.release()
    assert len(frames) == 9 and frames[0].shape == (24, 32, 3)
    assert np.abs(frames[0].astype(int) - frames[4].astype(int)).mean() > 1  # the light moves
    path = tmp_path / "path.csv"
    path.write_text("x,y\n0,0\n1,1\n-1,0.5\n")
    assert run(main, ["render", "--model", str(tiny_run / "best.ckpt"), "--light-path", str(path),
                      "--output", str(tmp_path / "file.mp4"), "--quiet"]) == 0
    assert int(cv2.VideoCapture(str(tmp_path / "file.mp4")).get(cv2.CAP_PROP_FRAME_COUNT)) == 3
    assert not list(tmp_path.glob(".*")) and not list((tmp_path / "clips").glob(".*"))


def test_render_refuses_a_checkpoint_of_another_family(tmp_path):
    save_checkpoint(tmp_path / "unet.ckpt", create_model("unet_test"))
    video = tmp_path / "out.mp4"
    result = subprocess.run([sys.executable, "-m", "train.ibr", "render", "--model", str(tmp_path / "unet.ckpt"),
                             "--output", str(video)], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "holds a 'unet' model" in lines[0] and "expected a checkpoint of the ibr family" in lines[0]
    assert not video.exists() and not list(tmp_path.glob(".*"))


@pytest.mark.parametrize("case, message", [
    ("no-average", "no average image at"),
    ("bad-path", "--light-path must be orbit, sweep or a .csv file"),
    ("bad-suffix", "--output must end in .mp4"),
])
def test_render_bad_input_gives_one_line_and_exit_2(tiny_run, tmp_path, capsys, case, message):
    import shutil

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    shutil.copy(tiny_run / "best.ckpt", run_dir / "best.ckpt")
    if case != "no-average":
        shutil.copy(tiny_run / "average.npy", run_dir / "average.npy")
    output = tmp_path / ("out.gif" if case == "bad-suffix" else "out.mp4")
    path = "spiral" if case == "bad-path" else "sweep"
    assert run(main, ["render", "--model", str(run_dir), "--light-path", path, "--output", str(output)]) == 2
    assert message in _one_error_line(capsys)
    assert not output.exists()


def test_an_existing_run_is_not_overwritten(tiny_run, capsys):
    before = (tiny_run / "best.ckpt").read_bytes()
    assert run(main, [*TINY_TRAIN, *TINY_CAPTURE, "--out", str(tiny_run)]) == 2
    assert "already holds a run" in _one_error_line(capsys)
    assert (tiny_run / "best.ckpt").read_bytes() == before


def test_help_explains_every_option(capsys):
    for argv, options in (
        ([], ("--data", "--preset", "--steps", "--batch-size", "--lr", "--seed", "--threads", "--overwrite",
              "--quiet", "--batch-reduce-after", "--luminance-weight", "--rel-weight", "make-capture", "render")),
        (["make-capture"], ("--out", "--lights", "--size", "--seed", "--format")),
        (["render"], ("--model", "--light-path", "--output", "--frames", "--fps", "--average")),
    ):
        with pytest.raises(SystemExit) as exit_info:
            main([*argv, "--help"])
        assert exit_info.value.code == 0
        text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines at the terminal width
        for option in options:
            assert option in text, (argv, option)
        if not argv:
            assert "(default: edge)" in text and "(default: 4096)" in text


def test_bad_arguments_exit_2_with_one_line(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--preset", "huge"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'huge'" in _one_error_line(capsys)
    assert run(main, ["--min-batch-size", "512", "--batch-size", "256", "--out", "/nonexistent/x"]) == 2
    assert "--min-batch-size 512 exceeds --batch-size 256" in _one_error_line(capsys)
