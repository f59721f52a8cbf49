"""Faces for training and evaluation: detection, a 468-point face mesh, person masks and mesh rasterisation.

A tool of ``train/`` and the evaluation scripts; the video runtime never imports it.

Models
------
The three TFLite models that ship inside the ``mediapipe`` 0.10.21 wheel, run with the LiteRT
interpreter (``ai_edge_litert``). The wheel is only the carrier of the model files: it is installed
with ``--no-deps`` and never imported. ``$EDGELIGHT_FACE_MODELS`` points at another folder laid out
like the wheel's ``mediapipe/modules`` (or holding the three files side by side).

* Face detection (BlazeFace, short range): the image is letterboxed to a square, resized to 128x128
  and scaled to [-1, 1]. 896 anchors (stride 8: 16x16 cells x 2, stride 16: 8x8 cells x 6, centres at
  ((x + 0.5) / g, (y + 0.5) / g)) each regress a box (cx, cy, w, h) and six keypoints (right eye, left
  eye, nose tip, mouth, right and left ear tragion) in units of 1/128 of the input; the score is
  ``sigmoid(clip(logit, -100, 100))``. Overlapping boxes (IoU > 0.3) are merged by weighted
  non-maximum suppression: the best box survives, its coordinates the score-weighted mean of its group.
* Face landmarks (Face Mesh): the region of interest is a square centred on the detection box, of
  side 1.5 x the box's longer side, rotated by ``-atan2(-(y1 - y0), x1 - x0)`` so that the line
  between the two eye keypoints is horizontal. It is warped to 192x192 RGB in [0, 1]; the model gives
  468 points (x, y, z) in crop pixels, z a depth at the scale of x (smaller is nearer), and a face
  presence logit. Points go back through the inverse warp; z is scaled by side / 192 and negated, so
  that here z is a HEIGHT TOWARDS THE CAMERA in image pixels, the project's convention (x right,
  y down, z towards the camera).
* Selfie segmentation: the image stretched to 256x256 RGB in [0, 1] gives a person probability,
  resized back to the image.

All coordinates are image pixels with pixel centres at integer coordinates (x = column index).

Mesh
----
``template()`` is a real face: the landmarks found on scikit-image's astronaut, centred and scaled to
a width of 2. ``triangles()`` is the Delaunay triangulation of its (x, y), the faces of the mesh.
``rasterize`` draws a mesh seen along -z by an orthographic camera with a z-buffer (the largest z,
the nearest surface, wins), all triangles at once: every (triangle, pixel) pair of the triangles'
bounding boxes is tested with barycentric coordinates in one vectorised pass. ``mesh_normals``
interpolates area-weighted vertex normals with those barycentric weights, giving normals in the same
convention as the synthetic renderer's height fields (``train/data/render.py``):
n ~ (-dz/dx, -dz/dy, 1).
"""

from __future__ import annotations

import functools
import importlib.metadata
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from runtime.core.errors import UserError

__all__ = ["INSTALL_HINT", "Detection", "FaceLandmarks", "FaceMesh", "FaceModelMissing", "face_model_dir",
           "mesh_normals", "rasterize", "template", "triangles"]

INSTALL_HINT = "pip install ai-edge-litert && pip install --no-deps mediapipe==0.10.21 (the `faces` extra)"
ENV_VAR = "EDGELIGHT_FACE_MODELS"
_MODELS = {
    "detection": "face_detection/face_detection_short_range.tflite",
    "landmarks": "face_landmark/face_landmark.tflite",
    "segmentation": "selfie_segmentation/selfie_segmentation.tflite",
}
_DETECT_SIZE = 128
_LANDMARK_SIZE = 192
_SEGMENT_SIZE = 256
_ROI_SCALE = 1.5
_NMS_IOU = 0.3


class FaceModelMissing(UserError):
    """The face models (the mediapipe wheel's TFLite files) or the LiteRT interpreter are not installed."""


# ----------------------------------------------------------------------------------------------- mesh


@functools.lru_cache(maxsize=1)
def template() -> np.ndarray:
    """A real face's 468 landmarks: those found on scikit-image's astronaut, centred and scaled.

    Returns:
        (468, 3) float32, centred at the mean of x, y, z and scaled so that max(x) - min(x) == 2;
        x right, y down, z towards the camera. Read-only (cached).
    """
    from skimage.data import astronaut

    faces = FaceMesh().faces(astronaut(), max_faces=1)
    if not faces:
        raise FaceModelMissing("the face models found no face on the astronaut image; check the files under "
                               f"{face_model_dir()}")
    points = faces[0].points.astype(np.float64)
    points -= points.mean(axis=0)
    points *= 2.0 / (points[:, 0].max() - points[:, 0].min())
    out = points.astype(np.float32)
    out.flags.writeable = False
    return out


@functools.lru_cache(maxsize=1)
def triangles() -> np.ndarray:
    """The faces of the template mesh: the Delaunay triangulation of ``template()[:, :2]``.

    Returns:
        (T, 3) int32 vertex indices, wound so that (b - a) x (c - a) points towards the camera (+z),
        without degenerate triangles.
        Read-only (cached).
    """
    from scipy.spatial import Delaunay  # type: ignore[import-untyped]

    xy = template()[:, :2].astype(np.float64)
    tris = Delaunay(xy).simplices.astype(np.int32)
    a, b, c = xy[tris[:, 0]], xy[tris[:, 1]], xy[tris[:, 2]]
    cross = (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0])
    tris = tris[np.abs(cross) > 1e-9]  # slivers on collinear hull points
    cross = cross[np.abs(cross) > 1e-9]
    flip = cross < 0
    tris[flip] = tris[flip][:, [0, 2, 1]]
    tris.flags.writeable = False
    return tris


def rasterize(points: np.ndarray, tris: np.ndarray, height: int,
              width: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Z-buffer rasterisation of a triangle mesh seen along -z by an orthographic camera.

    A pixel (column x, row y, centre at integer coordinates) is covered by a triangle when its
    barycentric coordinates are all >= 0 (edges shared by two triangles go to either); of the
    triangles covering it the one with the largest interpolated z (the nearest) wins.

    Args:
        points: (N, 3) vertices: x, y in pixels, z towards the camera (larger = nearer), any units.
        tris: (T, 3) vertex indices.
        height: Rows of the output.
        width: Columns of the output.

    Returns:
        depth (H, W) float32 interpolated z, NaN outside the mesh; tri (H, W) int32 triangle index or -1;
        bary (H, W, 3) float32 barycentric weights of the triangle's three vertices (0 outside).
    """
    points = np.asarray(points, dtype=np.float64)
    tris = np.asarray(tris, dtype=np.int64).reshape(-1, 3)
    depth = np.full(height * width, np.nan, np.float32)
    tri_index = np.full(height * width, -1, np.int32)
    bary = np.zeros((height * width, 3), np.float32)
    shape = (height, width)
    if len(tris) == 0 or height <= 0 or width <= 0:
        return depth.reshape(shape), tri_index.reshape(shape), bary.reshape(shape + (3,))

    # Barycentric weights and depth are affine in (x, y): value = P x + Q y + R, one row of (l0, l1, l2, z).
    v = points[tris]  # (T, 3 vertices, 3)
    ax, ay, bx, by, cx, cy = v[:, 0, 0], v[:, 0, 1], v[:, 1, 0], v[:, 1, 1], v[:, 2, 0], v[:, 2, 1]
    den = (by - cy) * (ax - cx) + (cx - bx) * (ay - cy)
    y0 = np.maximum(np.ceil(v[:, :, 1].min(axis=1)), 0)
    y1 = np.minimum(np.floor(v[:, :, 1].max(axis=1)), height - 1)
    x0 = np.maximum(np.ceil(v[:, :, 0].min(axis=1)), 0)
    x1 = np.minimum(np.floor(v[:, :, 0].max(axis=1)), width - 1)
    keep = np.flatnonzero((y1 >= y0) & (x1 >= x0) & (np.abs(den) > 1e-12) & np.isfinite(den))
    if len(keep) == 0:
        return depth.reshape(shape), tri_index.reshape(shape), bary.reshape(shape + (3,))
    with np.errstate(divide="ignore", invalid="ignore"):
        inv = 1.0 / den
    p0, q0 = (by - cy) * inv, (cx - bx) * inv
    p1, q1 = (cy - ay) * inv, (ax - cx) * inv
    r0, r1 = -(p0 * cx + q0 * cy), -(p1 * cx + q1 * cy)
    pq = np.stack([p0, q0, r0, p1, q1, r1, -p0 - p1, -q0 - q1, 1.0 - r0 - r1], axis=1).reshape(-1, 3, 3)
    pz = np.einsum("tk,tkc->tc", v[:, :, 2], pq)  # z = sum_k l_k z_k
    coef = np.concatenate([pq, pz[:, None, :]], axis=1)  # (T, 4 values, 3): P, Q, R

    # Scanlines: each triangle's rows, and on each row the span of x where all three weights are >= 0.
    heights = (y1[keep] - y0[keep] + 1).astype(np.int64)
    row_t = np.repeat(keep, heights)
    row_y = y0[row_t] + (np.arange(int(heights.sum())) - np.repeat(np.cumsum(heights) - heights, heights))
    slope = coef[row_t, :, 0]  # (rows, 4)
    offset = coef[row_t, :, 1] * row_y[:, None] + coef[row_t, :, 2]
    slack = 1e-9 * (1.0 + np.abs(offset[:, :3]))
    with np.errstate(divide="ignore", invalid="ignore"):
        bound = -(offset[:, :3] + slack) / slope[:, :3]
        lower = np.where(slope[:, :3] > 0, bound, -np.inf).max(axis=1)
        upper = np.where(slope[:, :3] < 0, bound, np.inf).min(axis=1)
    flat_out = ((slope[:, :3] == 0) & (offset[:, :3] < -slack)).any(axis=1)
    lo = np.maximum(np.ceil(lower), x0[row_t])
    hi = np.minimum(np.floor(upper), x1[row_t])
    rows = np.flatnonzero((hi >= lo) & ~flat_out)
    if len(rows) == 0:
        return depth.reshape(shape), tri_index.reshape(shape), bary.reshape(shape + (3,))
    spans = (hi[rows] - lo[rows] + 1).astype(np.int64)
    r = np.repeat(rows, spans)
    px = lo[r] + (np.arange(int(spans.sum())) - np.repeat(np.cumsum(spans) - spans, spans))
    values = slope[r] * px[:, None] + offset[r]  # (pixels, 4): l0, l1, l2, z
    pix = row_y[r].astype(np.int64) * width + px.astype(np.int64)
    t = row_t[r]
    z = values[:, 3]

    # Z-buffer: nearest (largest z) wins; ties resolved by one write of the winning pair's index.
    zbuf = np.full(height * width, -np.inf)
    np.maximum.at(zbuf, pix, z)
    win = np.flatnonzero(z >= zbuf[pix])
    owner = np.empty(height * width, np.int64)
    owner[pix[win]] = win
    covered = np.flatnonzero(np.isfinite(zbuf))
    pair = owner[covered]
    depth[covered] = z[pair]
    tri_index[covered] = t[pair]
    weights = np.clip(values[pair, :3], 0.0, 1.0)
    bary[covered] = weights / weights.sum(axis=1, keepdims=True)
    return depth.reshape(shape), tri_index.reshape(shape), bary.reshape(shape + (3,))


def mesh_normals(points: np.ndarray, tris: np.ndarray, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-pixel normals of a mesh: area-weighted vertex normals interpolated and renormalised.

    Args:
        points: (N, 3) vertices in pixels: x right, y down, z towards the camera.
        tris: (T, 3) vertex indices.
        height: Rows of the output.
        width: Columns of the output.

    Returns:
        normals (H, W, 3) float32 unit vectors (x right, y down, z towards the camera, z > 0 on the
        visible side; zeros outside), mask (H, W) bool pixels covered by the mesh.
    """
    points = np.asarray(points, dtype=np.float64)
    tris = np.asarray(tris, dtype=np.int64).reshape(-1, 3)
    _, tri_index, bary = rasterize(points, tris, height, width)
    mask = tri_index >= 0
    normals = np.zeros((height, width, 3), np.float32)
    if not mask.any():
        return normals, mask

    v = points[tris]
    face = np.cross(v[:, 1] - v[:, 0], v[:, 2] - v[:, 0])  # length = twice the area
    face *= np.where(face[:, 2:3] < 0, -1.0, 1.0)  # orient towards the camera
    vertex = np.zeros_like(points)
    for k in range(3):
        np.add.at(vertex, tris[:, k], face)
    vertex /= np.maximum(np.linalg.norm(vertex, axis=1, keepdims=True), 1e-12)

    covered = np.flatnonzero(mask)
    corners = tris[tri_index.ravel()[covered]]
    weights = bary.reshape(-1, 3)[covered]
    vertex = vertex.astype(np.float32)
    n = (weights[:, 0:1] * vertex[corners[:, 0]] + weights[:, 1:2] * vertex[corners[:, 1]]
         + weights[:, 2:3] * vertex[corners[:, 2]])
    n /= np.maximum(np.sqrt((n * n).sum(axis=1, keepdims=True)), 1e-12)
    normals.reshape(-1, 3)[covered] = n
    return normals, mask


# --------------------------------------------------------------------------------------------- models


def face_model_dir() -> Path:
    """The folder holding the face models: ``$EDGELIGHT_FACE_MODELS`` when set, else the mediapipe wheel's modules.

    Raises:
        FaceModelMissing: The folder or one of the three model files is missing.
    """
    env = os.environ.get(ENV_VAR)
    if env:
        folder = Path(env).expanduser()
        where = f"${ENV_VAR}={env}"
    else:
        try:
            folder = Path(str(importlib.metadata.distribution("mediapipe").locate_file("mediapipe/modules")))
        except importlib.metadata.PackageNotFoundError:
            raise FaceModelMissing(
                f"face models not found (the mediapipe wheel is not installed); run: {INSTALL_HINT}") from None
        where = str(folder)
    for relative in _MODELS.values():
        if _find_model(folder, relative) is None:
            raise FaceModelMissing(f"face model {Path(relative).name} not found in {where}; run: {INSTALL_HINT}")
    return folder


def _find_model(folder: Path, relative: str) -> Path | None:
    for candidate in (folder / relative, folder / Path(relative).name):
        if candidate.is_file():
            return candidate
    return None


@dataclass(frozen=True)
class Detection:
    """One face found by the detector, in image pixels."""

    box: tuple[float, float, float, float]
    """(x0, y0, x1, y1)."""
    score: float
    """Detector confidence in [0, 1]."""
    keypoints: np.ndarray
    """(6, 2) x, y: right eye, left eye, nose tip, mouth, right ear tragion, left ear tragion."""


@dataclass(frozen=True)
class FaceLandmarks:
    """The 468 Face Mesh points of one face."""

    points: np.ndarray
    """(468, 3) float32: x, y image pixels, z height towards the camera in pixels (larger = nearer)."""
    score: float
    """Face presence probability in [0, 1]."""


@functools.lru_cache(maxsize=1)
def _anchors() -> np.ndarray:
    """(896, 2) anchor centres of the short-range detector, in units of the input side."""
    out = []
    for grid, per_cell in ((16, 2), (8, 6)):
        ys, xs = np.meshgrid((np.arange(grid) + 0.5) / grid, (np.arange(grid) + 0.5) / grid, indexing="ij")
        centres = np.stack([xs.ravel(), ys.ravel()], axis=1)
        out.append(np.repeat(centres, per_cell, axis=0))
    return np.concatenate(out).astype(np.float64)


def _sigmoid(logit: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(logit, -100.0, 100.0)))


def _check_rgb(rgb: np.ndarray) -> np.ndarray:
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8 or min(rgb.shape[:2]) < 1:
        raise UserError(f"face models need a uint8 HxWx3 RGB image, got {rgb.dtype} {rgb.shape}")
    return np.ascontiguousarray(rgb)


def _iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    ix = np.clip(np.minimum(box[2], boxes[:, 2]) - np.maximum(box[0], boxes[:, 0]), 0, None)
    iy = np.clip(np.minimum(box[3], boxes[:, 3]) - np.maximum(box[1], boxes[:, 1]), 0, None)
    inter = ix * iy
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return inter / np.maximum(area + areas - inter, 1e-12)


def _shift(dx: float, dy: float) -> np.ndarray:
    return np.array([[1.0, 0.0, dx], [0.0, 1.0, dy], [0.0, 0.0, 1.0]])


class FaceMesh:
    """Face detection, Face Mesh landmarks and selfie segmentation on RGB images (CPU, LiteRT).

    Args:
        threads: CPU threads of each interpreter.
    """

    def __init__(self, threads: int = 1) -> None:
        self.threads = threads
        self._interpreters: dict[str, Any] = {}

    def _run(self, name: str, tensor: np.ndarray) -> list[np.ndarray]:
        """Run one model on one input; outputs in the model's order."""
        interpreter = self._interpreters.get(name)
        if interpreter is None:
            try:
                from ai_edge_litert.interpreter import Interpreter  # type: ignore[import-untyped]
            except ImportError:
                raise FaceModelMissing(
                    f"the LiteRT interpreter (ai_edge_litert) is not installed; run: {INSTALL_HINT}") from None
            path = _find_model(face_model_dir(), _MODELS[name])
            interpreter = Interpreter(model_path=str(path), num_threads=self.threads)
            interpreter.allocate_tensors()
            self._interpreters[name] = interpreter
        interpreter.set_tensor(interpreter.get_input_details()[0]["index"], tensor[None].astype(np.float32))
        interpreter.invoke()
        return [interpreter.get_tensor(d["index"]) for d in interpreter.get_output_details()]

    def detect(self, rgb: np.ndarray, min_score: float = 0.5) -> list[Detection]:
        """Find faces (short-range BlazeFace, best for faces within ~2 m filling a good part of the frame).

        Args:
            rgb: uint8 HxWx3 RGB image.
            min_score: Smallest detector confidence kept.

        Returns:
            Detections after weighted non-maximum suppression (IoU 0.3), best first.
        """
        rgb = _check_rgb(rgb)
        h, w = rgb.shape[:2]
        size = _DETECT_SIZE
        scale = size / max(h, w)
        nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
        small = cv2.resize(rgb, (nw, nh), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
        left, top = (size - nw) // 2, (size - nh) // 2
        square = cv2.copyMakeBorder(small, top, size - nh - top, left, size - nw - left, cv2.BORDER_CONSTANT, value=0)
        outputs = self._run("detection", square.astype(np.float32) / 127.5 - 1.0)
        reg = next(o for o in outputs if o.shape[-1] == 16)[0].astype(np.float64)
        scores = _sigmoid(next(o for o in outputs if o.shape[-1] == 1)[0, :, 0].astype(np.float64))

        found = np.flatnonzero(scores >= min_score)
        if len(found) == 0:
            return []
        anchors = _anchors()[found]
        reg, scores = reg[found], scores[found]
        centre = reg[:, 0:2] / size + anchors
        half = reg[:, 2:4] / size / 2
        boxes = np.concatenate([centre - half, centre + half], axis=1)
        keypoints = reg[:, 4:16].reshape(-1, 6, 2) / size + anchors[:, None, :]

        # Model units (fractions of the letterboxed square) -> image pixels, pixel centres at integers.
        sx, sy = size / (nw / w), size / (nh / h)
        ox, oy = left / (nw / w), top / (nh / h)
        to_px = np.array([sx, sy])
        offset = np.array([ox, oy]) + 0.5
        boxes = boxes * np.tile(to_px, 2) - np.tile(offset, 2)
        keypoints = keypoints * to_px - offset

        detections = []
        remaining = np.argsort(-scores)
        while len(remaining):
            best = remaining[0]
            overlap = _iou(boxes[best], boxes[remaining]) > _NMS_IOU
            group = remaining[overlap]
            weights = scores[group] / scores[group].sum()
            box = (weights[:, None] * boxes[group]).sum(axis=0)
            kps = (weights[:, None, None] * keypoints[group]).sum(axis=0)
            detections.append(Detection(box=(float(box[0]), float(box[1]), float(box[2]), float(box[3])),
                                        score=float(scores[best]),
                                        keypoints=kps.astype(np.float32)))
            remaining = remaining[~overlap]
        return detections

    def _roi(self, detection: Detection) -> tuple[np.ndarray, float]:
        """The crop -> image affine (3x3, pixel centres at integers) of a detection's landmark ROI, and its side."""
        x0, y0, x1, y1 = detection.box
        centre_x, centre_y = (x0 + x1) / 2 + 0.5, (y0 + y1) / 2 + 0.5  # continuous coordinates
        side = _ROI_SCALE * max(x1 - x0, y1 - y0)
        (ex0, ey0), (ex1, ey1) = detection.keypoints[0], detection.keypoints[1]
        angle = 0.0 - math.atan2(-(float(ey1) - float(ey0)), float(ex1) - float(ex0))
        c, s = math.cos(angle), math.sin(angle)
        k = side / _LANDMARK_SIZE
        # Continuous crop pixel (u, v) -> continuous image point: centre + R(angle) (k (u, v) - side / 2).
        continuous = np.array([[c * k, -s * k, centre_x - side / 2 * (c - s)],
                               [s * k, c * k, centre_y - side / 2 * (s + c)],
                               [0.0, 0.0, 1.0]])
        return _shift(-0.5, -0.5) @ continuous @ _shift(0.5, 0.5), side

    def landmarks(self, rgb: np.ndarray, detection: Detection) -> FaceLandmarks:
        """The 468 Face Mesh points of one detected face.

        Args:
            rgb: uint8 HxWx3 RGB image.
            detection: A face of this image, from ``detect``.

        Returns:
            Points in image pixels (z towards the camera, in pixels) and the face presence probability.
        """
        rgb = _check_rgb(rgb)
        crop_to_image, side = self._roi(detection)
        source = rgb
        shrink = _LANDMARK_SIZE / side
        if shrink < 0.5:  # pre-filter large faces so that the bilinear warp does not alias
            source = cv2.resize(rgb, None, fx=2 * shrink, fy=2 * shrink, interpolation=cv2.INTER_AREA)
            fx, fy = source.shape[1] / rgb.shape[1], source.shape[0] / rgb.shape[0]
            to_source = _shift(-0.5, -0.5) @ np.diag([fx, fy, 1.0]) @ _shift(0.5, 0.5)
        else:
            to_source = np.eye(3)
        image_to_crop = np.linalg.inv(to_source @ crop_to_image)[:2]
        crop = cv2.warpAffine(source, image_to_crop, (_LANDMARK_SIZE, _LANDMARK_SIZE), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_REPLICATE)
        outputs = self._run("landmarks", crop.astype(np.float32) / 255.0)
        raw = next(o for o in outputs if o.size == 468 * 3).reshape(468, 3).astype(np.float64)
        presence = float(_sigmoid(next(o for o in outputs if o.size == 1).reshape(())))
        # The model's points are continuous crop coordinates; to crop pixel indices, then to the image.
        xy = np.concatenate([raw[:, :2] - 0.5, np.ones((468, 1))], axis=1) @ crop_to_image[:2].T
        z = -raw[:, 2] * side / _LANDMARK_SIZE
        return FaceLandmarks(points=np.concatenate([xy, z[:, None]], axis=1).astype(np.float32), score=presence)

    def faces(self, rgb: np.ndarray, max_faces: int = 4, min_presence: float = 0.5) -> list[FaceLandmarks]:
        """Detect faces and fit the face mesh to each.

        Args:
            rgb: uint8 HxWx3 RGB image.
            max_faces: Most faces returned (the best detections).
            min_presence: Smallest face presence probability kept.

        Returns:
            Landmarks of each face, in the order of the detector's confidence.
        """
        out = []
        for detection in self.detect(rgb)[:max_faces]:
            face = self.landmarks(rgb, detection)
            if face.score >= min_presence:
                out.append(face)
        return out

    def segment(self, rgb: np.ndarray) -> np.ndarray:
        """Person probability of every pixel (selfie segmentation).

        Args:
            rgb: uint8 HxWx3 RGB image.

        Returns:
            (H, W) float32 in [0, 1], at the image's size.
        """
        rgb = _check_rgb(rgb)
        h, w = rgb.shape[:2]
        size = _SEGMENT_SIZE
        small = cv2.resize(rgb, (size, size), interpolation=cv2.INTER_AREA if max(h, w) > size else cv2.INTER_LINEAR)
        prob = self._run("segmentation", small.astype(np.float32) / 255.0)[0].reshape(size, size)
        prob = cv2.resize(prob.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
        return np.clip(prob, 0.0, 1.0)
