from dataclasses import replace

import numpy as np
import pytest

from train.data.render import RenderConfig, lambertian_baseline, render_dataset, render_sample, shade_scene

PLAIN = RenderConfig(height=64, width=64, ambient=0.0, specular=0.0, light_intensity=0.5)  # nothing saturates


def _flat(size=64, albedo=0.5):
    return np.zeros((size, size), np.float32), np.full((size, size, 3), albedo, np.float32)


def test_same_seed_same_scene_other_seed_other_scene():
    cfg = RenderConfig(height=48, width=48)
    a, b, c = render_sample(7, cfg), render_sample(7, cfg), render_sample(8, cfg)
    for name in ("distances", "cosines", "albedo", "normals", "targets"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert not np.allclose(a.targets, c.targets)


def test_dataset_does_not_depend_on_worker_count():
    cfg = RenderConfig(height=32, width=32)
    one = render_dataset(5, seed=3, cfg=cfg, workers=1)
    two = render_dataset(5, seed=3, cfg=cfg, workers=2)
    for name in one:
        np.testing.assert_array_equal(one[name], two[name])
    assert one["targets"].shape == (5, 32, 32, 3) and one["distances"].shape == (5, 32, 32)


def test_normals_are_unit_and_come_from_the_geometry():
    s = render_sample(1, RenderConfig(height=64, width=64))
    np.testing.assert_allclose(np.linalg.norm(s.normals, axis=-1), 1.0, atol=1e-5)
    dzdy, dzdx = np.gradient(s.heights, 2.0 / 63)
    expected = np.stack([-dzdx, -dzdy, np.ones_like(dzdx)], -1)
    expected /= np.linalg.norm(expected, axis=-1, keepdims=True)
    np.testing.assert_allclose(s.normals, expected, atol=1e-5)


def test_cosine_map_is_n_dot_l_where_lit():
    s = render_sample(4, RenderConfig(height=64, width=64))
    xs = np.linspace(-1, 1, 64)
    x, y = np.meshgrid(xs, xs)
    to_light = np.stack([s.light[0] - x, s.light[1] - y, s.light[2] - s.heights], -1)
    np.testing.assert_allclose(s.distances, np.linalg.norm(to_light, axis=-1), rtol=1e-5)
    n_dot_l = np.einsum("hwc,hwc->hw", s.normals, to_light / s.distances[..., None])
    lit = n_dot_l > 0
    assert lit.mean() > 0.5
    np.testing.assert_allclose(s.cosines[lit], n_dot_l[lit], atol=1e-5)
    assert (s.cosines[~lit] == 0).all()


def test_inverse_square_falloff():
    z, albedo = _flat()
    near = shade_scene(z, albedo, (0.0, 0.0, 1.0), PLAIN)
    far = shade_scene(z, albedo, (0.0, 0.0, 2.0), PLAIN)
    centre = (32, 32)
    ratio = near.targets[centre].mean() / far.targets[centre].mean()
    expected = (far.distances[centre] / near.distances[centre]) ** 2 * near.cosines[centre] / far.cosines[centre]
    assert ratio == pytest.approx(expected, rel=1e-4)
    assert ratio == pytest.approx(4.0, rel=0.01)


def test_lambertian_baseline_is_exact_without_ambient_specular_and_shadows():
    z, albedo = _flat()
    s = shade_scene(z, albedo, (0.3, -0.2, 2.0), replace(PLAIN, shadows=False))
    baseline = lambertian_baseline(s.distances[..., None], s.cosines[..., None], s.albedo, PLAIN.light_intensity)
    np.testing.assert_allclose(np.clip(baseline, 0, 1), s.targets, atol=1e-5)


def test_a_box_casts_a_shadow_away_from_the_light():
    z, albedo = _flat()
    z[24:40, 24:40] = 0.4  # a block in the middle
    light = (1.2, 0.0, 1.2)  # low, to the right (+x)
    lit = shade_scene(z, albedo, light, replace(PLAIN, shadows=False))
    shadowed = shade_scene(z, albedo, light, PLAIN)
    darker = shadowed.targets.mean(-1) < lit.targets.mean(-1) - 1e-3
    assert darker[32, 10:22].all(), "the ground left of the block should be in shadow"
    assert not darker[32, 44:].any(), "the ground on the light's side must stay lit"
    assert (shadowed.targets <= lit.targets + 1e-6).all(), "shadows only remove light"


def test_specular_and_ambient_add_light_the_formula_misses():
    z, albedo = _flat()
    z += 0.05 * np.sin(np.linspace(0, 6 * np.pi, 64))[None, :].astype(np.float32)
    base_cfg = replace(PLAIN, shadows=False)
    plain = shade_scene(z, albedo, (0.0, 0.0, 2.0), base_cfg)
    glossy = shade_scene(z, albedo, (0.0, 0.0, 2.0), replace(base_cfg, specular=0.3))
    ambient = shade_scene(z, albedo, (0.0, 0.0, 2.0), replace(base_cfg, ambient=0.2))
    assert (glossy.targets >= plain.targets - 1e-6).all() and (glossy.targets - plain.targets).max() > 0.02
    assert (ambient.targets > plain.targets).mean() > 0.99


def test_albedo_comes_from_photos_and_patterns_in_range():
    data = render_dataset(6, seed=0, cfg=RenderConfig(height=32, width=32), workers=1)
    assert data["albedo"].min() >= 0.03 and data["albedo"].max() <= 0.9
    assert 0.0 <= data["targets"].min() and data["targets"].max() <= 1.0
    assert len({round(float(a.mean()), 4) for a in data["albedo"]}) == 6
