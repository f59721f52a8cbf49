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


# -- relight_edge: the real-time shading-ratio model ----------------------------------------------------------------

_MASKED_SFSNET = {"name": "sfsnet_test", "config": {"mask": True}}


def _edge(**config):
    torch.manual_seed(0)
    return create_model("relight_edge", sfsnet=_MASKED_SFSNET, **config).eval()


def _sphere(h: int, w: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Unit normals (1, 3, h, w) of a sphere facing the camera in the middle of the frame (x right, y down, z towards
    the camera; (0, 0, 1) outside it) and its disk (1, 1, h, w)."""
    ys, xs = torch.meshgrid(torch.arange(h) + 0.5, torch.arange(w) + 0.5, indexing="ij")
    radius = 0.4 * min(h, w)
    x, y = (xs - w / 2) / radius, (ys - h / 2) / radius
    disk = (x * x + y * y < 1.0).float()
    z = torch.sqrt((1.0 - x * x - y * y).clamp_min(0.0))
    normals = torch.stack([x * disk, y * disk, z * disk + (1 - disk)])[None]
    return normals / normals.norm(dim=1, keepdim=True), disk[None, None]


def _fake_decompose(light: np.ndarray, mask=None):
    """A decomposition that sees a frontal sphere lit by ``light``: the shading-ratio path without training."""

    def decompose(image):
        n, _, h, w = image.shape
        normals, disk = _sphere(h, w)
        parts = {"normals": normals.expand(n, -1, -1, -1), "sh": torch.from_numpy(light)[None].expand(n, -1)}
        parts["mask"] = (disk if mask is None else mask(h, w)).expand(n, -1, -1, -1)
        return parts

    return decompose


def _run_edge(model, image, sh, background=0.0, history=None):
    n = image.shape[0]
    history = torch.zeros(n, 28) if history is None else history
    with torch.no_grad():
        return model(image, torch.from_numpy(np.asarray(sh, np.float32))[None].expand(n, -1),
                     torch.full((n, 1), float(background)), history)


def test_edge_config_checks_itself():
    for bad in ({"scale": 0}, {"radius": -1}, {"eps": 0.0}, {"floor": 0.0}, {"max_gain": 0.5},
                {"sfsnet": {"name": "unet_test", "config": {}}}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            create_model("relight_edge", **{"sfsnet": _MASKED_SFSNET, **bad})


def test_edge_gives_back_the_frame_when_the_target_light_is_the_estimated_one(monkeypatch):
    from runtime.core.lighting import sh_preset

    model = _edge(scale=2)
    monkeypatch.setattr(model.sfsnet, "decompose", _fake_decompose(sh_preset("front")))
    image = torch.rand(2, 3, 37, 50)  # odd sizes: padded, averaged and upsampled back
    for background in (0.0, 1.0):
        relit, estimate = _run_edge(model, image, sh_preset("front"), background)
        assert relit.shape == image.shape
        assert torch.allclose(relit, image, atol=1e-5)
        assert torch.allclose(estimate, torch.from_numpy(sh_preset("front"))[None].expand(2, -1))


def test_edge_light_from_the_left_brightens_the_left_of_a_frontal_sphere(monkeypatch):
    from runtime.core.lighting import sh_preset

    model = _edge(scale=4)
    monkeypatch.setattr(model.sfsnet, "decompose", _fake_decompose(sh_preset("front")))
    normals, disk = _sphere(96, 128)
    image = (0.1 + 0.7 * normals[:, 2:3] * disk).expand(-1, 3, -1, -1).contiguous()  # lit from the front

    def left_over_right(relit):
        half = relit.shape[-1] // 2
        inside = disk[0, 0]
        left = relit[0, :, :, :half].mean(0)[inside[:, :half] > 0].mean()
        right = relit[0, :, :, half:].mean(0)[inside[:, half:] > 0].mean()
        return float(left / right)

    from_left, _ = _run_edge(model, image, sh_preset("left"))
    from_right, _ = _run_edge(model, image, sh_preset("right"))
    assert left_over_right(from_left) > 1.2
    assert left_over_right(from_right) < 0.8
    assert left_over_right(from_left) > 1.5 * left_over_right(from_right)


def test_edge_background_weight_keeps_or_relights_what_the_mask_leaves_out(monkeypatch):
    from runtime.core.lighting import sh_preset

    def centre(h, w):  # the person: the middle of the frame only
        mask = torch.zeros(1, 1, h, w)
        mask[:, :, h // 3: 2 * h // 3, w // 3: 2 * w // 3] = 1.0
        return mask

    model = _edge(scale=2)
    monkeypatch.setattr(model.sfsnet, "decompose", _fake_decompose(sh_preset("front"), mask=centre))
    image = torch.rand(1, 3, 96, 144) * 0.8 + 0.1
    kept, _ = _run_edge(model, image, sh_preset("left"), background=0.0)
    relit, _ = _run_edge(model, image, sh_preset("left"), background=1.0)
    # Low-resolution columns 0..23 are 7+ pixels from the mask (columns 24..47): beyond both box filters' reach.
    far = (..., slice(0, 32))
    assert torch.allclose(kept[far], image[far], atol=1e-4)
    assert (relit[far] - image[far]).abs().mean() > 0.02
    middle = (..., slice(44, 52), slice(64, 80))  # 6+ low-resolution pixels inside the mask
    assert (kept[middle] - image[middle]).abs().mean() > 0.02
    assert torch.allclose(kept[middle], relit[middle], atol=1e-4)  # the person is relit either way


def test_edge_history_smooths_the_light_estimate():
    model = _edge()
    image = torch.rand(2, 3, 40, 56)
    previous = torch.randn(2, 27)
    with torch.no_grad():
        own = model.sfsnet.decompose(srgb_to_linear(torch.nn.functional.avg_pool2d(image, 4)))["sh"]
    _, first = _run_edge(model, image, np.zeros(27), history=torch.cat([torch.zeros(2, 1), previous], 1))
    _, held = _run_edge(model, image, np.zeros(27), history=torch.cat([torch.ones(2, 1), previous], 1))
    _, half = _run_edge(model, image, np.zeros(27), history=torch.cat([torch.full((2, 1), 0.5), previous], 1))
    assert torch.allclose(first, own, atol=1e-5)  # a first frame: the frame's own estimate
    assert torch.allclose(held, previous, atol=1e-6)  # weight 1: the history alone
    assert torch.allclose(half, 0.5 * own + 0.5 * previous, atol=1e-5)


def test_edge_exports_with_parity_for_odd_sizes(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    from export.pipeline import ExportOptions, run_export
    from train.families import sample_inputs

    ckpt = save_checkpoint(tmp_path / "edge.ckpt", _edge())
    report = run_export(ExportOptions(checkpoint=str(ckpt), out=str(tmp_path / "out"), fp16=True, engine=False,
                                      min_shape=(17, 17), opt_shape=(48, 64), max_shape=(128, 128), max_batch=2,
                                      parity_shapes=((1, 45, 61), (2, 38, 50)), quiet=True))
    assert report["passed"], report["failed"]
    model, meta = load_checkpoint(ckpt)
    session = ort.InferenceSession(str(tmp_path / "out" / "model.onnx"), providers=["CPUExecutionProvider"])
    for h, w in ((33, 47), (17, 21)):
        feeds = sample_inputs(meta, 2, max(h, 16), max(w, 16), seed=3)
        feeds["image"] = np.random.default_rng(h).random((2, 3, h, w), dtype=np.float32)
        with torch.no_grad():
            expected = [t.numpy() for t in model(*(torch.from_numpy(feeds[s["name"]]) for s in
                                                   meta["contract"]["inputs"]))]
        got = session.run(None, feeds)
        assert got[0].shape == (2, 3, h, w)
        for a, b in zip(got, expected):
            np.testing.assert_allclose(a, b, atol=1e-4)


def test_compose_edge_needs_an_sfsnet_with_a_mask(tmp_path, capsys):
    torch.manual_seed(0)
    masked = save_checkpoint(tmp_path / "masked.ckpt", create_model("sfsnet_test", mask=True).eval())
    plain = save_checkpoint(tmp_path / "plain.ckpt", create_model("sfsnet_test").eval())
    out = tmp_path / "edge.ckpt"
    assert run(main, ["compose", "--edge", "--sfsnet", str(plain), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "person mask" in err and not out.exists()
    assert run(main, ["compose", "--edge", "--sfsnet", str(masked), "--out", str(out)]) == 0
    chain, meta = load_checkpoint(out)
    assert meta["name"] == "relight_edge" and meta["config"]["sfsnet"]["config"]["mask"]
    assert [i["name"] for i in meta["contract"]["inputs"]] == ["image", "sh", "background", "history"]
    assert [o["name"] for o in meta["contract"]["outputs"]] == ["relit", "sh_estimate"]
    sfsnet, _ = load_checkpoint(masked)
    trained = sfsnet.state_dict()
    kept = chain.sfsnet.state_dict()
    # Every weight the ratio uses comes from the trained sfsnet; only the unused residue branch is left out.
    assert set(trained) - set(kept) == {k for k in trained if k.startswith("residue_")} != set()
    assert all(torch.equal(value, trained[key]) for key, value in kept.items())
    image = torch.rand(1, 3, 32, 40)
    with torch.no_grad():
        parts = sfsnet.decompose(srgb_to_linear(torch.nn.functional.avg_pool2d(image, 4)))
        _, estimate = chain(image, torch.zeros(1, 27), torch.zeros(1, 1), torch.zeros(1, 28))
    assert torch.allclose(estimate, parts["sh"], atol=1e-6)
    # A still image through infer: the person relit, the frame's size kept.
    from train.data.images import read_image, write_image

    write_image(tmp_path / "in.png", np.random.default_rng(0).random((30, 42, 3)))
    assert run(main, ["infer", "--model", str(out), "--input", str(tmp_path / "in.png"), "--sh", "left",
                      "--out", str(tmp_path / "out.png")]) == 0
    assert read_image(tmp_path / "out.png").shape == (30, 42, 3)
