import pytest
import torch

from train.models import create_model, list_models
from train.lowlight.model import Separation


def test_lowlight_presets_are_registered():
    assert {"lowlight_seed", "lowlight_edge", "lowlight_test", "lowlight_edgetest"} <= set(list_models("lowlight"))


@pytest.mark.parametrize("name", ["lowlight_test", "lowlight_edgetest", "lowlight_edge"])
@pytest.mark.parametrize("size", [(32, 32), (37, 53), (64, 48), (5, 9)])
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


def test_edge_keeps_full_resolution_detail():
    """The edge model's curves are smooth, but they are applied to the full-resolution input: a
    one-pixel checkerboard in the input survives in the output."""
    model = create_model("lowlight_edge").eval()
    x = torch.full((1, 3, 64, 64), 0.1)
    x[..., ::2, ::2] += 0.05
    x[..., 1::2, 1::2] += 0.05
    with torch.no_grad():
        y = model(x)
    fine = (y[..., 1:, :] - y[..., :-1, :]).abs().mean()
    assert fine > 0.01


def test_edge_cost_grows_slowly_with_resolution():
    from benchmarks.model_cost import count_macs

    model = create_model("lowlight_edge").eval()
    per_pixel = [count_macs(model, (torch.rand(1, 3, h, w),)) / (h * w) for h, w in ((128, 128), (256, 256), (360, 640))]
    assert per_pixel[2] <= per_pixel[1] <= per_pixel[0]  # attention included: nothing quadratic in the pixels
    assert per_pixel[2] < 8000  # multiply-accumulates per pixel: under 17 GMAC for a 1080p frame
    seed = create_model("lowlight_test").eval()
    seed_pp = [count_macs(seed, (torch.rand(1, 3, s, s),)) / s**2 for s in (64, 128)]
    assert seed_pp[1] > seed_pp[0]  # IllRecNet's full-image attention does grow
