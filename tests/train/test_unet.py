import pytest
import torch

from train.models import create_model


def _inputs(n, h, w, albedo_channels=3):
    g = torch.Generator().manual_seed(0)
    return (
        torch.rand(n, 1, h, w, generator=g) + 1.0,
        torch.rand(n, 1, h, w, generator=g),
        torch.rand(n, albedo_channels, h, w, generator=g),
        torch.nn.functional.normalize(torch.randn(n, 3, h, w, generator=g), dim=1),
    )


@pytest.mark.parametrize("size", [(32, 32), (37, 53), (64, 48), (9, 15), (1, 1)])
def test_output_matches_input_size_including_odd_sizes(size):
    model = create_model("unet_test").eval()
    with torch.no_grad():
        out = model(*_inputs(2, *size))
    assert out.shape == (2, 3, *size)
    assert torch.isfinite(out).all()


def test_edge_preset_handles_odd_video_sizes():
    model = create_model("unet_edge").eval()
    with torch.no_grad():
        out = model(*_inputs(1, 45, 81))
    assert out.shape == (1, 3, 45, 81)


def test_seed_preset_has_the_seeds_widths():
    model = create_model("unet_seed")
    assert [model.conv_distances.out_channels, model.conv_cosines.out_channels,
            model.conv_albedo.out_channels, model.conv_normals.out_channels] == [64, 64, 32, 32]
    assert model.encoder1.conv1.in_channels == 192
    assert [getattr(model, f"encoder{i}").conv1.out_channels for i in range(1, 5)] == [128, 256, 512, 1024]
    assert [getattr(model, f"encoder{i}").conv1.dilation[0] for i in range(1, 5)] == [1, 2, 4, 8]
    assert [model.decoder3.conv1.in_channels, model.decoder2.conv1.in_channels, model.decoder1.conv1.in_channels] \
        == [1536, 768, 384]
    assert model.final_conv.kernel_size == (1, 1) and model.final_conv.out_channels == 3


def test_grey_albedo_variant():
    model = create_model("unet_test", albedo_channels=1).eval()
    with torch.no_grad():
        assert model(*_inputs(1, 16, 16, albedo_channels=1)).shape == (1, 3, 16, 16)


def test_se_bridge_reweights_channels_by_global_context():
    model = create_model("unet_test").eval()
    x = torch.randn(1, 8, 5, 5)
    weights = torch.sigmoid(model.bridge.fc2(torch.relu(model.bridge.fc1(x.mean(dim=(2, 3))))))
    torch.testing.assert_close(model.bridge(x), x * weights[:, :, None, None])


def test_every_input_influences_the_output():
    model = create_model("unet_test").eval()
    inputs = _inputs(1, 16, 16)
    with torch.no_grad():
        reference = model(*inputs)
        for i in range(4):
            changed = list(inputs)
            changed[i] = changed[i] + 0.5
            assert not torch.allclose(model(*changed), reference), f"input {i} has no effect"
