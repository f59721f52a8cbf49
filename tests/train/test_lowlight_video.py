"""Video-level evaluation of the low-light family: its figures, the evaluation-only degradation, clips made
with one camera, and ``python -m train.lowlight video-bench`` end to end."""

import json

import numpy as np
import pytest
import torch

from runtime.core.cli import run
from runtime.core.errors import UserError
from train.checkpoint import save_checkpoint
from train.data.images import read_image
from train.lowlight.cli import main
from train.lowlight.data import SyntheticPairs, auto_expose, camera_degrade, photo_split, random_crop
from train.lowlight.evaluate import eval_set
from train.lowlight.independent import IndependentPairs, independent_degrade
from train.lowlight.video import (
    ClipGenerator,
    blockiness,
    canvas,
    flicker_ratio,
    pan_frame,
    psnr,
    ramp_exposures,
    temporal_difference,
)
from train.models import create_model


@pytest.fixture(scope="module")
def clean_frame():
    scene, _ = canvas(64, 96)
    return pan_frame(scene, 3, 10, 64, 96)


@pytest.fixture(scope="module")
def held_out_crop():
    rng = np.random.default_rng(4)
    (crop,) = random_crop([photo_split("test")[0]], 96, rng, flip=False)
    return auto_expose(crop, rng)


def test_blockiness_sees_8x8_block_steps_but_not_noise(clean_frame):
    rng = np.random.default_rng(0)
    steps = np.kron(rng.normal(0.0, 0.03, (8, 12)), np.ones((8, 8)))[..., None]  # one offset per 8x8 block
    assert blockiness(clean_frame, clean_frame) == 1.0
    assert blockiness(np.clip(clean_frame + steps, 0, 1), clean_frame) > 1.4
    noisy = np.clip(clean_frame + rng.normal(0.0, 0.03, clean_frame.shape), 0, 1)
    assert 0.9 < blockiness(noisy, clean_frame) < 1.1
    shifted = np.roll(steps, 4, axis=(0, 1))  # blocks off the 8-pixel grid are not codec blocks
    assert blockiness(np.clip(clean_frame + shifted, 0, 1), clean_frame) < 1.1


def test_flicker_ratio_of_a_frozen_output_and_of_the_reference(clean_frame):
    rng = np.random.default_rng(1)
    reference = [np.clip(clean_frame + rng.normal(0.0, 0.02, clean_frame.shape), 0, 1) for _ in range(5)]
    assert flicker_ratio([clean_frame] * 5, reference) == 0.0
    assert flicker_ratio(reference, reference) == 1.0
    assert flicker_ratio([f * 2 for f in reference], reference) == pytest.approx(2.0)
    assert temporal_difference(reference) > 0.01


def test_independent_degradation_is_mild_at_normal_exposure_and_dark_at_005(held_out_crop):
    low, target = independent_degrade(held_out_crop, np.random.default_rng(0), exposure=1.0)
    assert low.shape == held_out_crop.shape and low.dtype == np.float32
    assert np.array_equal(target, held_out_crop)  # the target is always the clean image
    assert psnr(low, held_out_crop) > 25
    dark, target = independent_degrade(held_out_crop, np.random.default_rng(0), exposure=0.05)
    assert np.array_equal(target, held_out_crop)
    assert dark.mean() < 0.35 * held_out_crop.mean()
    raw, _ = independent_degrade(held_out_crop, np.random.default_rng(0), exposure=0.05, compress=False)
    assert np.allclose(raw * 255, np.round(raw * 255), atol=1e-3) and not np.array_equal(raw, dark)  # 8-bit, then coded
    again, _ = independent_degrade(held_out_crop, np.random.default_rng(0), exposure=0.05)
    assert np.array_equal(again, dark)


def test_one_camera_per_clip_keeps_the_colour_and_renews_the_noise():
    grey = np.full((32, 48, 3), 0.5, np.float32)
    for degrade in (camera_degrade, independent_degrade):
        clip = [degrade(grey, ClipGenerator((0, 1), (0, t)), exposure=1.0, compress=False)[0] for t in range(3)]
        colour = np.ptp([f.mean(axis=(0, 1)) for f in clip], axis=0).max()
        cameras = [degrade(grey, np.random.default_rng(t), exposure=1.0, compress=False)[0] for t in range(3)]
        assert colour < 0.005 < np.ptp([f.mean(axis=(0, 1)) for f in cameras], axis=0).max(), degrade.__name__
        assert np.abs(clip[1] - clip[0]).mean() > 0.002, degrade.__name__  # new noise on every frame


def test_the_ramp_goes_dark_normal_dark():
    exposures = ramp_exposures(90)
    assert len(exposures) == 90 and exposures[0] == exposures[-1] == pytest.approx(0.02)
    normal = np.flatnonzero(exposures == 1.0)
    assert len(normal) >= 18 and np.all(np.diff(normal) == 1)
    assert np.all(np.diff(exposures[: normal[0] + 1]) > 0) and np.all(np.diff(exposures[normal[-1]:]) < 0)


def test_bench_pairs_of_the_independent_degradation_show_the_same_scenes():
    pairs, source = eval_set("synthetic", "bench", 0, 48, degradation="independent")
    assert isinstance(pairs, IndependentPairs) and source == "synthetic (independent)" and len(pairs) == 48
    classic, _ = eval_set("synthetic", "bench", 0, 48, degradation="classic")
    assert isinstance(classic, SyntheticPairs)
    for i in (0, 1):
        assert torch.equal(pairs[i]["high"], classic[i]["high"])
        assert torch.equal(pairs[i]["low"], pairs[i]["low"]) and not torch.equal(pairs[i]["low"], classic[i]["low"])


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    model = create_model("lowlight_edgetest").eval()
    with torch.no_grad():  # away from the identity it may start at, so that its row differs from the input's
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    path = tmp_path_factory.mktemp("video") / "tiny.ckpt"
    save_checkpoint(path, model)
    return path


def test_video_bench_writes_the_table_json_and_strips(tiny_checkpoint, tmp_path, capsys):
    out = tmp_path / "vb"
    assert run(main, ["video-bench", "--frames", "10", "--static-frames", "4", "--size", "64x96",
                      "--checkpoint", str(tiny_checkpoint), "--out", str(out)]) == 0
    stdout = capsys.readouterr().out
    for degradation in ("camera", "independent"):
        assert f"| {degradation} | input |" in stdout and f"| {degradation} | lowlight_edgetest |" in stdout
        image = read_image(out / f"strip_{degradation}.png")
        assert 3 * 64 < image.shape[0] < 3 * 64 + 60 and 3 * 96 < image.shape[1] < 3 * 96 + 20  # 3 rows, 3 columns
    data = json.loads((out / "video_bench.json").read_text())
    rows = {(r["degradation"], r["method"]): r for r in data["rows"]}
    assert len(rows) == 4 and data["frames"] == 10 and data["static_frames"] == 4
    base, model = rows["camera", "input"], rows["camera", "lowlight_edgetest"]
    assert base["well_exposed_psnr"] is None and "| inf |" in stdout  # the input is its own input
    assert model["well_exposed_psnr"] is not None and model["checkpoint"] == str(tiny_checkpoint)
    for row in rows.values():
        assert row["psnr"] > 5 and 0 < row["ssim"] <= 1 and row["blockiness"] > 0 and row["flicker"] >= 0
    assert rows["independent", "input"]["blockiness"] > 1.2  # MPEG-4 Part 2 blocks show in the dark frames
    assert set(data["metrics"]) >= {"psnr", "ssim", "blockiness", "well_exposed_psnr", "flicker"}


def test_video_bench_bad_input_is_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        run(main, ["video-bench", "--size", "10x20"])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--size" in err[0]
    assert run(main, ["video-bench", "--checkpoint", str(tmp_path / "missing.ckpt"), "--frames", "10"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "missing.ckpt" in err[0]


def test_bench_degradation_applies_to_synthetic_pairs_only(tmp_path):
    with pytest.raises(UserError, match="--degradation applies to --data synthetic"):
        main(["bench", "--checkpoint", str(tmp_path / "x.ckpt"), "--data", str(tmp_path), "--degradation", "independent"])


def test_bench_scores_normal_exposure_pairs_apart(tiny_checkpoint, monkeypatch, capsys):
    from train.lowlight import evaluate

    eval_set = evaluate.eval_set
    monkeypatch.setattr(evaluate, "BENCH_PAIRS", 6)  # the first 6 camera pairs hold some at normal exposure
    monkeypatch.setattr(evaluate, "eval_set", lambda *args, **kwargs: eval_set(*args, **{**kwargs, "size": 64}))
    monkeypatch.setattr(evaluate, "_lpips", lambda: (None, "not measured here"))
    result = evaluate.bench_checkpoint(tiny_checkpoint, "synthetic", degradation="camera")
    rows = {r["method"]: r for r in result["rows"]}
    assert result["pairs"] == 6 and 0 < result["normal_exposure_pairs"] < 6
    assert all(np.isfinite(r["psnr"]) for r in rows.values())  # the input is not scored against itself
    assert rows["input"]["well_exposed_psnr"] is None and rows["lowlight_edgetest"]["well_exposed_psnr"] > 0
    assert rows["adaptive gamma"]["psnr"] > rows["input"]["psnr"]
    assert "well-exposed PSNR vs input (dB) |" in capsys.readouterr().out
