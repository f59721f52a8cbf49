import math

import pytest
import torch

from train.models import create_model, list_models
from train.lowlight.model import Separation


def test_lowlight_presets_are_registered():
    assert {"lowlight_seed", "lowlight_edge", "lowlight_edge_v1", "lowlight_zerodce", "lowlight_test",
            "lowlight_edgetest", "lowlight_edgetest_v1"} <= set(list_models("lowlight"))


@pytest.mark.parametrize("name", ["lowlight_test", "lowlight_edgetest", "lowlight_edgetest_v1", "lowlight_edge",
                                  "lowlight_zerodce"])
@pytest.mark.parametrize("size", [(32, 32), (37, 53), (64, 48), (5, 9), (1, 1)])
def test_output_matches_input_size(name, size):
    model = create_model(name).eval()
    with torch.no_grad():
        out = model(torch.rand(2, 3, *size))
    assert out.shape == (2, 3, *size) and torch.isfinite(out).all()


def test_seed_preset_exposes_the_seeds_options():
    model = create_model("lowlight_seed", embed_dim=32, num_heads=2, mlp_ratio=2.0, num_resolution=2, dropout_ratio=0.1)
    cfg = model.config
    assert (cfg.embed_dim, cfg.num_heads, cfg.mlp_ratio, cfg.num_resolution, cfg.dropout_ratio) == (32, 2, 2.0, 2, 0.1)
    assert len(model.decoder.down) == 2


def test_bad_head_count_is_rejected():
    with pytest.raises(ValueError, match="multiple of num_heads"):
        create_model("lowlight_test", embed_dim=10, num_heads=4)


def _photo():
    import skimage.data

    return torch.from_numpy(skimage.data.astronaut()[::4, ::4].copy()).permute(2, 0, 1)[None].float() / 255


def test_separation_reconstructs_the_input_and_its_illumination_is_smooth():
    sep = Separation(kernel_size=15, sigma=4.0)
    x = _photo()
    illumination, reflectance = sep(x)
    torch.testing.assert_close(illumination * reflectance, x + sep.eps, rtol=1e-4, atol=1e-5)

    def roughness(t):  # mean absolute difference between neighbouring pixels, in the log domain
        t = torch.log(t)
        return (t[..., 1:, :] - t[..., :-1, :]).abs().mean() + (t[..., :, 1:] - t[..., :, :-1]).abs().mean()

    assert roughness(illumination) < 0.35 * roughness(x + sep.eps)  # about 4x smoother than the photo
    assert roughness(reflectance) > roughness(illumination)


def test_separation_is_frozen_or_trainable():
    assert not create_model("lowlight_test").separation.weight.requires_grad
    assert create_model("lowlight_test", trainable_separation=True).separation.weight.requires_grad


@pytest.mark.parametrize("name", ["lowlight_edge", "lowlight_edge_v1"])
def test_edge_keeps_full_resolution_detail(name):
    """The edge models' maps are smooth, but they are applied to the full-resolution input: a
    one-pixel checkerboard in the input survives in the output."""
    torch.manual_seed(0)
    model = create_model(name).eval()
    x = torch.full((1, 3, 64, 64), 0.1)
    x[..., ::2, ::2] += 0.05
    x[..., 1::2, 1::2] += 0.05
    with torch.no_grad():
        y = model(x)
    fine = (y[..., 1:, :] - y[..., :-1, :]).abs().mean()
    assert fine > 0.01


def test_edge_affine_map_brightens_and_smooths():
    """Gain 4 and offset 0 brighten 4x; gain 0 with an offset replaces a noisy patch with a flat level; the
    gain put on the half-resolution frame brightens as much with less noise."""
    model = create_model("lowlight_edgetest").eval()
    x = 0.05 + 0.02 * torch.rand(1, 3, 32, 48)
    head = model.head
    with torch.no_grad():
        head.weight.zero_()
        g = model.config.max_log_gain * math.atanh(math.log(4) / model.config.max_log_gain)  # a gain of 4
        head.bias.copy_(torch.tensor([g, g, g, 0.0, 0.0, 0.0, 40.0, 40.0, 40.0]))  # all of it on the full resolution
        torch.testing.assert_close(model(x), 4 * x, rtol=1e-3, atol=1e-4)
        head.bias.copy_(torch.tensor([-40.0, -40.0, -40.0, 0.4, 0.4, 0.4, 40.0, 40.0, 40.0]))
        y = model(x)
        assert float(y.std()) < 1e-3 and abs(float(y.mean()) - 0.4) < 2e-3  # the smallest gain is exp(-4)
        head.bias.copy_(torch.tensor([g, g, g, 0.0, 0.0, 0.0, -40.0, -40.0, -40.0]))  # all on the half resolution
        z = model(x)
    torch.testing.assert_close(z.mean(), 4 * x.mean(), rtol=1e-3, atol=1e-4)
    assert float(z.std()) < 0.75 * float((4 * x).std())  # the quieter half-resolution frame, brightened


def test_old_edge_checkpoints_load_as_edge_v1(tmp_path):
    """A checkpoint of the first-generation edge model, saved when it was called lowlight_edge, still loads."""
    from train.checkpoint import load_checkpoint, save_checkpoint

    model = create_model("lowlight_edgetest_v1").eval()
    path = save_checkpoint(tmp_path / "old.ckpt", model)
    payload = torch.load(path, weights_only=True)
    payload["edgelight"]["name"] = "lowlight_edgetest"  # as written before the rename
    torch.save(payload, path)
    loaded, meta = load_checkpoint(path)
    assert meta["name"] == "lowlight_edgetest_v1" and type(loaded).__name__ == "LowLightEdge"
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x))


def test_edge_cost_grows_slowly_with_resolution():
    from benchmarks.model_cost import count_macs

    def per_pixel(name, sizes):
        model = create_model(name).eval()
        return [count_macs(model, (torch.rand(1, 3, h, w),)) / (h * w) for h, w in sizes]

    sizes = ((128, 128), (256, 256), (360, 640))
    v1, v2 = per_pixel("lowlight_edge_v1", sizes), per_pixel("lowlight_edge", sizes)
    assert v1[2] <= v1[1] <= v1[0]  # attention included: nothing quadratic in the pixels
    assert v1[2] < 8000  # multiply-accumulates per pixel: under 17 GMAC for a 1080p frame
    assert max(v2) - min(v2) < 0.02 * v2[0]  # constant per pixel
    assert v2[2] < v1[2] / 4  # the second generation does a quarter of the work or less
    seed = create_model("lowlight_test").eval()
    seed_pp = [count_macs(seed, (torch.rand(1, 3, s, s),)) / s**2 for s in (64, 128)]
    assert seed_pp[1] > seed_pp[0]  # IllRecNet's full-image attention does grow


def test_zerodce_reference_matches_the_published_size():
    """The speed reference has Zero-DCE++'s size (about 10k parameters) and is not offered for training."""
    from train.lowlight.cli import build_train_parser

    model = create_model("lowlight_zerodce")
    assert 9_000 < sum(p.numel() for p in model.parameters()) < 12_000
    preset = next(a for a in build_train_parser()._actions if a.dest == "preset")
    assert "zerodce" not in preset.choices and "edge" in preset.choices and "edge_v1" in preset.choices
