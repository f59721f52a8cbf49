import logging
import urllib.error

import pytest
import torch

from train.metrics import image_metrics, luminance, relative_error
from train.unet.losses import CombinedLoss, LossWeights, PerceptualWeightsUnavailable


@pytest.fixture
def no_vgg_weights(monkeypatch):
    """Make the ImageNet weights unavailable, as on a machine without network or cache."""
    import torchvision.models

    def offline(*args, **kwargs):
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setattr(torchvision.models, "vgg16", offline)


def test_missing_vgg_weights_warn_once_and_drop_the_term(no_vgg_weights, caplog):
    with caplog.at_level(logging.WARNING):
        loss = CombinedLoss(LossWeights(mse=1.0, perceptual=0.1))
    assert loss.perceptual is None and loss.weights.perceptual == 0.0
    assert sum("perceptual loss disabled" in r.message for r in caplog.records) == 1
    terms = loss(torch.zeros(1, 3, 8, 8), torch.ones(1, 3, 8, 8))
    assert set(terms) == {"loss", "mse"} and terms["loss"].item() == pytest.approx(1.0)


def test_missing_vgg_weights_fail_when_asked_for_explicitly(no_vgg_weights):
    with pytest.raises(PerceptualWeightsUnavailable, match="VGG16 weights"):
        CombinedLoss(LossWeights(mse=1.0, perceptual=0.1), perceptual_required=True)


def test_weighted_sum_with_luminance():
    loss = CombinedLoss(LossWeights(mse=2.0, perceptual=0.0, luminance=3.0))
    pred, target = torch.zeros(2, 3, 4, 4), torch.full((2, 3, 4, 4), 0.5)
    terms = loss(pred, target)
    assert terms["mse"].item() == pytest.approx(0.25)
    assert terms["luminance"].item() == pytest.approx(0.25)  # luma weights sum to 1
    assert terms["loss"].item() == pytest.approx(2 * 0.25 + 3 * 0.25)


def test_luminance_sees_cross_channel_structure():
    red = torch.zeros(1, 3, 2, 2)
    red[:, 0] = 1
    assert luminance(red).shape == (1, 1, 2, 2)
    assert torch.allclose(luminance(red), torch.tensor(0.2126))


def test_negative_or_all_zero_weights_are_rejected():
    with pytest.raises(ValueError, match="mse"):
        LossWeights(mse=-1)
    with pytest.raises(ValueError, match="at least one"):
        LossWeights(mse=0, perceptual=0, luminance=0)


def test_metrics_on_known_errors():
    target = torch.full((2, 3, 16, 16), 0.5)
    assert relative_error(target, target).item() == 0
    noisy = target + 0.1
    m = image_metrics(noisy, target)
    assert m["psnr"] == pytest.approx(20.0, abs=1e-3)  # MSE 0.01 on a data range of 1
    assert m["rel_error"] == pytest.approx(0.2, abs=1e-5)
    assert image_metrics(target, target)["ssim"] == pytest.approx(1.0)
    # predictions are clipped to the data range before scoring
    assert image_metrics(target + 5, target)["psnr"] == pytest.approx(image_metrics(torch.ones_like(target), target)["psnr"])
