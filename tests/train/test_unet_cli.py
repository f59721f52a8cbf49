"""python -m train.unet end to end on tiny data, and its handling of bad input."""

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from train.checkpoint import load_checkpoint
from runtime.core.cli import run
from train.unet.cli import main

ROOT = Path(__file__).resolve().parents[2]
TINY = ["--preset", "test", "--size", "32", "--train-samples", "12", "--val-samples", "4", "--test-samples", "4",
        "--patches", "4", "--batch-size", "8", "--perceptual-weight", "0", "--grid-images", "2", "--quiet"]


def _cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "train.unet", *args], capture_output=True, text=True,
                          cwd=cwd or ROOT, timeout=300)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "unet"
    assert run(main, [*TINY, "--epochs", "5", "--lr", "3e-3", "--out", str(out)]) == 0
    return out


def test_help_explains_every_option():
    result = _cli("--help")
    assert result.returncode == 0
    for option in ("--preset", "--data", "--epochs", "--batch-size", "--lr", "--patches", "--out", "--devices",
                   "--precision", "--seed", "--perceptual-weight", "--resume"):
        assert option in result.stdout
    assert "default: edge" in result.stdout and "make-dataset" in result.stdout


@pytest.mark.parametrize("args, message", [
    (["--preset", "huge"], "invalid choice: 'huge'"),
    (["--epochs", "0"], "--epochs: 0 must be >= 1"),
    (["--lr", "fast"], "'fast' is not a number"),
    (["--data", "/no/such/folder"], "data path does not exist: /no/such/folder"),
    (["--size", "8"], "sizes are N or HxW with both sides >= 16"),
    (["--precision", "8-bit"], "invalid choice: '8-bit'"),
])
def test_bad_arguments_give_one_line_and_exit_2(args, message, tmp_path):
    result = _cli(*args, "--out", str(tmp_path / "run"))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("args, message", [
    (["--strategy", "warp-speed"], "warp-speed"),
    (["--batch-size", "64"], "--batch-size 64 exceeds the 48 training patches"),
])
def test_impossible_training_settings_give_one_line_and_exit_2(args, message, tmp_path):
    result = _cli(*TINY, *args, "--epochs", "1", "--out", str(tmp_path / "run"))
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr
    assert not (tmp_path / "run" / "best.ckpt").exists()


def test_training_writes_the_run_and_validation_loss_drops(tiny_run):
    for name in ("best.ckpt", "last.ckpt", "metrics.csv", "metrics.json", "test_grid.png", "loss_curve.png"):
        assert (tiny_run / name).is_file(), name
    assert sorted(p.name for p in (tiny_run / "grids").iterdir()) == [f"epoch_{i:03d}.png" for i in range(1, 6)]
    assert not list(tiny_run.glob("*.tmp")) and not list(tiny_run.glob(".*"))
    with open(tiny_run / "metrics.csv") as f:
        val = [float(r["val/loss"]) for r in csv.DictReader(f) if r.get("val/loss")]
    assert len(val) == 5
    assert min(val[1:]) < val[0]


def test_last_checkpoint_is_the_last_epoch_and_resume_continues(tiny_run, tmp_path):
    import shutil

    import torch

    assert torch.load(tiny_run / "last.ckpt", weights_only=True)["epoch"] == 4  # the fifth epoch, best or not
    run_copy = tmp_path / "resumed"
    shutil.copytree(tiny_run, run_copy)
    assert run(main, [*TINY, "--epochs", "6", "--lr", "3e-3", "--out", str(run_copy), "--resume"]) == 0
    assert torch.load(run_copy / "last.ckpt", weights_only=True)["epoch"] == 5
    with open(run_copy / "metrics.csv") as f:
        assert max(int(r["epoch"]) for r in csv.DictReader(f) if r.get("val/loss")) == 5


def test_metrics_json_compares_with_the_baseline(tiny_run):
    metrics = json.loads((tiny_run / "metrics.json").read_text())
    assert metrics["model"] == "unet_test" and metrics["held_out_samples"] == 4
    for key in ("network", "lambertian_baseline"):
        assert set(metrics[key]) == {"psnr", "ssim", "rel_error"}
        assert np.isfinite(list(metrics[key].values())).all()
    assert metrics["psnr_gain_db"] == pytest.approx(
        metrics["network"]["psnr"] - metrics["lambertian_baseline"]["psnr"], abs=0.01)


def test_best_checkpoint_rebuilds_without_training_arguments(tiny_run):
    model, meta = load_checkpoint(tiny_run / "best.ckpt")
    assert meta["name"] == "unet_test" and not model.training
    assert meta["data"]["source"] == "synthetic" and meta["data"]["image_size"] == [32, 32]
    assert meta["data"]["light_intensity"] > 0 and meta["data"]["patch_size"] == [16, 16]
    assert "val/loss" in meta["metrics"]["val"] and "psnr" in meta["metrics"]["test"]


def test_an_existing_run_is_not_overwritten(tiny_run):
    before = (tiny_run / "best.ckpt").read_bytes()
    result = _cli(*TINY, "--epochs", "1", "--out", str(tiny_run))
    assert result.returncode == 2 and "already holds a run" in result.stderr
    assert (tiny_run / "best.ckpt").read_bytes() == before


def test_make_dataset_then_train_from_the_folder(tmp_path):
    data = tmp_path / "data"
    result = _cli("make-dataset", "--out", str(data), "--size", "32", "--train-samples", "6",
                  "--val-samples", "2", "--test-samples", "2")
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in (data / "train").iterdir()) == sorted(
        f"{n}.npy" for n in ("distances", "cosines", "albedo", "normals", "targets", "lights"))
    assert json.loads((data / "meta.json").read_text())["light_intensity"] > 0
    again = _cli("make-dataset", "--out", str(data))
    assert again.returncode == 2 and "already exists" in again.stderr
    out = tmp_path / "run"
    assert run(main, ["--data", str(data), *TINY[8:], "--preset", "test", "--epochs", "1", "--out", str(out)]) == 0
    assert json.loads((out / "metrics.json").read_text())["held_out_samples"] == 2


def test_inconsistent_data_folder_is_reported_by_name(tmp_path):
    data = tmp_path / "data"
    assert _cli("make-dataset", "--out", str(data), "--size", "32", "--train-samples", "4",
                "--val-samples", "1", "--test-samples", "1").returncode == 0
    np.save(data / "train" / "cosines.npy", np.zeros((3, 32, 32), np.float32))
    result = _cli("--data", str(data), *TINY[8:], "--out", str(tmp_path / "run"))
    assert result.returncode == 2
    assert "cosines has 3 samples" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "run" / "best.ckpt").exists()


def test_two_process_ddp_training_on_cpu(tmp_path):
    """Lightning's own DDP strategy (gloo on CPU): no custom distributed code."""
    out = tmp_path / "ddp"
    result = _cli(*TINY, "--epochs", "2", "--batch-size", "4", "--accelerator", "cpu", "--devices", "2",
                  "--strategy", "ddp", "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert "held-out (4 scenes)" in result.stdout
    model, meta = load_checkpoint(out / "best.ckpt")
    assert meta["name"] == "unet_test"


@pytest.mark.needs_cuda
def test_mixed_precision_training_on_a_gpu(tmp_path):
    out = tmp_path / "gpu"
    result = _cli(*TINY, "--epochs", "2", "--accelerator", "gpu", "--devices", "1", "--precision", "16-mixed",
                  "--out", str(out))
    assert result.returncode == 0, result.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert np.isfinite(metrics["network"]["psnr"])
