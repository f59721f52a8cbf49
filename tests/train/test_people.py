"""Synthetic people for the SfSNet family: a real face mesh on a head with hair, neck, clothes and glasses."""

import numpy as np
import pytest

from train.data.render import _normals
from train.facemesh import FaceModelMissing, template
from train.sfsnet.data import FaceRenderConfig, render_face_sample
from train.sfsnet.people import EYES, NOSE_BRIDGE, NOSE_TIP, person_scene, render_person_dataset, render_person_sample

CFG = FaceRenderConfig(height=128, width=128)
SEEDS = range(12)


@pytest.fixture(scope="module", autouse=True)
def face_template():
    try:
        return template()
    except FaceModelMissing as exc:
        pytest.skip(f"the face template needs the face models: {exc}")


@pytest.fixture(scope="module")
def samples():
    return {seed: render_person_sample(seed, CFG) for seed in SEEDS}


@pytest.fixture(scope="module")
def frontal():
    """Frontal single-person scenes (seeds 0..): scene and the face's width in pixels."""
    scenes = []
    for seed in range(12):
        scene, _ = person_scene(seed, CFG, pose=(0.0, 0.0, 0.0))
        if len(scene.landmarks) == 1:
            scenes.append((scene, float(np.ptp(scene.landmarks[0][:, 0]))))
    return scenes


def test_same_seed_gives_the_same_arrays_with_the_face_renderers_keys_plus_person(samples):
    again = render_person_sample(3, CFG)
    assert again.keys() == samples[3].keys()
    for name, array in again.items():
        assert np.array_equal(array, samples[3][name]), name
    faces = render_face_sample(3, CFG)
    assert again.keys() == faces.keys() | {"person"}
    for name, array in faces.items():
        assert again[name].shape == array.shape and again[name].dtype == array.dtype, name
    assert again["person"].shape == (128, 128) and again["person"].dtype == np.float32
    assert not np.array_equal(render_person_sample(4, CFG)["image"], again["image"])


def test_arrays_are_finite_images_in_range_and_normals_unit_facing_the_camera(samples):
    for seed, sample in samples.items():
        for name, array in sample.items():
            assert np.isfinite(array).all(), (seed, name)
        for name in ("image", "relit_image", "relit_sh_image", "albedo"):
            assert sample[name].min() >= 0.0 and sample[name].max() <= 1.0, (seed, name)
        assert np.allclose(np.linalg.norm(sample["normals"], axis=-1), 1.0, atol=1e-4)
        assert sample["normals"][..., 2].min() >= 0.0


def test_people_cover_their_faces_and_leave_background(samples):
    for seed, sample in samples.items():
        assert set(np.unique(sample["person"])) <= {0.0, 1.0}
        assert (sample["face"] <= sample["person"]).all(), seed
        assert sample["face"].sum() > 100, seed  # every scene shows a face
    person = np.array([s["person"].mean() for s in samples.values()])
    assert np.mean(person < 0.85) >= 0.75, person
    assert person.min() > 0.05


def test_normals_are_the_shaded_height_fields():
    scene, _ = person_scene(5, CFG)
    sample = render_person_sample(5, CFG)
    assert np.array_equal(sample["normals"], _normals(scene.heights, 2.0 / (CFG.width - 1)))
    assert np.array_equal(sample["face"] > 0, scene.face)
    assert np.array_equal(sample["albedo"], scene.albedo)


def test_posing_keeps_the_rest_of_the_scene():
    turned, _ = person_scene(2, CFG, pose=(30.0, 0.0, 0.0))
    frontal, _ = person_scene(2, CFG, pose=(0.0, 0.0, 0.0))
    assert len(turned.landmarks) == len(frontal.landmarks)
    nose, cheeks = NOSE_TIP, (234, 454)
    for face in (turned.landmarks[0], frontal.landmarks[0]):
        assert face[cheeks[0], 0] < face[nose, 0] < face[cheeks[1], 0]
    # Turned to the right, the nose moves towards the right cheek.
    t, f = turned.landmarks[0], frontal.landmarks[0]
    assert (t[nose, 0] - t[cheeks[0], 0]) / np.ptp(t[:, 0]) > (f[nose, 0] - f[cheeks[0], 0]) / np.ptp(f[:, 0])


def _height(scene, point) -> float:
    x, y = np.round(point).astype(int)
    return float(scene.heights[y, x])


def test_frontal_face_has_a_nose_tip_peak_and_eye_sockets_below_the_bridge(frontal):
    assert len(frontal) >= 5
    for scene, width in frontal:
        face = scene.landmarks[0]
        tip = face[NOSE_TIP]
        ys, xs = np.mgrid[0:CFG.height, 0:CFG.width]
        distance = np.hypot(xs - tip[0], ys - tip[1])
        near = scene.heights[distance <= max(1.5, 0.05 * width)].max()
        ring = scene.heights[np.abs(distance - 0.15 * width) < 1.0]
        assert near > ring.max(), "the nose tip is not the highest point around it"
        bridge = _height(scene, face[NOSE_BRIDGE])
        for eye in EYES:
            assert _height(scene, face[list(eye)].mean(0)) < bridge, "an eye socket is not below the nose bridge"


def test_dataset_stacks_the_samples_with_person_independent_of_workers():
    cfg = FaceRenderConfig(height=48, width=64)
    one = render_person_dataset(4, seed=7, cfg=cfg, workers=1)
    two = render_person_dataset(4, seed=7, cfg=cfg, workers=2)
    assert one.keys() == two.keys() == render_person_sample(7, cfg).keys()
    assert one["person"].shape == (4, 48, 64) and one["image"].shape == (4, 48, 64, 3) and one["sh"].shape == (4, 27)
    for name in one:
        assert np.array_equal(one[name], two[name]), name
    assert np.array_equal(one["normals"][2], render_person_sample(9, cfg)["normals"])
