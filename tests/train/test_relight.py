"""The camera relighting chain: plane geometry, compose round trip, SH chain, export, bad input."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from train.checkpoint import load_checkpoint, save_checkpoint
from runtime.core.cli import run
from train.models import create_model
from train.relight.model import linear_to_srgb, plane_geometry, srgb_to_linear
from train.relight.cli import main

ROOT = Path(__file__).resolve().parents[2]


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "train.relight", *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=120)


@pytest.fixture(scope="module")
def parts(tmp_path_factory):
    folder = tmp_path_factory.mktemp("parts")
    torch.manual_seed(0)
    sfsnet = create_model("sfsnet_test").eval()
    unet = create_model("unet_test").eval()
    with torch.no_grad():  # an untrained U-Net renders mostly negative values, clipped to black
        unet.final_conv.bias.fill_(0.5)
    # Non-trivial BatchNorm statistics, so a chain that forgot them would differ.
    for m in sfsnet.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 1.5)
    return sfsnet, unet, save_checkpoint(folder / "s.ckpt", sfsnet), save_checkpoint(folder / "u.ckpt", unet)


def test_plane_geometry_closed_form():
    normals = torch.zeros(1, 3, 5, 9)
    normals[:, 2] = 1.0
    distances, cosines = plane_geometry(normals, torch.tensor([[0.0, 0.0, 2.0]]))
    assert torch.isclose(distances[0, 0, 2, 4], torch.tensor(2.0))  # centre pixel, light straight above
    corner = (1.0**2 + (5 / 9) ** 2 + 2.0**2) ** 0.5  # x = -1, y = -H/W
    assert torch.isclose(distances[0, 0, 0, 0], torch.tensor(corner))
    assert torch.allclose(cosines, 2.0 / distances)


def test_srgb_round_trip():
    x = torch.linspace(0, 1, 101)
    assert torch.allclose(linear_to_srgb(srgb_to_linear(x)), x, atol=1e-5)


def test_compose_round_trip(parts, tmp_path):
    sfsnet, unet, s_ckpt, u_ckpt = parts
    out = tmp_path / "chain.ckpt"
    assert run(main, ["compose", "--sfsnet", str(s_ckpt), "--unet", str(u_ckpt), "--out", str(out)]) == 0
    chain, meta = load_checkpoint(out)
    assert meta["name"] == "relight_point" and meta["family"] == "relight"
    assert [i["name"] for i in meta["contract"]["inputs"]] == ["image", "light"]
    assert set(meta["data"]["composed_from"]) == {"sfsnet", "unet"}
    frame = torch.rand(2, 3, 30, 44)
    light = torch.tensor([[0.4, -0.2, 2.5], [-0.8, 0.3, 3.0]])
    with torch.no_grad():
        normals, albedo = sfsnet.intrinsics(srgb_to_linear(frame))
        distances, cosines = plane_geometry(normals, light)
        expected = linear_to_srgb(unet(distances, cosines, albedo, normals).clamp(0, 1))
        got = chain(frame, light)
    assert torch.allclose(got, expected, atol=1e-5)
    # The light matters: another position gives another frame.
    with torch.no_grad():
        assert not torch.allclose(chain(frame, light.flip(0)), got)


def test_sh_chain_matches_sfsnet_relighting(parts, tmp_path):
    sfsnet, _, s_ckpt, _ = parts
    out = tmp_path / "sh.ckpt"
    assert run(main, ["compose", "--light", "sh", "--linear", "--sfsnet", str(s_ckpt), "--out", str(out)]) == 0
    chain, meta = load_checkpoint(out)
    assert [i["name"] for i in meta["contract"]["inputs"]] == ["image", "sh"]
    frame, sh = torch.rand(1, 3, 20, 20), torch.rand(1, 27)
    with torch.no_grad():
        assert torch.allclose(chain(frame, sh), sfsnet.relight(frame, sh).clamp(0, 1), atol=1e-5)


def test_point_chain_exports_to_onnx_with_dynamic_size(parts, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    sfsnet, unet, _, _ = parts
    chain = create_model("relight_point", sfsnet={"name": "sfsnet_test", "config": {}},
                         unet={"name": "unet_test", "config": {}})
    chain.sfsnet.load_state_dict(sfsnet.state_dict())
    chain.unet.load_state_dict(unet.state_dict())
    chain.eval()
    dims = {"image": {2: torch.export.Dim("height", min=8, max=4096), 3: torch.export.Dim("width", min=8, max=4096)},
            "light": {}}
    program = torch.onnx.export(chain, (torch.rand(1, 3, 32, 48), torch.tensor([[0.1, 0.2, 2.5]])), dynamo=True,
                                input_names=["image", "light"], output_names=["relit"], dynamic_shapes=dims)
    program.save(str(tmp_path / "chain.onnx"))
    session = ort.InferenceSession(str(tmp_path / "chain.onnx"), providers=["CPUExecutionProvider"])
    for h, w in ((32, 48), (45, 61)):
        frame, light = torch.rand(1, 3, h, w), torch.tensor([[-0.3, 0.1, 2.8]])
        with torch.no_grad():
            expected = chain(frame, light).numpy()
        (got,) = session.run(None, {"image": frame.numpy(), "light": light.numpy()})
        np.testing.assert_allclose(got, expected, atol=1e-4)


def test_infer_writes_the_relit_image(parts, tmp_path):
    _, _, s_ckpt, u_ckpt = parts
    chain = tmp_path / "chain.ckpt"
    assert run(main, ["compose", "--sfsnet", str(s_ckpt), "--unet", str(u_ckpt), "--out", str(chain)]) == 0
    from train.data.images import read_image, write_image

    write_image(tmp_path / "in.png", np.random.default_rng(0).random((24, 32, 3)))
    assert run(main, ["infer", "--model", str(chain), "--input", str(tmp_path / "in.png"), "--light", "0.2,0.1,2.5",
                      "--out", str(tmp_path / "out.png")]) == 0
    assert read_image(tmp_path / "out.png").shape == (24, 32, 3)
    assert run(main, ["strip", "--model", str(chain), "--size", "24x40", "--steps", "3",
                      "--out", str(tmp_path / "strip.png")]) == 0
    strip = read_image(tmp_path / "strip.png")
    assert strip.shape == (24, 4 * 40, 3)  # the input, then one frame per light
    frames = strip.reshape(24, 4, 40, 3)
    assert not np.allclose(frames[:, 1], frames[:, 2])  # the light moved, so did the shading


def test_compose_rejects_wrong_families_with_one_line(parts, tmp_path):
    _, _, s_ckpt, u_ckpt = parts
    out = tmp_path / "chain.ckpt"
    result = _cli("compose", "--sfsnet", str(u_ckpt), "--unet", str(s_ckpt), "--out", str(out))
    assert result.returncode == 2
    assert "holds a 'unet' model" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not out.exists() and not list(tmp_path.iterdir())


def test_compose_does_not_overwrite(parts, tmp_path):
    _, _, s_ckpt, u_ckpt = parts
    out = tmp_path / "chain.ckpt"
    out.write_bytes(b"keep me")
    result = _cli("compose", "--sfsnet", str(s_ckpt), "--unet", str(u_ckpt), "--out", str(out))
    assert result.returncode == 2 and out.read_bytes() == b"keep me"
