"""Relighting on a real photograph (``python -m train.sfsnet real-eval``): the report a user reads."""

import json

import cv2
import numpy as np
import pytest
import torch

from runtime.core.cli import run
from train.checkpoint import save_checkpoint
from train.models import create_model
from train.sfsnet.cli import main

FIGURES = ("normal_deg", "flat_normal_deg", "flip", "left_right_under_left", "left_right_under_right", "recon_psnr",
           "decomposition_psnr")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny")
    torch.manual_seed(0)
    return save_checkpoint(folder / "sfsnet.ckpt", create_model("sfsnet_test", mask=True).eval())


def test_bundled_portraits_report_has_every_figure(tiny, tmp_path, capsys):
    assert run(main, ["real-eval", "--model", str(tiny), "--input", "astronaut,camera", "--out", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "real_eval.json").read_text())
    assert report["mean"]["faces"] == 2
    assert [f["name"] for f in report["faces"]] == ["astronaut", "camera"]
    face = report["faces"][0]
    for key in (*FIGURES, "mask_iou"):
        assert np.isfinite(face[key]), key
    assert face["face_pixels"] > 2000  # the astronaut's face at 512x512
    # The mesh of a real face is far from flat: a flat prediction is tens of degrees off.
    assert face["flat_normal_deg"] > 15
    strip = cv2.imread(str(tmp_path / "real_eval.png"))
    assert strip is not None and strip.shape[1] > strip.shape[0]
    assert "normal error" in capsys.readouterr().out


def test_folder_without_faces_is_one_line(tiny, tmp_path, capsys):
    photos = tmp_path / "photos"
    photos.mkdir()
    cv2.imwrite(str(photos / "wall.png"), np.full((120, 160, 3), 128, np.uint8))
    assert run(main, ["real-eval", "--model", str(tiny), "--input", str(photos), "--out", str(tmp_path / "o")]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert any("no face found" in line for line in err)
    assert not (tmp_path / "o" / "real_eval.json").exists()


def test_missing_input(tiny, tmp_path, capsys):
    assert run(main, ["real-eval", "--model", str(tiny), "--input", str(tmp_path / "nope"), "--out", str(tmp_path)]) != 0
    assert "no such file or folder" in capsys.readouterr().err


def test_evaluate_sfsnet_and_chain_on_synthetic_scenes(tiny, tmp_path, capsys):
    chain = save_checkpoint(tmp_path / "edge.ckpt", create_model(
        "relight_edge", sfsnet={"name": "sfsnet_test", "config": {"mask": True}}).eval())
    for model, data, keys in ((tiny, "people", ("normal_deg_face", "mask_iou", "relit_sh_psnr")),
                              (chain, "synthetic", ("normal_deg", "normal_deg_face", "relit_psnr", "relit_sh_psnr"))):
        out = tmp_path / f"{data}.json"
        assert run(main, ["evaluate", "--model", str(model), "--data", data, "--size", "32", "--test-samples", "2",
                          "--out", str(out)]) == 0
        figures = json.loads(out.read_text())["figures"]
        assert all(np.isfinite(figures[k]) for k in keys), figures


def test_real_eval_of_the_edge_chain(tmp_path):
    chain = save_checkpoint(tmp_path / "edge.ckpt", create_model(
        "relight_edge", sfsnet={"name": "sfsnet_test", "config": {"mask": True}}).eval())
    assert run(main, ["real-eval", "--model", str(chain), "--out", str(tmp_path / "o")]) == 0
    face = json.loads((tmp_path / "o" / "real_eval.json").read_text())["faces"][0]
    assert all(np.isfinite(face[k]) for k in (*FIGURES, "mask_iou"))
