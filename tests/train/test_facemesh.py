"""Face detection, the 468-point face mesh, person masks and mesh rasterisation (train/facemesh.py)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial import ConvexHull, Delaunay

from runtime.core.errors import UserError
from train.data.render import _normals
from train.facemesh import FaceMesh, FaceModelMissing, face_model_dir, mesh_normals, rasterize, template, triangles


def _models_reason() -> str | None:
    try:
        import ai_edge_litert.interpreter  # noqa: F401

        face_model_dir()
    except (ImportError, FaceModelMissing) as error:
        return str(error)
    return None


_REASON = _models_reason()
needs_face_models = pytest.mark.skipif(_REASON is not None, reason=f"face models: {_REASON}")


@pytest.fixture(scope="module")
def mesh() -> FaceMesh:
    return FaceMesh()


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    from skimage.data import astronaut

    return astronaut()


def _angles(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Angle in degrees between unit vectors along the last axis."""
    return np.degrees(np.arccos(np.clip((a * b).sum(axis=-1), -1.0, 1.0)))


def _hemisphere(radius: float, centre: float, spacing: float) -> tuple[np.ndarray, np.ndarray]:
    """Sample points of z = sqrt(R^2 - x^2 - y^2) on a grid and on the rim, Delaunay-triangulated."""
    g = np.arange(-radius, radius + 1e-9, spacing)
    x, y = np.meshgrid(g, g)
    inside = x**2 + y**2 < (radius - spacing / 2) ** 2
    phi = np.linspace(0, 2 * np.pi, 96, endpoint=False)
    xy = np.concatenate([np.stack([x[inside], y[inside]], 1), radius * np.stack([np.cos(phi), np.sin(phi)], 1)])
    z = np.sqrt(np.maximum(radius**2 - (xy**2).sum(1), 0.0))
    points = np.concatenate([xy + centre, z[:, None]], axis=1)
    return points, Delaunay(xy).simplices


# --- detection, landmarks, segmentation -------------------------------------------------------------------


@needs_face_models
def test_astronaut_has_one_face_with_468_landmarks_and_the_nose_nearest(mesh, astronaut):
    detections = mesh.detect(astronaut)
    assert len(detections) == 1
    found = detections[0]
    x0, y0, x1, y1 = found.box
    assert abs((x0 + x1) / 2 - 225) < 12 and abs((y0 + y1) / 2 - 128) < 12
    assert 60 < x1 - x0 < 140 and found.score > 0.8
    assert found.keypoints.shape == (6, 2)
    assert found.keypoints[0, 0] < found.keypoints[1, 0]  # the right eye is on the image's left

    faces = mesh.faces(astronaut)
    assert len(faces) == 1
    face = faces[0]
    assert face.points.shape == (468, 3) and face.points.dtype == np.float32
    assert face.score > 0.9
    margin = 0.25 * max(x1 - x0, y1 - y0)  # the landmark crop is 1.5x the box
    assert (face.points[:, 0] > x0 - margin).all() and (face.points[:, 0] < x1 + margin).all()
    assert (face.points[:, 1] > y0 - margin).all() and (face.points[:, 1] < y1 + margin).all()
    nose, right_side, left_side = face.points[1], face.points[234], face.points[454]
    assert nose[2] > right_side[2] + 20 and nose[2] > left_side[2] + 20  # z towards the camera
    assert right_side[0] < nose[0] < left_side[0]
    assert x0 < nose[0] < x1 and y0 < nose[1] < y1


@needs_face_models
def test_non_square_images_give_the_same_landmarks(mesh, astronaut):
    square = mesh.faces(astronaut)[0].points
    wide = np.concatenate([astronaut, np.full((512, 400, 3), 128, np.uint8)], axis=1)
    cropped = astronaut[40:480, 100:400]
    for points in (mesh.faces(wide)[0].points[:, :2], mesh.faces(cropped)[0].points[:, :2] + [100, 40]):
        error = np.linalg.norm(points - square[:, :2], axis=1)
        assert error.mean() < 2.0 and error.max() < 8.0  # the face is smaller in the wide image's detector input


@needs_face_models
def test_blank_image_has_no_face(mesh):
    grey = np.full((240, 320, 3), 128, np.uint8)
    assert mesh.detect(grey) == []
    assert mesh.faces(grey) == []


@needs_face_models
def test_segment_separates_the_astronaut_from_the_background(mesh, astronaut):
    prob = mesh.segment(astronaut)
    assert prob.shape == astronaut.shape[:2] and prob.dtype == np.float32
    assert 0.0 <= prob.min() and prob.max() <= 1.0
    assert (prob[150:400, 256] > 0.5).mean() > 0.9
    assert prob[:40, :40].mean() < 0.5


@needs_face_models
def test_models_take_only_rgb_uint8(mesh):
    with pytest.raises(UserError, match="uint8 HxWx3"):
        mesh.detect(np.zeros((64, 64), np.float32))


def test_missing_models_say_how_to_install_them(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGELIGHT_FACE_MODELS", str(tmp_path))
    with pytest.raises(FaceModelMissing) as caught:
        face_model_dir()
    message = str(caught.value)
    assert isinstance(caught.value, UserError) and "\n" not in message
    assert "pip install --no-deps mediapipe==0.10.21" in message and "ai-edge-litert" in message
    with pytest.raises(FaceModelMissing):
        FaceMesh().segment(np.zeros((8, 8, 3), np.uint8))


# --- template mesh ----------------------------------------------------------------------------------------


@needs_face_models
def test_template_is_a_centred_face_of_width_two():
    points = template()
    assert points.shape == (468, 3) and points.dtype == np.float32
    assert np.ptp(points[:, 0]) == pytest.approx(2.0, abs=1e-5)
    np.testing.assert_allclose(points.mean(axis=0), 0.0, atol=1e-5)
    assert points[152, 1] > points[1, 1] > points[10, 1]  # chin below nose below forehead: y down
    assert points[1, 2] > points[234, 2] and points[1, 2] > points[454, 2]  # nose towards the camera


@needs_face_models
def test_triangles_index_the_template_without_degenerate_faces():
    tris, points = triangles(), template()
    assert tris.ndim == 2 and tris.shape[1] == 3 and tris.dtype == np.int32 and len(tris) > 800
    assert tris.min() >= 0 and tris.max() < len(points)
    a, b, c = (points[tris[:, k], :2].astype(np.float64) for k in range(3))
    area = 0.5 * ((b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0]))
    assert area.min() > 1e-6
    assert area.sum() == pytest.approx(ConvexHull(points[:, :2]).volume, rel=1e-3)  # tiles the face's outline

    depth, tri, _ = rasterize(points * 50 + 64, tris, 128, 128)  # the mesh draws as one solid face
    assert (tri >= 0).mean() > 0.5 and np.isfinite(depth[64, 64])


# --- rasterisation and normals ----------------------------------------------------------------------------


def test_hemisphere_normals_match_the_sphere_and_the_height_field_convention():
    radius, centre, size = 40.0, 50.0, 100
    points, tris = _hemisphere(radius, centre, spacing=2.0)
    normals, mask = mesh_normals(points, tris, size, size)
    assert normals.shape == (size, size, 3) and normals.dtype == np.float32 and mask.dtype == bool

    y, x = np.mgrid[0:size, 0:size].astype(np.float64) - centre
    r2 = x**2 + y**2
    assert mask[r2 <= (radius - 1) ** 2].all() and not mask[r2 > radius**2].any()
    assert (normals[~mask] == 0).all()
    core = r2 < (0.8 * radius) ** 2  # away from the rim
    height = np.sqrt(np.maximum(radius**2 - r2, 0.0))
    analytic = np.stack([x, y, height], axis=-1) / radius
    assert _angles(normals[core], analytic[core]).max() < 2.0
    assert _angles(normals[core], _normals(height, 1.0)[core]).max() < 2.0
    assert normals[50, 80, 0] > 0.5 and normals[80, 50, 1] > 0.5  # right side faces +x, lower side faces +y

    depth, tri, bary = rasterize(points, tris, size, size)
    np.testing.assert_allclose(depth[core], height[core], atol=0.5)
    corners = points[tris[tri[core]]]  # barycentric weights reproduce the pixel centres
    xy = np.einsum("pk,pkc->pc", bary[core], corners[:, :, :2])
    np.testing.assert_allclose(xy, np.stack([x[core], y[core]], 1) + centre, atol=1e-3)
    assert np.isnan(depth[~mask]).all() and (tri[~mask] == -1).all() and (bary[~mask] == 0).all()


@pytest.mark.parametrize("far_first", [True, False])
def test_nearest_surface_wins_where_meshes_overlap(far_first):
    def square(x0: float, y0: float, side: float, z: float) -> np.ndarray:
        return np.array([[x0, y0, z], [x0 + side, y0, z], [x0 + side, y0 + side, z], [x0, y0 + side, z]])

    far, near = square(5.2, 5.2, 30, 1.0), square(20.2, 20.2, 30, 9.0)
    quads = [far, near] if far_first else [near, far]
    points = np.concatenate(quads)
    tris = np.array([[0, 1, 2], [0, 2, 3], [4, 5, 6], [4, 6, 7]])
    near_tris = {2, 3} if far_first else {0, 1}
    depth, tri, bary = rasterize(points, tris, 64, 64)
    assert depth[30, 30] == pytest.approx(9.0) and tri[30, 30] in near_tris  # the overlap
    assert depth[10, 10] == pytest.approx(1.0) and tri[10, 10] not in near_tris
    assert depth[45, 45] == pytest.approx(9.0)
    assert np.isnan(depth[2, 60]) and tri[2, 60] == -1
    np.testing.assert_allclose(bary[tri >= 0].sum(axis=1), 1.0, atol=1e-5)
