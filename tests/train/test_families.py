"""Every registered family, without naming one: its tiny presets build, one training step on its own generated
batch trains, and its realistic inputs match its contract."""

import math

import numpy as np
import pytest
import torch

from train.checkpoint import build_metadata
from train.families import Family, get_family, list_families, register_family, sample_inputs
from train.models import create_model, list_models

TINY = [pytest.param(family, name, config, id=name) for family in list_families()
        for name, config in get_family(family).tiny]
TRAINED = [p for p in TINY if get_family(p.values[0]).train_step is not None]


def test_every_family_is_registered_once_with_its_command_and_presets():
    families = list_families()
    assert families
    for name in families:
        family = get_family(name)
        assert family.name == name and family.command == f"train.{name}"
        assert list_models(name), f"{name} registers no presets"
        assert {preset for preset, _ in family.tiny} <= set(list_models(name))


@pytest.mark.parametrize("family, name, config", TINY)
def test_tiny_preset_builds(family, name, config):
    model = create_model(name, **config)
    assert model.family == family and f"{model.family}_{model.preset}" == name
    assert sum(p.numel() for p in model.parameters()) > 0


@pytest.mark.parametrize("family, name, config", TRAINED)
def test_train_step_gives_a_finite_loss_and_one_adam_step_changes_the_weights(family, name, config):
    torch.manual_seed(0)
    model = create_model(name, **config).train()
    before = [p.detach().clone() for p in model.parameters()]
    loss = get_family(family).train_step(model, 0)
    assert isinstance(loss, torch.Tensor) and loss.ndim == 0 and loss.requires_grad
    assert math.isfinite(loss.item())
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-3)
    optimiser.zero_grad()
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert any(g is not None and torch.isfinite(g).all() and g.abs().sum() > 0 for g in grads)
    optimiser.step()
    changed = [not torch.equal(a, p.detach()) for a, p in zip(before, model.parameters())]
    assert any(changed)


@pytest.mark.parametrize("family, name, config", TINY)
def test_sample_inputs_match_the_contract(family, name, config):
    meta = build_metadata(create_model(name, **config))
    feeds = sample_inputs(meta, 2, 32, 48, seed=0)
    specs = meta["contract"]["inputs"]
    assert list(feeds) == [spec["name"] for spec in specs]
    for spec in specs:
        array = feeds[spec["name"]]
        expected = (2, *spec["shape"][1:]) if "shape" in spec else (2, spec["channels"], 32, 48)
        assert array.shape == expected, spec["name"]
        assert array.dtype == np.float32 and np.isfinite(array).all()
        low, high = spec["range"]
        if low is not None:
            assert array.min() >= low - 1e-6, spec["name"]
        if high is not None:
            assert array.max() <= high + 1e-6, spec["name"]
    again = sample_inputs(meta, 2, 32, 48, seed=0)
    assert all(np.array_equal(feeds[k], again[k]) for k in feeds)


def test_registering_a_family_twice_is_an_error():
    existing = get_family(list_families()[0])
    with pytest.raises(ValueError, match="already registered"):
        register_family(existing)
    copy = Family(name=existing.name, task=existing.task, sample_inputs=existing.sample_inputs, tiny=existing.tiny,
                  train_step=existing.train_step, command=existing.command)
    with pytest.raises(ValueError, match="already registered"):
        register_family(copy)
    assert get_family(existing.name) is existing


def test_a_family_without_tiny_presets_is_refused():
    with pytest.raises(ValueError, match="tiny"):
        register_family(Family(name="nofamily", task=None, sample_inputs=lambda *a: {}, tiny=(), train_step=None,
                               command="train.nofamily"))
    assert "nofamily" not in list_families()
