"""python -m train.lowlight end to end on tiny data, and its handling of bad input."""

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

from train.checkpoint import load_checkpoint, save_checkpoint
from runtime.core.cli import run
from train.lowlight.cli import main
from train.models import create_model

ROOT = Path(__file__).resolve().parents[2]
TINY = ["--preset", "edgetest", "--image-size", "32", "--train-samples", "64", "--valid-samples", "8",
        "--batch-size", "8", "--quiet", "--workers", "0"]


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "train.lowlight", *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=300)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    logs = tmp_path_factory.mktemp("logs")
    # the default two (spawned) DataLoader workers here; the other tests train in-process
    assert run(main, ["train", *TINY, "--workers", "2", "--max-epochs", "4", "--lr", "5e-3", "--log-dir", str(logs),
                      "--experiment-name", "tiny"]) == 0
    return logs / "tiny"


def test_training_writes_the_run_and_validation_loss_drops(tiny_run):
    for name in ("best.ckpt", "last.ckpt", "metrics.csv", "loss_curve.png", "bench.json"):
        assert (tiny_run / name).is_file(), name
    assert len(list((tiny_run / "samples" / "compare").glob("*.png"))) == 6
    with open(tiny_run / "metrics.csv") as f:
        val = [float(r["valid/3_total"]) for r in csv.DictReader(f) if r.get("valid/3_total")]
    assert len(val) >= 2 and min(val[1:]) < val[0]
    _, meta = load_checkpoint(tiny_run / "best.ckpt")
    assert meta["family"] == "lowlight" and meta["contract"]["inputs"][0]["name"] == "image"


def test_bench_reports_the_baselines_on_the_same_pairs(tiny_run, tmp_path):
    result = _cli("bench", "--checkpoint", str(tiny_run), "--out", str(tmp_path / "b.json"))
    assert result.returncode == 0, result.stderr
    for name in ("lowlight_edgetest", "input", "gamma 2.2", "adaptive gamma", "CLAHE (L channel)"):
        assert f"| {name} |" in result.stdout
    data = json.loads((tmp_path / "b.json").read_text())
    assert data["pairs"] == 48 and [r["method"] for r in data["rows"]][0] == "lowlight_edgetest"
    if data["lpips"].startswith("n/a"):  # no weights on this machine: no number either
        assert all(r["lpips"] is None for r in data["rows"]) and "| n/a |" in result.stdout
    # the input is darker than the reference, so brightening it must help
    psnr = {r["method"]: r["psnr"] for r in data["rows"]}
    assert psnr["adaptive gamma"] > psnr["input"]


def test_two_stage_separation_runs_frozen_then_trainable(tmp_path):
    assert run(main, ["train", *TINY, "--max-epochs", "1", "--separation", "two-stage", "--log-dir", str(tmp_path),
                      "--experiment-name", "two"]) == 0
    frozen, _ = load_checkpoint(tmp_path / "two" / "frozen" / "best.ckpt")
    trainable, meta = load_checkpoint(tmp_path / "two" / "best.ckpt")
    assert not frozen.config.trainable_separation and trainable.config.trainable_separation
    assert meta["data"]["separation"] == "two-stage"


def test_temporal_consistency_option_trains(tmp_path):
    assert run(main, ["train", *TINY, "--max-epochs", "1", "--temporal-weight", "0.5", "--log-dir", str(tmp_path),
                      "--experiment-name", "t"]) == 0
    with open(tmp_path / "t" / "metrics.csv") as f:
        assert any(r.get("train/4_temporal") for r in csv.DictReader(f))


def test_make_dataset_writes_the_seed_layout_and_training_reads_it(tmp_path):
    data = tmp_path / "data"
    result = _cli("make-dataset", "--out", str(data), "--image-size", "32", "--counts", "12", "4", "3", "2")
    assert result.returncode == 0, result.stderr
    for stage, count in (("1_train", 12), ("2_valid", 4), ("3_bench", 3), ("4_infer", 2)):
        low = sorted(p.name for p in (data / stage / "synthetic" / "low").iterdir())
        high = sorted(p.name for p in (data / stage / "synthetic" / "high").iterdir())
        assert low == high and len(low) == count
    assert run(main, ["train", "--data", str(data), *TINY[:2], "--image-size", "32", "--batch-size", "4",
                      "--max-epochs", "1", "--quiet", "--log-dir", str(tmp_path / "logs"), "--experiment-name", "x"]) == 0
    bench = json.loads((tmp_path / "logs" / "x" / "bench.json").read_text())
    assert bench["pairs"] == 3
    out = tmp_path / "inferred"
    result = _cli("infer", "--checkpoint", str(tmp_path / "logs" / "x"), "--data", str(data), "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in (out / "enhanced").iterdir()) == ["0000.png", "0001.png"]


def test_infer_on_a_folder_of_photos(tiny_run, tmp_path):
    import numpy as np

    from train.data.images import read_image, write_image

    write_image(tmp_path / "in" / "dark.png", np.full((20, 30, 3), 0.05, np.float32))
    result = _cli("infer", "--checkpoint", str(tiny_run), "--input", str(tmp_path / "in"), "--out", str(tmp_path / "o"))
    assert result.returncode == 0, result.stderr
    assert read_image(tmp_path / "o" / "enhanced" / "dark.png").shape == (20, 30, 3)
    assert read_image(tmp_path / "o" / "compare" / "dark.png").shape == (20, 64, 3)


def test_help_lists_the_seed_options():
    result = _cli("train", "--help")
    assert result.returncode == 0
    for option in ("--embed-dim", "--embed_dim", "--num-heads", "--mlp-ratio", "--num-resolution", "--dropout-ratio",
                   "--image-size", "--batch-size", "--max-epochs", "--max_epochs", "--patience", "--log-dir",
                   "--experiment-name", "--precision", "--accelerator", "--train-data-path", "--valid-data-path"):
        assert option in result.stdout, option
    assert "commands: train, valid, bench, video-bench, infer, make-dataset" in _cli("--help").stdout


def test_a_checkpoint_of_another_family_is_refused(tmp_path):
    save_checkpoint(tmp_path / "unet.ckpt", create_model("unet_test"))
    result = _cli("bench", "--checkpoint", str(tmp_path / "unet.ckpt"))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "holds a 'unet' model" in lines[0]


@pytest.mark.parametrize("args, message", [
    (["train", "--data", "/no/such/dir"], "data path does not exist: /no/such/dir"),
    (["train", "--preset", "huge"], "invalid choice: 'huge'"),
    (["bench", "--checkpoint", "/no/such.ckpt"], "checkpoint not found"),
    (["fly"], "unknown command 'fly'"),
    (["train", "--preset", "edge_v1", "--num-resolution", "2"], "--num-resolution does not apply to the 'edge_v1'"),
    (["train", "--preset", "edge", "--embed-dim", "16"], "--embed-dim does not apply to the 'edge' preset"),
    (["train", "--preset", "zerodce"], "invalid choice: 'zerodce'"),
    (["train", "--degradation", "film"], "invalid choice: 'film'"),
])
def test_bad_input_gives_one_line_and_exit_2(args, message, tmp_path):
    result = _cli(*args, "--quiet", "--log-dir", str(tmp_path)) if args[0] == "train" else _cli(*args)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr
    assert not list(tmp_path.rglob("*.ckpt"))


def test_a_folder_without_pairs_is_reported(tmp_path):
    (tmp_path / "data" / "1_train" / "x" / "low").mkdir(parents=True)
    result = _cli("train", "--data", str(tmp_path / "data"), "--quiet", "--log-dir", str(tmp_path / "logs"))
    assert result.returncode == 2
    assert "no high/ folder" in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_separate_train_and_valid_paths_keep_the_benchmark_under_data(tmp_path):
    data = tmp_path / "data"
    assert _cli("make-dataset", "--out", str(data), "--image-size", "32", "--counts", "8", "4", "2", "1").returncode == 0
    assert run(main, ["train", "--data", str(data), "--train-data-path", str(data / "1_train"),
                      "--valid-data-path", str(data / "2_valid"), *TINY[:2], "--image-size", "32",
                      "--batch-size", "4", "--max-epochs", "1", "--quiet", "--log-dir", str(tmp_path / "logs")]) == 0
    assert json.loads((tmp_path / "logs" / "lowlight" / "bench.json").read_text())["pairs"] == 2
    assert len(list((data / "1_train" / "synthetic" / "low").iterdir())) == 8  # the data is untouched
