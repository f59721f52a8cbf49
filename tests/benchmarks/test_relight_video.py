"""benchmarks.relight_video on a tiny relight_edge checkpoint: every row measured, finite figures, denoising
steadies the output, the strip is written."""

from __future__ import annotations

import json
import math

import cv2
import pytest
import torch

from benchmarks.relight_video import ROWS, main
from train.checkpoint import save_checkpoint
from train.models import create_model


@pytest.fixture(scope="module")
def edge(tmp_path_factory):
    """A tiny untrained relight_edge checkpoint."""
    torch.manual_seed(0)
    model = create_model("relight_edge", sfsnet={"name": "sfsnet_test", "config": {"mask": True}})
    return save_checkpoint(tmp_path_factory.mktemp("edge") / "edge.ckpt", model.eval())


def test_relight_video_measures_every_row_on_a_compressed_portrait_clip(edge, tmp_path, capsys):
    out, strip = tmp_path / "relight_video.json", tmp_path / "strip.png"
    # An intra frame every 3 frames: the clip's frame-to-frame change comes at frame 3 (x264 keeps the noise of
    # its predicted frames nearly as it was on a static scene).
    assert main(["--model", str(edge), "--frames", "6", "--gop", "3", "--size", "128x192", "--threads", "1",
                 "--out", str(out), "--strip", str(strip)]) == 0
    report = json.loads(out.read_text())
    rows = {r["name"]: r for r in report["rows"]}
    assert list(rows) == [name for name, _, _ in ROWS]
    assert report["clip"]["frames"] == 6 and report["clip"]["region_pixels"] > 0
    assert report["input"]["flicker_keyframes"] > 1.0  # a fresh noise pattern at the intra frame: flicker to remove
    figures = ("flicker_ratio", "flicker", "flicker_keyframes_ratio", "flicker_between", "drift_mean", "drift_max",
               "effect", "lag_mean", "lag_max")
    for row in rows.values():
        assert all(math.isfinite(row[k]) and row[k] >= 0 for k in figures), row
        assert row["effect"] > 1.0  # the model relights the face, it does not pass the frame through
    assert rows["off"]["lag_mean"] == 0.0  # the reference of the lag is the row without smoothing
    assert rows["default"]["flicker"] <= rows["off"]["flicker"]
    assert rows["default"]["flicker_ratio"] == pytest.approx(rows["default"]["flicker"] / report["input"]["flicker"])

    printed = capsys.readouterr().out
    assert all(f"| {name} |" in printed for name, _, _ in ROWS) and str(out) in printed
    image = cv2.imread(str(strip))
    assert image is not None and image.shape[1] == 4 * 192  # the input and three rows side by side


def test_relight_video_refuses_an_unknown_light_with_one_line(edge, tmp_path):
    from runtime.core.errors import UserError

    with pytest.raises(UserError, match="--sh"):
        main(["--model", str(edge), "--sh", "sideways", "--out", str(tmp_path / "x.json")])
    assert not (tmp_path / "x.json").exists()
