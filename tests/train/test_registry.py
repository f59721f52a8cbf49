import pytest
from torch import nn

from train.models import UnknownModelError, create_model, list_models, register_model
from train.unet.model import RelightUNet


def test_unet_presets_are_registered():
    assert {"unet_seed", "unet_edge", "unet_test"} <= set(list_models())
    assert list_models("unet") == ["unet_edge", "unet_seed", "unet_test"]


def test_registering_a_name_twice_is_an_error():
    with pytest.raises(ValueError, match="already registered"):
        register_model(lambda **kw: nn.Identity(), name="unet_edge")


def test_names_must_read_family_preset():
    with pytest.raises(ValueError, match="<family>_<preset>"):
        register_model(lambda **kw: nn.Identity(), name="nounderscore")


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(UnknownModelError, match="unet_edge"):
        create_model("unet_huge")


def test_create_model_applies_overrides_and_tags_the_model():
    model = create_model("unet_test", albedo_channels=1)
    assert isinstance(model, RelightUNet)
    assert model.family == "unet" and model.preset == "test"
    assert model.config.albedo_channels == 1
    assert model.conv_albedo.in_channels == 1


def test_bad_config_values_are_rejected_with_the_field_name():
    with pytest.raises(ValueError, match="widths"):
        create_model("unet_test", widths=(4, 4, 8))
