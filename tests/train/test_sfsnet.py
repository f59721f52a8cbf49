"""SfSNet with a shading residue (seed 002): model, synthetic data, SfSNet's layout, the CLI."""

import csv
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from train.checkpoint import load_checkpoint, save_checkpoint
from runtime.core.cli import run
from train.sfsnet.data import (FaceRenderConfig, read_sfsnet_layout, render_face_dataset, render_face_sample,
                               scan_split, write_sfsnet_layout)
from runtime.core.errors import DatasetError
from train.models import create_model
from train.models.sh import sh_shading, sh_shading_numpy
from train.sfsnet.cli import main
from train.sfsnet.evaluate import evaluate

ROOT = Path(__file__).resolve().parents[2]
TINY = ["--preset", "test", "--size", "40", "--train-samples", "48", "--val-samples", "8", "--test-samples", "8",
        "--quiet"]


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "train.sfsnet", *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=300)


# --- model ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["sfsnet_test", "sfsnet_edge"])
def test_decomposition_outputs_unit_normals_albedo_in_range_and_27_coefficients(name):
    torch.manual_seed(0)
    model = create_model(name).eval()
    with torch.no_grad():
        normals, albedo, sh, residue, reconstruction = model(torch.rand(2, 3, 37, 51))
    assert normals.shape == albedo.shape == residue.shape == reconstruction.shape == (2, 3, 37, 51)
    assert sh.shape == (2, 27)
    assert torch.allclose(normals.norm(dim=1), torch.ones(2, 37, 51), atol=1e-4)
    assert albedo.min() >= 0 and albedo.max() <= 1
    expected = albedo * (sh_shading(normals, sh) + residue)
    assert torch.allclose(reconstruction, expected, atol=1e-5)


def test_relighting_replaces_the_sh_coefficients():
    torch.manual_seed(0)
    model = create_model("sfsnet_test").eval()
    image = torch.rand(1, 3, 24, 24)
    with torch.no_grad():
        parts = model.decompose(image)
        same = model.relight(image, parts["sh"], residue_weight=1.0)
        other_sh = torch.zeros(1, 27)
        other_sh[0, [0, 9, 18]] = 1.0
        relit = model.relight(image, other_sh)
    assert torch.allclose(same, parts["reconstruction"], atol=1e-5)
    assert torch.allclose(relit, parts["albedo"] * 0.886227, atol=1e-5)  # uniform light: albedo times H_0


def test_without_the_residue_branch_the_residue_is_zero():
    model = create_model("sfsnet_test", residue=False).eval()
    assert not hasattr(model, "residue_generator")
    with torch.no_grad():
        residue = model(torch.rand(1, 3, 16, 16))[3]
    assert torch.count_nonzero(residue) == 0


# --- synthetic data ---------------------------------------------------------------------------------------


def test_synthetic_faces_are_deterministic_and_consistent_with_the_light_model():
    cfg = FaceRenderConfig(height=48, width=64)
    a, b = render_face_sample(7, cfg), render_face_sample(7, cfg)
    for key in a:
        assert np.array_equal(a[key], b[key]), key
    assert a["image"].shape == (48, 64, 3) and a["sh"].shape == (27,)
    assert np.allclose(np.linalg.norm(a["normals"], axis=-1), 1.0, atol=1e-4)
    assert a["face"].sum() > 0.05 * a["face"].size  # a face takes a real part of the frame
    # image = clip(albedo * (SH shading + residue)): the residue is exactly what 27 coefficients miss.
    rebuilt = np.clip(a["albedo"] * (sh_shading_numpy(a["normals"], a["sh"]) + a["residue"]), 0, 1)
    assert np.abs(rebuilt - a["image"]).max() < 1e-4
    # Shadows and highlights make the residue matter.
    assert np.abs(a["residue"]).mean() > 0.01
    assert not np.allclose(a["relit_image"], a["image"])


def test_dataset_does_not_depend_on_workers():
    cfg = FaceRenderConfig(height=24, width=24)
    one = render_face_dataset(5, seed=3, cfg=cfg, workers=1)
    two = render_face_dataset(5, seed=3, cfg=cfg, workers=2)
    assert all(np.array_equal(one[k], two[k]) for k in one)


# --- SfSNet's folder layout -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def layout(tmp_path_factory):
    root = tmp_path_factory.mktemp("sfs")
    arrays = render_face_dataset(6, cfg=FaceRenderConfig(height=32, width=32), workers=1)
    write_sfsnet_layout(root, {"train": arrays, "test": {k: v[:2] for k, v in arrays.items()}})
    return root, arrays


def test_layout_round_trip(layout):
    root, arrays = layout
    back = read_sfsnet_layout(root, "train")
    assert back["image"].shape == (6, 32, 32, 3) and back["sh"].shape == (6, 27)
    assert np.abs(back["image"] - arrays["image"]).max() <= 0.5 / 255 + 1e-6
    assert np.allclose(back["sh"], arrays["sh"], atol=1e-5)
    angle = np.degrees(np.arccos(np.clip((back["normals"] * arrays["normals"]).sum(-1), -1, 1)))
    assert angle.max() < 1.0  # 8-bit normals lose well under a degree
    assert np.array_equal(back["mask"] > 0.5, arrays["face"] > 0.5)  # SfSNet's mask is the face


def test_layout_without_csv_is_scanned_like_generate_dataset_csv(layout, tmp_path):
    root, _ = layout
    rows = scan_split(root / "train")
    assert len(rows) == 6 and {"face", "normal", "albedo", "light", "mask"} <= rows[0].keys()
    with open(root / "train.csv", newline="") as f:
        assert len(list(csv.DictReader(f))) == 6


def test_read_first_draws_a_fixed_random_subset(layout):
    root, arrays = layout
    a = read_sfsnet_layout(root, "train", read_first=3)
    b = read_sfsnet_layout(root, "train", read_first=3)
    assert len(a["image"]) == 3 and np.array_equal(a["sh"], b["sh"])


def test_layout_errors_name_the_file(layout, tmp_path):
    import shutil

    root, _ = layout
    bad = tmp_path / "bad"
    shutil.copytree(root, bad)
    light = next((bad / "train").glob("*/*_light_*.txt"))
    light.write_text("1 2 3\n")
    with pytest.raises(DatasetError, match="27"):
        read_sfsnet_layout(bad, "train")
    light.write_text(" ".join(["0.1"] * 27))
    import cv2

    face = sorted((bad / "train").glob("*/*_face_*.png"))[-1]  # not the first row, whose size is the reference
    cv2.imwrite(str(face), np.zeros((20, 30, 3), np.uint8))
    with pytest.raises(DatasetError, match=face.name):
        read_sfsnet_layout(bad, "train")


# --- training CLI -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "sfsnet"
    assert run(main, [*TINY, "--epochs", "6", "--lr", "3e-3", "--batch_size", "8", "--wt_decay", "0",
                      "--no_cuda", "--seed", "3", "--details", "tiny residue run", "--log_dir", str(out)]) == 0
    return out


def test_training_writes_the_run_folder(tiny_run):
    for name in ("best.ckpt", "last.ckpt", "metrics.json", "test_grid.png", "interpolation.png", "loss_curve.png"):
        assert (tiny_run / name).is_file(), name
    assert (tiny_run / "details.txt").read_text() == "tiny residue run\n"
    model, meta = load_checkpoint(tiny_run)
    assert meta["family"] == "sfsnet" and meta["contract"]["outputs"][0]["name"] == "normals"
    assert "normal_deg" in meta["metrics"]["test"]


def test_tiny_training_improves_the_decomposition(tiny_run):
    from train.sfsnet.cli import render_splits

    splits, _ = render_splits((40, 40), {"test": 8}, seed=3, workers=1, progress=False)
    trained, _ = load_checkpoint(tiny_run)
    torch.manual_seed(0)
    untrained = create_model("sfsnet_test").eval()
    after, _, _ = evaluate(trained, splits["test"])
    before, _, _ = evaluate(untrained, splits["test"])
    assert after["normal_deg"] < before["normal_deg"] - 10
    assert after["recon_psnr"] > before["recon_psnr"] + 2
    assert after["sh_shading_mae"] < 0.8 * before["sh_shading_mae"]
    assert after["albedo_mae"] < before["albedo_mae"]


def test_load_model_and_interpolate(tiny_run, tmp_path):
    out = tmp_path / "again"
    assert run(main, [*TINY, "--epochs", "1", "--load_model", str(tiny_run), "--log_dir", str(out)]) == 0
    from train.data.images import write_image

    write_image(tmp_path / "face.png", np.random.default_rng(0).random((30, 50, 3)))
    strip = tmp_path / "strip.png"
    assert run(main, ["interpolate", "--model", str(out), "--input", str(tmp_path / "face.png"),
                      "--out", str(strip), "--steps", "4", "--lights", "left,front,right"]) == 0
    import cv2

    image = cv2.imread(str(strip))
    assert image.shape[1] == 5 * 40  # input + 4 lights, at the training size
    # A folder in, a folder of strips out (the seed's interpolate.py works on a directory).
    folder = tmp_path / "faces"
    folder.mkdir()
    for name in ("a.png", "b.jpg"):
        write_image(folder / name, np.random.default_rng(1).random((40, 40, 3)))
    assert run(main, ["interpolate", "--model", str(out), "--input", str(folder), "--out", str(tmp_path / "strips"),
                      "--steps", "3"]) == 0
    assert sorted(p.name for p in (tmp_path / "strips").iterdir()) == ["a_interpolation.png", "b_interpolation.png"]


def test_help_lists_the_seed_options():
    result = _cli("--help")
    assert result.returncode == 0
    for option in ("--batch_size", "--epochs", "--lr", "--wt_decay", "--no_cuda", "--seed", "--read_first",
                   "--details", "--log_dir", "--load_model", "--syn_data"):
        assert option in result.stdout


def test_trains_from_sfsnet_layout(layout, tmp_path):
    root, _ = layout
    out = tmp_path / "run"
    assert run(main, ["--syn_data", str(root), "--preset", "test", "--epochs", "1", "--batch_size", "2",
                      "--read_first", "5", "--log_dir", str(out), "--quiet"]) == 0
    assert (out / "metrics.json").is_file()


@pytest.mark.parametrize("args, message", [
    (["--syn_data", "/no/such/folder"], "no such folder"),
    (["interpolate", "--model", "/no/such.ckpt", "--input", "x.png", "--out", "y.png"], "not found"),
])
def test_bad_input_is_one_line_and_exit_2(args, message):
    result = _cli(*args)
    assert result.returncode == 2
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_wrong_family_for_load_model(tmp_path):
    ckpt = save_checkpoint(tmp_path / "u.ckpt", create_model("unet_test"))
    result = _cli(*TINY, "--epochs", "1", "--load_model", str(ckpt), "--log_dir", str(tmp_path / "r"))
    assert result.returncode == 2 and "expected a checkpoint of the sfsnet family" in result.stderr
    assert not (tmp_path / "r" / "best.ckpt").exists()


def test_existing_run_is_not_overwritten(tiny_run):
    before = (tiny_run / "best.ckpt").read_bytes()
    result = _cli(*TINY, "--log_dir", str(tiny_run))
    assert result.returncode == 2 and "--overwrite" in result.stderr
    assert (tiny_run / "best.ckpt").read_bytes() == before


def test_make_dataset_writes_sfsnet_layout(tmp_path):
    out = tmp_path / "data"
    assert run(main, ["make-dataset", "--out", str(out), "--size", "24", "--train-samples", "3", "--test-samples", "2",
                      "--workers", "1"]) == 0
    assert (out / "train.csv").is_file() and (out / "test.csv").is_file()
    assert len(read_sfsnet_layout(out, "test")["image"]) == 2
    assert run(main, ["make-dataset", "--out", str(out)]) == 2


def test_light_sequences_interpolate_presets_and_sweep_the_key_light():
    from train.models.sh import sh_preset
    from train.sfsnet.cli import light_sequence

    lights, _ = light_sequence("left,front,right", 5)
    assert np.allclose(lights[0], sh_preset("left")) and np.allclose(lights[4], sh_preset("right"))
    assert np.allclose(lights[1], (sh_preset("left") + sh_preset("front")) / 2, atol=1e-6)
    sweep, labels = light_sequence("sweep", 3)
    assert sweep.shape == (3, 27) and labels[0].startswith("-70")
    assert sweep[0, 2] < 0 < sweep[2, 2]  # the x coefficient of red moves from left to right
