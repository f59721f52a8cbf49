"""SfSNet's SH shading layer against closed forms."""

import numpy as np
import pytest
import torch

from train.models.sh import SH_CONSTANTS, directional_sh, sh_basis_numpy, sh_shading, sh_shading_numpy


def _random_normals(n=2, h=9, w=11, seed=0):
    g = torch.Generator().manual_seed(seed)
    v = torch.randn(n, 3, h, w, generator=g)
    return v / v.norm(dim=1, keepdim=True)


def test_constants_are_sfsnets():
    assert np.allclose(SH_CONSTANTS, [0.886227, 1.023327, 1.023327, 1.023327, 0.247708, 0.858086, 0.858086,
                                      0.429043, 0.858086], atol=1e-6)


def test_constant_light_gives_uniform_shading_per_channel():
    sh = torch.zeros(2, 27)
    sh[:, 0], sh[:, 9], sh[:, 18] = 1.0, 0.5, 0.25  # only the constant term of R, G and B
    shading = sh_shading(_random_normals(), sh)
    for c, value in enumerate((1.0, 0.5, 0.25)):
        assert torch.allclose(shading[:, c], torch.full_like(shading[:, c], 0.886227 * value), atol=1e-5)


@pytest.mark.parametrize("k, axis", [(1, 2), (2, 0), (3, 1)])  # z, x, y
def test_single_linear_coefficient_gives_shading_proportional_to_that_normal_component(k, axis):
    normals = _random_normals()
    sh = torch.zeros(2, 27)
    sh[:, 9 + k] = 2.0  # green channel only
    shading = sh_shading(normals, sh)
    assert torch.allclose(shading[:, 1], 2.0 * 1.023327 * normals[:, axis], atol=1e-5)
    assert torch.count_nonzero(shading[:, 0]) == 0 and torch.count_nonzero(shading[:, 2]) == 0


def test_directional_light_approximates_the_clamped_cosine():
    rng = np.random.default_rng(0)
    normals = rng.normal(size=(4000, 3))
    normals /= np.linalg.norm(normals, axis=1, keepdims=True)
    d = np.array([0.3, -0.5, 0.8])
    d /= np.linalg.norm(d)
    shading = sh_shading_numpy(normals, directional_sh(d, (1.0, 1.0, 1.0)))
    truth = np.maximum(normals @ d, 0.0)
    error = np.abs(shading[:, 0] - truth)
    # The second-order approximation of max(cos, 0) is good to about a tenth of the peak.
    assert error.mean() < 0.05 and error.max() < 0.13
    assert np.allclose(shading[:, 0], shading[:, 1]) and np.allclose(shading[:, 0], shading[:, 2])


def test_numpy_and_torch_agree_and_gradients_flow():
    normals = _random_normals(1, 5, 6)
    sh = torch.randn(1, 27, requires_grad=True)
    shading = sh_shading(normals, sh)
    reference = sh_shading_numpy(normals[0].permute(1, 2, 0).numpy(), sh.detach()[0].numpy())
    assert np.allclose(shading[0].detach().permute(1, 2, 0).numpy(), reference, atol=1e-5)
    shading.sum().backward()
    assert torch.isfinite(sh.grad).all() and sh.grad.abs().sum() > 0
    assert sh_basis_numpy(np.array([0.0, 0.0, 1.0])).shape == (9,)


def test_wrong_coefficient_count_is_an_error():
    with pytest.raises(ValueError, match="27"):
        sh_shading(_random_normals(), torch.zeros(2, 9))
