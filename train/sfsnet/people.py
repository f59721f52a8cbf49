"""Synthetic people for the SfSNet family: a real face mesh on a head, with hair, ears, neck, clothes and glasses.

The scene is the same kind as :func:`~train.sfsnet.data.render_face_sample`'s: a height field z(x, y) seen from
above by an orthographic camera (x right, y down, z towards the camera), shaded by
:func:`~train.sfsnet.data.shade_sh` under the same two random lightings, so the arrays mean the same and the two
datasets mix. What changes is the subject: instead of an ellipsoid with bumps, each person carries the 468-landmark
face mesh of a real face (:mod:`train.facemesh`), so normals on faces have the structure of real faces.

A scene holds one person (80 %) or two, each face 25-80 % of the image height (log-uniform; 25-50 % for two)
wherever the whole face fits. Each person is built in head units (the template's: face width 2), drawn in pixels:

- face: the template deformed per sample (anisotropic scale, a smooth low-frequency warp, jaw drop or closed
  mouth, smile), rotated (yaw +-35, pitch +-20, roll +-20 degrees) about the skull's centre, projected
  orthographically and rasterized with a z-buffer (plus a fan of triangles along the oval, so that a turned face
  keeps a smooth outline); its depth is smoothed in proportion to the face's size so that facets do not show;
- skull: an ellipsoid fitted once to the upper rim of the template. Outside the face the skull is pulled towards
  the rim's height (the difference along the rim, spread outwards and faded), so the face blends into the head;
- ears (flat ellipsoids on the skull's sides); hair (short, long down to the shoulders, or bald): a slightly
  larger ellipsoid on top of the head, the head plus a thickness down to a random hairline and at the sides,
  grooved by strands that run down the head's meridians from the crown; neck (a cylinder); torso (a rounded box
  rising from below, clothes with an open neckline); glasses on 30 % of faces (two rings and a bridge in a plane
  in front of the eyes, arms to the ears; sometimes tinted lenses, which darken the albedo only).

Parts and people combine by keeping the highest surface; ``face`` is where a face mesh stays visible (not under
hair, a frame or another person), ``person`` everything of the people. The backdrop is the relighting renderer's height field,
flattened, or a plain wall with a gradient. The final height field is blurred (sigma 0.7 px) and its normals are
both the ground truth and what is shaded.

Albedo: a skin tone from very dark to very light with blotches and pores; the face's features come from a texture
over the template's (x, y) (lips, mouth and teeth, brows, eye whites and lash line, cheeks), drawn once from
landmark polygons and looked up through each pixel's barycentric template coordinates; irises are discs placed
between the lids per sample.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from ..data.render import RenderConfig, _grid, _heights, _normals
from ..data.textures import random_albedo
from ..facemesh import rasterize, template, triangles
from .data import FaceRenderConfig, _render_many, random_lighting, shade_sh

__all__ = ["PersonScene", "person_scene", "render_person_dataset", "render_person_sample"]

_DEFAULT = FaceRenderConfig()

# MediaPipe face-mesh landmarks, each region as a loop in order.
LIPS_OUTER = (61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291, 409, 270, 269, 267, 0, 37, 39, 40, 185)
LIPS_INNER = (78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308, 415, 310, 311, 312, 13, 82, 81, 80, 191)
UPPER_INNER_LIP = (78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308)
LOWER_INNER_LIP = (95, 88, 178, 87, 14, 317, 402, 318, 324)
BROWS = ((70, 63, 105, 66, 107, 55, 65, 52, 53, 46), (300, 293, 334, 296, 336, 285, 295, 282, 283, 276))
EYES = ((33, 7, 163, 144, 145, 153, 154, 155, 133, 173, 157, 158, 159, 160, 161, 246),
        (263, 249, 390, 373, 374, 380, 381, 382, 362, 398, 384, 385, 386, 387, 388, 466))
UPPER_LIDS = ((33, 246, 161, 160, 159, 158, 157, 173, 133), (263, 466, 388, 387, 386, 385, 384, 398, 362))
EYE_CORNERS = ((33, 133), (362, 263))
FACE_OVAL = (10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377, 152, 148,
             176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109)
NOSE_TIP, NOSE_BRIDGE, FOREHEAD, CHIN, CHEEKS, MOUTH_CORNERS = 1, 168, 10, 152, (50, 280), (61, 291)

# Part codes of a person's pixels.
BACKGROUND, CLOTHES, SKIN, FACE, HAIR, GLASSES = range(6)

HAIR_COLOURS = {  # linear albedo of each hair colour
    "black": (0.025, 0.02, 0.018), "brown": (0.09, 0.05, 0.028), "blonde": (0.42, 0.3, 0.16),
    "red": (0.3, 0.1, 0.04), "grey": (0.36, 0.35, 0.34),
}
IRIS_COLOURS = ((0.05, 0.025, 0.012), (0.1, 0.06, 0.03), (0.08, 0.12, 0.16), (0.08, 0.1, 0.06))


@dataclass(frozen=True)
class _Head:
    """The template and what is derived from it once: the skull, the feature texture, landmarks' positions."""

    vertices: np.ndarray
    """(468, 3) the template, head units."""
    tris: np.ndarray
    skull_centre: np.ndarray
    skull_axes: np.ndarray
    atlas: tuple[np.ndarray, np.ndarray]
    """Two (h, w, 4) textures over the template's (x, y): lips, mouth, teeth, brows | eyes, lashes, cheeks, 0."""
    atlas_origin: np.ndarray
    atlas_scale: float
    """Texture pixels per head unit."""
    eye_centres: np.ndarray
    """(2, 2) the middle of each eye's opening."""
    eye_widths: np.ndarray
    face_height: float
    mouth_gap: float
    """How far the template's mouth is open (lower minus upper inner lip, head units)."""


def _smoothstep(t: np.ndarray) -> np.ndarray:
    t = np.clip(t, 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def _fit_skull(v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """An ellipsoid behind the face: above the forehead, behind the cheeks, its front fitted to the upper rim."""
    top, chin = float(v[FOREHEAD, 1]), float(v[CHIN, 1])
    height = chin - top
    y0, y1 = top - 0.33 * height, top + 0.85 * height
    yc, ay = (y0 + y1) / 2, (y1 - y0) / 2
    xc = float(v[[234, 454], 0].mean())
    half = float(np.ptp(v[:, 0])) / 2
    rim = v[[i for i in FACE_OVAL if v[i, 1] < v[13, 1]]]
    best = None
    for ax in np.linspace(1.02, 1.2, 10) * half:
        s = np.sqrt(np.maximum(1.0 - ((rim[:, 0] - xc) / ax) ** 2 - ((rim[:, 1] - yc) / ay) ** 2, 0.0))
        a = np.stack([np.ones_like(s), s], axis=1)
        (zc, az), *_ = np.linalg.lstsq(a, rim[:, 2], rcond=None)
        error = float(np.sum((a @ [zc, az] - rim[:, 2]) ** 2))
        if az > 0 and (best is None or error < best[0]):
            best = (error, np.array([xc, yc, zc], np.float32), np.array([ax, ay, az], np.float32))
    assert best is not None, "no skull fits the template"
    return best[1], best[2]


def _atlas(v: np.ndarray) -> tuple[tuple[np.ndarray, np.ndarray], np.ndarray, float]:
    """Feature texture over the template's (x, y) from landmark polygons (see ``_Head.atlas``)."""
    scale = 160.0
    origin = v[:, :2].min(0) - 0.15
    w, h = (np.ceil((v[:, :2].max(0) + 0.15 - origin) * scale)).astype(int)

    def fill(loops, lines=False) -> np.ndarray:
        image = np.zeros((h, w), np.uint8)
        pts = [np.round((v[list(ids), :2] - origin) * scale * 16).astype(np.int32) for ids in loops]
        if lines:
            cv2.polylines(image, pts, False, 255, max(1, round(0.03 * scale)), cv2.LINE_AA, shift=4)
        else:
            cv2.fillPoly(image, pts, 255, cv2.LINE_AA, shift=4)
        return image.astype(np.float32) / 255.0

    lips, mouth = fill([LIPS_OUTER]), fill([LIPS_INNER])
    us = origin[0] + np.arange(w) / scale
    vs = (origin[1] + np.arange(h) / scale)[:, None]
    upper = v[list(UPPER_INNER_LIP)][np.argsort(v[list(UPPER_INNER_LIP), 0])]
    lower = v[[78, *LOWER_INNER_LIP, 308]][np.argsort(v[[78, *LOWER_INNER_LIP, 308], 0])]
    up, low = np.interp(us, upper[:, 0], upper[:, 1]), np.interp(us, lower[:, 0], lower[:, 1])
    teeth = mouth * (vs < up + 0.5 * (low - up))
    brows, eyes, lashes = fill(BROWS), fill(EYES), fill(UPPER_LIDS, lines=True)
    uu, vv = np.meshgrid(us, vs[:, 0])
    cheeks = sum(np.exp(-((uu - v[i, 0]) ** 2 + (vv - v[i, 1]) ** 2) / (2 * 0.22**2)) for i in CHEEKS)
    first = np.stack([lips, mouth, teeth, brows], -1).astype(np.float32)
    second = np.stack([eyes, lashes, cheeks, np.zeros_like(eyes)], -1).astype(np.float32)
    groups = (cv2.GaussianBlur(first, (0, 0), 1.0), cv2.GaussianBlur(second, (0, 0), 1.0))
    return groups, origin.astype(np.float32), scale


def _rim_fan(v: np.ndarray) -> np.ndarray:
    """Triangles joining each pair of neighbours on the face oval to the nearest inner vertex.

    A few vertices next to the oval bulge past it in the template; turned away, they leave notches between the
    oval's vertices that these triangles fill.
    """
    oval = np.array(FACE_OVAL)
    inner = np.setdiff1d(np.arange(len(v)), oval)
    fan = []
    for a, b in zip(oval, np.roll(oval, -1)):
        mid = (v[a, :2] + v[b, :2]) / 2
        c = inner[np.argmin(np.sum((v[inner, :2] - mid) ** 2, axis=1))]
        (ux, uy), (wx, wy) = v[b, :2] - v[a, :2], v[c, :2] - v[a, :2]
        cross = ux * wy - uy * wx
        fan.append((a, b, c) if cross > 0 else (a, c, b))
    return np.array(fan, np.int32)


@lru_cache(maxsize=1)
def _head() -> _Head:
    v = np.asarray(template(), np.float32)
    centre, axes = _fit_skull(v)
    atlas, origin, scale = _atlas(v)
    eyes = np.array([v[list(e), :2].mean(0) for e in EYES], np.float32)
    widths = np.array([np.linalg.norm(v[a, :2] - v[b, :2]) for a, b in EYE_CORNERS], np.float32)
    return _Head(vertices=v, tris=np.concatenate([triangles(), _rim_fan(v)]).astype(np.int32), skull_centre=centre, skull_axes=axes,
                 atlas=atlas, atlas_origin=origin, atlas_scale=scale, eye_centres=eyes, eye_widths=widths,
                 face_height=float(v[CHIN, 1] - v[FOREHEAD, 1]), mouth_gap=float(v[14, 1] - v[13, 1]))


# --- geometry -------------------------------------------------------------------------------------------------


def _rotation(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """Head frame to image frame (degrees): yaw turns the nose to the right, pitch up, roll clockwise."""
    y, p, r = np.radians([yaw, pitch, roll])
    ry = np.array([[np.cos(y), 0, np.sin(y)], [0, 1, 0], [-np.sin(y), 0, np.cos(y)]])
    rx = np.array([[1, 0, 0], [0, np.cos(p), -np.sin(p)], [0, np.sin(p), np.cos(p)]])
    rz = np.array([[np.cos(r), -np.sin(r), 0], [np.sin(r), np.cos(r), 0], [0, 0, 1]])
    return (rz @ rx @ ry).astype(np.float64)


def _ellipsoid(shape: tuple[int, int], centre, axes, rot: np.ndarray,
               frame: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
    """Front surface of an ellipsoid seen from +z, in pixels: height (-inf off it) and, with ``frame``, the hit
    point in the ellipsoid's frame (3, H, W).

    ``rot`` maps the ellipsoid's frame to the image's; only the pixels of its bounding box are computed.
    """
    h, w = shape
    centre, axes = np.asarray(centre, np.float64), np.asarray(axes, np.float64)
    z = np.full(shape, -np.inf, np.float32)
    q = np.zeros((3, h, w), np.float32) if frame else None
    ex, ey = np.sqrt(np.sum((rot[0] * axes) ** 2)), np.sqrt(np.sum((rot[1] * axes) ** 2))
    x0, x1 = max(int(centre[0] - ex), 0), min(int(np.ceil(centre[0] + ex)) + 1, w)
    y0, y1 = max(int(centre[1] - ey), 0), min(int(np.ceil(centre[1] + ey)) + 1, h)
    if x0 >= x1 or y0 >= y1:
        return z, q
    xs = np.arange(x0, x1, dtype=np.float32)[None, :] - centre[0]
    ys = np.arange(y0, y1, dtype=np.float32)[:, None] - centre[1]
    inv = 1.0 / axes**2
    r = rot[2]  # the image's +z in the ellipsoid's frame
    q0 = [rot[0, i] * xs + rot[1, i] * ys - rot[2, i] * centre[2] for i in range(3)]
    a = float(np.sum(r * r * inv))
    b = 2.0 * sum(q0[i] * (r[i] * inv[i]) for i in range(3))
    c = sum(q0[i] ** 2 * inv[i] for i in range(3)) - 1.0
    disc = b * b - 4.0 * a * c
    hit = disc > 0
    t = np.where(hit, (-b + np.sqrt(np.maximum(disc, 0.0))) / (2.0 * a), 0.0)
    z[y0:y1, x0:x1] = np.where(hit, t, -np.inf)
    if q is not None:
        for i in range(3):
            q[i, y0:y1, x0:x1] = q0[i] + t * r[i]
    return z, q


def _put(z: np.ndarray, part: np.ndarray, height: np.ndarray, code: int, where: np.ndarray | None = None) -> None:
    """Keep ``height`` where it is above ``z`` (and ``where``), labelled ``code``."""
    win = height > z
    if where is not None:
        win &= where
    z[win] = height[win]
    part[win] = code


def _bar(start: np.ndarray, stop: np.ndarray, radius: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A thin ellipsoid from ``start`` to ``stop`` (head frame): centre, axes and its frame's rotation."""
    d = stop - start
    length = float(np.linalg.norm(d))
    e2 = d / length
    e0 = np.cross(e2, [0.0, 1.0, 0.0])
    e0 /= np.linalg.norm(e0)
    return (start + stop) / 2, np.array([radius, radius, length / 2]), np.stack([e0, np.cross(e2, e0), e2], axis=1)


def _masked_blur(values: np.ndarray, weights: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur of ``values`` where ``weights`` > 0, normalised by the blurred weights."""
    num = cv2.GaussianBlur((values * weights).astype(np.float32), (0, 0), sigma)
    return num / np.maximum(cv2.GaussianBlur(weights.astype(np.float32), (0, 0), sigma), 1e-6)


class _Strands:
    """Hair strands: random values along the longitude about a vertical axis through the crown, so that grooves
    run down the head's meridians from the crown, with a slow wave."""

    def __init__(self, rng: np.random.Generator, centre: np.ndarray, axes: np.ndarray) -> None:
        self.values = rng.standard_normal(int(rng.integers(120, 260))).astype(np.float32)
        self.crown = (centre[0] + rng.uniform(-0.3, 0.3) * axes[0], centre[2] - rng.uniform(0.1, 0.5) * axes[2])
        self.wave = (rng.uniform(0.0, 0.12), rng.uniform(3.0, 8.0), rng.uniform(0.0, 2 * np.pi))

    def __call__(self, q: list[np.ndarray]) -> np.ndarray:
        """Values in about [-2, 2] at head-frame points ``q`` (x, y, z arrays)."""
        amplitude, frequency, phase = self.wave
        angle = np.arctan2(q[0] - self.crown[0], q[2] - self.crown[1]) + amplitude * np.sin(q[1] * frequency + phase)
        n = len(self.values)
        t = (angle / (2 * np.pi) % 1.0) * n
        i = np.floor(t).astype(np.int64)
        f = t - i
        f = f * f * (3 - 2 * f)
        return self.values[i % n] * (1 - f) + self.values[(i + 1) % n] * f


# --- one person -----------------------------------------------------------------------------------------------


def _deform(rng: np.random.Generator, head: _Head) -> np.ndarray:
    """The template with a jaw drop (or a closed mouth), a smile and a smooth warp, head units."""
    v = head.vertices.astype(np.float64)
    out = v.copy()
    xc = float(head.skull_centre[0])
    kind = rng.random()
    if kind < 0.4:
        drop = -head.mouth_gap * rng.uniform(0.7, 1.0)  # lips together
    elif kind < 0.7:
        drop = rng.uniform(0.0, 0.08) * head.face_height
    else:
        drop = 0.0
    upper = v[list(UPPER_INNER_LIP)][np.argsort(v[list(UPPER_INNER_LIP), 0])]
    line = np.interp(v[:, 0], upper[:, 0], upper[:, 1])
    below = _smoothstep((v[:, 1] - line) / (0.04 * head.face_height))
    below[list(LOWER_INNER_LIP)] = 1.0
    weight = below * np.clip(1.0 - 0.8 * ((v[:, 0] - xc) / 1.0) ** 2, 0.15, 1.0)
    out[:, 1] += drop * weight
    out[:, 2] -= 0.3 * max(drop, 0.0) * weight
    if rng.random() < 0.4:
        amount = rng.uniform(0.2, 1.0)
        for corner in MOUTH_CORNERS:
            near = np.exp(-np.sum((v[:, :2] - v[corner, :2]) ** 2, axis=1) / (2 * 0.13**2))
            out[:, 0] += np.sign(v[corner, 0] - xc) * 0.06 * amount * near
            out[:, 1] -= 0.05 * amount * near
            out[:, 2] -= 0.02 * amount * near
    for axis, amplitude in ((0, 0.03), (1, 0.03), (2, 0.02)):
        for _ in range(3):
            direction = rng.normal(size=2)
            f = direction / np.linalg.norm(direction) * rng.uniform(1.0, 3.0)
            out[:, axis] += amplitude * rng.uniform(-1, 1) * np.sin(v[:, :2] @ f + rng.uniform(0, 2 * np.pi))
    return out


def _skin_tone(rng: np.random.Generator) -> np.ndarray:
    """Linear albedo of a skin tone, red from 0.05 (very dark) to 0.75 (very light)."""
    red = 0.05 + 0.7 * rng.random()
    green = red * rng.uniform(0.58, 0.74)
    return np.array([red, green, green * rng.uniform(0.65, 0.88)], np.float32)


def _smooth(rng: np.random.Generator, shape: tuple[int, int], cells: int, channels: int = 1) -> np.ndarray:
    """Smooth noise in [0, 1] with about ``cells`` bumps across the image."""
    h, w = shape
    coarse = rng.random((max(2, cells * h // max(h, w)), max(2, cells * w // max(h, w)), channels)).astype(np.float32)
    return cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC).reshape(h, w, channels)


def _clothes(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    h, w = shape
    if rng.random() < 0.3:  # patterned
        return random_albedo(rng, h, w) * rng.uniform(0.5, 1.0)
    colour = rng.uniform(0.02, 0.7, 3).astype(np.float32) ** rng.uniform(0.8, 1.5)
    texture = random_albedo(rng, h, w).mean(axis=2, keepdims=True)
    return colour * (0.85 + 0.3 * (texture - texture.mean()))


@dataclass
class _Frame:
    """Where one person's head is: head units (the deformed template's) to image pixels and back."""

    shape: tuple[int, int]
    centre: np.ndarray
    """The skull's centre in the image: x, y in pixels, height in pixels."""
    scale: float
    """Pixels per head unit."""
    rot: np.ndarray
    """Head frame to image frame."""
    skull_centre: np.ndarray
    skull_axes: np.ndarray

    def __post_init__(self) -> None:
        h, w = self.shape
        self.ys, self.xs = np.mgrid[0:h, 0:w].astype(np.float32)
        back = (self.rot / self.scale).astype(np.float32)
        self.step = back[2]  # head-frame change per pixel of image height
        c = self.centre.astype(np.float32)
        self.plane0 = [back[0, i] * (self.xs - c[0]) + back[1, i] * (self.ys - c[1]) - back[2, i] * c[2]
                       + np.float32(self.skull_centre[i]) for i in range(3)]

    def to_image(self, p) -> np.ndarray:
        """Head-unit points (..., 3) to image points (x, y, height in pixels)."""
        return self.centre + self.scale * (np.asarray(p, np.float64) - self.skull_centre) @ self.rot.T

    def to_head(self, z: np.ndarray) -> list[np.ndarray]:
        """The pixels' image points at heights ``z`` to head units: x, y, z arrays."""
        return [self.plane0[i] + self.step[i] * z for i in range(3)]

    def ellipsoid(self, centre, axes, rot: np.ndarray | None = None,
                  frame: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
        """An ellipsoid in head units (optionally turned by ``rot`` in the head frame): its height in pixels and,
        with ``frame``, the hit points in head units (3, H, W)."""
        centre = np.asarray(centre, np.float64)
        turn = self.rot if rot is None else self.rot @ rot
        z, q = _ellipsoid(self.shape, self.to_image(centre), self.scale * np.asarray(axes), turn, frame)
        if q is not None:
            q = np.einsum("ij,jhw->ihw", np.eye(3) if rot is None else rot, q / self.scale) + centre[:, None, None]
        return z, q


def _place(rng: np.random.Generator, head: _Head, v: np.ndarray, scale3: np.ndarray, rot: np.ndarray,
           shape: tuple[int, int], face_fraction: tuple[float, float], x_range: tuple[float, float],
           floor: float) -> _Frame:
    """A size (log-uniform face height) and a place where the whole face fits, inside columns ``x_range``."""
    h, w = shape
    hc = head.skull_centre * scale3
    rel = (v - hc) @ rot.T
    s = np.exp(rng.uniform(*np.log(face_fraction))) * h / (head.face_height * scale3[1])
    lo, hi = rel[:, :2].min(0), rel[:, :2].max(0)
    s = min(s, 0.97 * (w - 3) / (hi[0] - lo[0]), 0.97 * (h - 3) / (hi[1] - lo[1]))
    xmin, xmax = max(x_range[0], 1.0) - s * lo[0], min(x_range[1], w - 2.0) - s * hi[0]
    if xmin > xmax:
        xmin, xmax = 1.0 - s * lo[0], w - 2.0 - s * hi[0]
    ymin, ymax = 1.0 - s * lo[1], h - 2.0 - s * hi[1]
    centre = np.array([rng.uniform(xmin, max(xmin, xmax)), rng.uniform(ymin, max(ymin, ymax)),
                       floor + s * rng.uniform(1.0, 1.4)])
    return _Frame(shape=shape, centre=centre, scale=float(s), rot=rot, skull_centre=hc,
                  skull_axes=head.skull_axes * scale3)


def _body(rng: np.random.Generator, fr: _Frame, v: np.ndarray, width: float, z: np.ndarray,
          part: np.ndarray) -> float:
    """Torso (a rounded box rising from below, with an open neckline) and neck (a cylinder, ``width`` times the
    usual); the neck's radius in head units."""
    s, xs, ys, c = fr.scale, fr.xs, fr.ys, fr.centre
    chin = fr.to_image(v[CHIN])
    body_x = c[0] + s * rng.uniform(-0.3, 0.3)
    shoulders = c[1] + s * (float(v[CHIN, 1] - fr.skull_centre[1]) + rng.uniform(0.5, 1.0))
    half, rounding, power = s * rng.uniform(2.4, 3.3), s * rng.uniform(0.7, 1.3), rng.uniform(2.0, 3.5)
    depth = s * rng.uniform(1.0, 1.6)
    base = c[2] + s * rng.uniform(0.55, 0.85) - depth
    tilt = rng.uniform(-0.1, 0.1)
    u = ((xs - body_x) * np.cos(tilt) + (ys - shoulders) * np.sin(tilt)) / half
    vv = (-(xs - body_x) * np.sin(tilt) + (ys - shoulders) * np.cos(tilt)) / rounding
    r = np.abs(u) ** power + np.maximum(1.0 - vv, 0.0) ** power
    folds = _smooth(rng, fr.shape, int(rng.integers(3, 8)))[..., 0] * s * 0.08
    _put(z, part, np.where(r < 1.0, base + depth * np.sqrt(np.maximum(1.0 - r, 0.0)) + folds, -np.inf), CLOTHES)
    neck_x = (c[0] + body_x) / 2 + 0.3 * (chin[0] - c[0])
    radius = s * rng.uniform(0.6, 0.75) * width
    neck, _ = _ellipsoid(fr.shape, (neck_x, c[1], c[2] + s * rng.uniform(0.3, 0.5) - radius), (radius, 1e5, radius),
                         _rotation(0, 0, -np.degrees(tilt)))
    _put(z, part, neck, SKIN, ys > c[1])
    if rng.random() < 0.75:  # an open neckline shows skin on the chest
        open_w, open_d = s * rng.uniform(0.7, 1.2), s * rng.uniform(0.15, 0.8)
        dx = (xs - neck_x) / open_w
        vee = 1.0 - np.abs(dx) if rng.random() < 0.4 else 1.0 - dx * dx
        part[(part == CLOTHES) & (np.abs(dx) < 1.0) & (ys - shoulders < open_d * vee)] = SKIN
    return float(radius / s)


def _face_and_skull(fr: _Frame, head: _Head, points: np.ndarray, z: np.ndarray,
                    part: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Rasterize the face and blend it into the skull; the face's pixels, their template (x, y) and feature
    weights (N, 8), and the head's height (-inf off it)."""
    h, w = fr.shape
    s = fr.scale
    depth, tri, bary = rasterize(points.astype(np.float32), head.tris, h, w)
    mesh = np.isfinite(depth)
    idx = head.tris[tri[mesh]]
    uv = np.einsum("nk,nkc->nc", bary[mesh].astype(np.float64), head.vertices[idx, :2].astype(np.float64))
    mx = ((uv[:, 0] - head.atlas_origin[0]) * head.atlas_scale).astype(np.float32)[:, None]
    my = ((uv[:, 1] - head.atlas_origin[1]) * head.atlas_scale).astype(np.float32)[:, None]
    features = np.concatenate([cv2.remap(g, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT).reshape(-1, 4)
                               for g in head.atlas], axis=1)
    depth[mesh] -= features[:, 1] * s * 0.15  # the mouth opening is a hole
    m = mesh.astype(np.float32)
    face_z = _masked_blur(np.where(mesh, depth, 0.0), m, max(0.5, 0.025 * s))  # hides the facets
    # Outside the face the skull is raised or lowered by the difference along the face's rim, faded outwards.
    skull, _ = fr.ellipsoid(fr.skull_centre, fr.skull_axes)
    on_skull = np.isfinite(skull)
    ring = mesh & ~cv2.erode(m, np.ones((3, 3), np.uint8), iterations=max(1, int(0.05 * s))).astype(bool) & on_skull
    spread = max(1.0, 0.1 * s)
    ring_f = ring.astype(np.float32)
    offset = _masked_blur(np.where(ring, face_z - skull, 0.0), ring_f, spread)
    outside = cv2.distanceTransform((~mesh).astype(np.uint8), cv2.DIST_L2, 3)
    fade = np.clip(1.0 - outside / (0.4 * s), 0.0, 1.0) ** 2 * (cv2.GaussianBlur(ring_f, (0, 0), spread) > 1e-4)
    head_z = np.where(mesh, face_z, np.where(on_skull, skull + offset * fade, -np.inf))
    # A band along the face's outline is smoothed so that the face flows into the head.
    inside = cv2.distanceTransform(mesh.astype(np.uint8), cv2.DIST_L2, 3)
    band = np.exp(-(np.where(mesh, inside, outside) / max(1.0, 0.06 * s)) ** 2)
    on_head = np.isfinite(head_z)
    flat = np.where(on_head, head_z, 0.0)
    smooth = _masked_blur(flat, on_head.astype(np.float32), max(1.0, 0.06 * s))
    head_z = np.where(on_head, flat + band * (smooth - flat), -np.inf).astype(np.float32)
    _put(z, part, head_z, SKIN, ~mesh)
    _put(z, part, np.where(mesh, head_z, -np.inf).astype(np.float32), FACE)
    return mesh, uv, features, head_z


def _ears(rng: np.random.Generator, fr: _Frame, v: np.ndarray, z: np.ndarray, part: np.ndarray) -> None:
    """Flat bumps on the skull's sides at the height between the eyes and the nose tip."""
    hc, axes = fr.skull_centre, fr.skull_axes
    y, depth = float(v[[NOSE_TIP, 33], 1].mean()), float(hc[2] - 0.1 * axes[2])
    reach = axes[0] * np.sqrt(max(1.0 - ((y - hc[1]) / axes[1]) ** 2 - ((depth - hc[2]) / axes[2]) ** 2, 0.0))
    size = np.array([0.09, 0.28, 0.17]) * rng.uniform(0.85, 1.15)
    for side in (-1, 1):
        ear, _ = fr.ellipsoid([hc[0] + side * reach, y, depth], size)
        _put(z, part, ear, SKIN)


def _hair(rng: np.random.Generator, fr: _Frame, v: np.ndarray, style: str, strands: _Strands, mesh: np.ndarray,
          head_z: np.ndarray, neck_radius: float, z: np.ndarray, part: np.ndarray) -> None:
    """Long hair behind the head, then hair on the skull above a random hairline and at the sides."""
    s, hc, axes = fr.scale, fr.skull_centre, fr.skull_axes
    chin_y = float(v[CHIN, 1])
    if style == "long":  # down to the shoulders, leaving the face and the neck free
        centre = hc + np.array([0.0, axes[1] * rng.uniform(0.6, 1.0), -0.3 * axes[2]])
        curtain, hit = fr.ellipsoid(centre, axes * np.array([rng.uniform(1.15, 1.4), rng.uniform(1.5, 2.2), 0.8]),
                                    frame=True)
        assert hit is not None
        gap = (neck_radius * 1.1 + 0.1) * np.sqrt(_smoothstep((hit[1] - chin_y + 0.6) / 0.6))
        _put(z, part, curtain, HAIR, (np.abs(hit[0] - hc[0]) >= gap) & ~mesh)
    if style == "bald":
        return
    grow = rng.uniform(1.03, 1.12) if style == "short" else rng.uniform(1.06, 1.18)
    volume_z, _ = fr.ellipsoid(hc + np.array([0.0, -0.05, -0.05]), axes * grow)
    thickness = s * rng.uniform(0.03, 0.08)
    on_head = np.isfinite(head_z)
    under = np.where(on_head, head_z, np.where(np.isfinite(volume_z), volume_z, 0.0))
    q = fr.to_head(under)
    top = float(v[FOREHEAD, 1]) + (rng.uniform(0.05, 0.45) if rng.random() < 0.25 else rng.uniform(-0.3, 0.05))
    side = float(hc[1]) + rng.uniform(-0.1, 0.35) if style == "short" else chin_y
    across = (q[0] - hc[0]) / axes[0]
    line = (top + 0.25 * across**2 + (side - top) * _smoothstep((np.abs(across) - 0.78) / 0.2)
            + 0.03 * np.sin(across * rng.uniform(8, 20) + rng.uniform(0, 2 * np.pi)))
    cover = _smoothstep((line - q[1]) / 0.08)
    volume = _smoothstep((top - q[1]) / 0.4)  # the full volume only on top of the head
    lift = np.maximum(np.where(np.isfinite(volume_z), volume_z, 0.0) - under - thickness, 0.0) * volume
    hair = np.where(on_head, under + (thickness + lift) * cover, np.where(cover > 0.5, volume_z, -np.inf))
    hair = hair + s * 0.015 * strands(q) * cover
    _put(z, part, hair.astype(np.float32), HAIR, cover > 0.05)


def _glasses(rng: np.random.Generator, fr: _Frame, head: _Head, v: np.ndarray, scale3: np.ndarray, z: np.ndarray,
             part: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Rings and a bridge in a plane in front of the eyes, arms to the ears. Returns the lenses' pixels, their
    tint and the frame's albedo (None without glasses)."""
    lens = np.zeros(fr.shape, bool)
    tint = np.ones(3, np.float32)
    if rng.random() >= 0.3 or abs(fr.step[2]) < 1e-6:
        return lens, tint, None
    hc, axes = fr.skull_centre, fr.skull_axes
    eyes = head.eye_centres * scale3[:2]
    a = 0.65 * float(head.eye_widths.mean()) * scale3[0] * rng.uniform(1.0, 1.2)
    b = a * rng.uniform(0.6, 0.85)
    band = rng.uniform(0.025, 0.05)
    plane = float(v[NOSE_BRIDGE, 2]) + rng.uniform(0.06, 0.14)
    zp = (plane - fr.plane0[2]) / fr.step[2]  # each pixel's ray meets the plane of the rings there
    qx, qy = fr.plane0[0] + zp * fr.step[0], fr.plane0[1] + zp * fr.step[1]
    frame = np.zeros(fr.shape, bool)
    for ex, ey in eyes:
        e = np.sqrt(((qx - ex) / a) ** 2 + ((qy - ey) / b) ** 2)
        frame |= np.abs(e - 1.0) * b < band / 2
        lens |= e < 1.0
    inner = np.sort(eyes[:, 0])
    frame |= (qx > inner[0] + a * 0.9) & (qx < inner[1] - a * 0.9) & (np.abs(qy - eyes[:, 1].mean() + 0.3 * b) < band / 2)
    _put(z, part, np.where(frame, zp + fr.scale * 0.02, -np.inf).astype(np.float32), GLASSES)
    for side, (ex, ey) in zip((-1, 1), eyes[np.argsort(eyes[:, 0])]):
        start = np.array([ex + side * a, ey, plane])
        stop = np.array([hc[0] + side * axes[0] * 0.98, ey + 0.1, hc[2] - 0.1 * axes[2]])
        centre, size, turn = _bar(start, stop, band / 2)
        arm, _ = fr.ellipsoid(centre, size, rot=turn)
        _put(z, part, arm, GLASSES)
    colour = (np.full(3, rng.uniform(0.02, 0.06)) if rng.random() < 0.6 else rng.uniform(0.05, 0.5, 3))
    if rng.random() < 0.3:
        tint = (rng.uniform(0.2, 0.7) * rng.uniform(0.7, 1.0, 3)).astype(np.float32)
    return lens & (part != GLASSES), tint, colour.astype(np.float32)


def _face_albedo(rng: np.random.Generator, head: _Head, skin: np.ndarray, features: np.ndarray, uv: np.ndarray,
                 scale: float, brow: np.ndarray) -> np.ndarray:
    """Cheeks, lips, mouth and teeth, brows, eyes (whites, iris, pupil, lash line) over the face's skin (N, 3)."""
    f = features
    skin = skin * (1.0 + f[:, 6:7] * rng.uniform(0.0, 0.2) * np.array([1.0, -0.4, -0.3], np.float32))
    lip = skin * np.array([0.9, 0.55, 0.6], np.float32) * rng.uniform(0.75, 1.0)
    skin += (lip - skin) * f[:, 0:1] * rng.uniform(0.5, 0.9)
    skin += (brow - skin) * f[:, 3:4] * rng.uniform(0.5, 0.9)
    mouth = np.array([0.1, 0.025, 0.025], np.float32) * rng.uniform(0.5, 1.5)
    teeth = np.array([0.62, 0.56, 0.45], np.float32) * rng.uniform(0.6, 1.0)
    skin += (mouth + (teeth - mouth) * f[:, 2:3] - skin) * f[:, 1:2]
    eye = np.tile(np.array([0.62, 0.55, 0.5], np.float32) * rng.uniform(0.75, 1.0), (len(skin), 1))
    iris = np.array(IRIS_COLOURS[rng.integers(len(IRIS_COLOURS))], np.float32) * rng.uniform(0.7, 1.3)
    gaze = rng.uniform(-0.1, 0.1, 2) * [1.0, 0.5]
    for (ex, ey), width in zip(head.eye_centres, head.eye_widths):
        d = np.hypot(uv[:, 0] - ex - gaze[0] * width, uv[:, 1] - ey - gaze[1] * width) * scale  # in pixels
        r_iris = 0.21 * width * scale
        eye += (iris - eye) * _smoothstep(r_iris - d + 0.5)[:, None]
        eye += (0.01 - eye) * _smoothstep(0.4 * r_iris - d + 0.5)[:, None]
    skin += (eye - skin) * f[:, 4:5]
    return skin + (0.02 - skin) * f[:, 5:6] * 0.7


@dataclass
class _Person:
    z: np.ndarray
    part: np.ndarray
    albedo: np.ndarray
    lens: np.ndarray
    """Pixels seen through a tinted lens (multiply by ``tint``)."""
    tint: np.ndarray
    landmarks: np.ndarray
    """(468, 2) the face's vertices in pixels (x, y)."""


def _person(rng: np.random.Generator, shape: tuple[int, int], head: _Head, face_fraction: tuple[float, float],
            x_range: tuple[float, float], floor: float, pose: tuple[float, float, float] | None) -> _Person:
    """One person whose face (face_fraction of the image height) fits inside columns ``x_range``, above ``floor``."""
    scale3 = np.array([rng.uniform(0.85, 1.15), rng.uniform(0.9, 1.1), rng.uniform(0.75, 1.25)])
    v = _deform(rng, head) * scale3
    angles = (rng.uniform(-35, 35), rng.uniform(-20, 20), rng.uniform(-20, 20))
    fr = _place(rng, head, v, scale3, _rotation(*(angles if pose is None else pose)), shape, face_fraction,
                x_range, floor)
    points = fr.to_image(v)
    z = np.full(shape, -np.inf, np.float32)
    part = np.zeros(shape, np.uint8)
    neck_radius = _body(rng, fr, v, float(scale3[0]), z, part)
    mesh, uv, features, head_z = _face_and_skull(fr, head, points, z, part)
    _ears(rng, fr, v, z, part)
    style = rng.choice(["short", "long", "bald"], p=[0.55, 0.35, 0.1])
    strands = _Strands(rng, fr.skull_centre, fr.skull_axes)
    _hair(rng, fr, v, style, strands, mesh, head_z, neck_radius, z, part)
    lens, tint, frame_colour = _glasses(rng, fr, head, v, scale3, z, part)

    tone = _skin_tone(rng)
    blotches = 1.0 + 0.2 * (_smooth(rng, shape, max(3, int(shape[1] / max(4.0, 0.5 * fr.scale)))) - 0.5)
    albedo = tone * blotches * (1.0 + 0.04 * rng.standard_normal((*shape, 1)).astype(np.float32))
    hair_colour = np.array(HAIR_COLOURS[rng.choice(list(HAIR_COLOURS))], np.float32) * rng.uniform(0.75, 1.3)
    brow = hair_colour * 0.8 if style != "bald" else tone * 0.35
    albedo[mesh] = _face_albedo(rng, head, albedo[mesh], features, uv, fr.scale, brow)
    strand_albedo = np.clip(1.0 + 0.3 * strands(fr.to_head(np.where(np.isfinite(z), z, 0.0))), 0.4, 1.6)
    albedo = np.where((part == HAIR)[..., None], hair_colour * strand_albedo[..., None], albedo)
    albedo = np.where((part == CLOTHES)[..., None], _clothes(rng, shape), albedo)
    if frame_colour is not None:
        albedo = np.where((part == GLASSES)[..., None], frame_colour, albedo)
    return _Person(z=z, part=part, albedo=np.clip(albedo, 0.01, 0.95).astype(np.float32), lens=lens, tint=tint,
                   landmarks=points[:, :2].astype(np.float32))


# --- the scene ------------------------------------------------------------------------------------------------


@dataclass
class PersonScene:
    """A scene before lighting: what :func:`render_person_sample` shades."""

    heights: np.ndarray
    """(H, W) float32 height field, in the scene units of :mod:`train.data.render` (blurred, as shaded)."""
    albedo: np.ndarray
    """(H, W, 3) float32 linear albedo."""
    face: np.ndarray
    """(H, W) bool, pixels where a face mesh is the visible surface."""
    person: np.ndarray
    """(H, W) bool, pixels of a person (face, head, hair, ears, neck, clothes, glasses)."""
    landmarks: np.ndarray
    """(P, 468, 2) the faces' landmarks in pixels (x, y) per person."""


def person_scene(seed: int, cfg: FaceRenderConfig = _DEFAULT,
                 pose: tuple[float, float, float] | None = None) -> tuple[PersonScene, np.random.Generator]:
    """The height field and albedo of one scene with one or two people, and the generator left for the lights.

    Args:
        seed: the scene's seed; the same seed and config always give the same scene.
        cfg: image size (the lights' parameters are used by :func:`render_person_sample`).
        pose: (yaw, pitch, roll) in degrees for every face instead of random ones (every other random choice
            stays the seed's).
    """
    rng = np.random.default_rng(seed)
    h, w = cfg.height, cfg.width
    rcfg = RenderConfig(height=h, width=w)
    spacing = 2.0 / (w - 1)
    head = _head()
    x, y = _grid(rcfg)
    if rng.random() < 0.35:  # a plain wall, lit unevenly by its own colour gradient
        g = rng.normal(size=2)
        ramp = 1.0 + rng.uniform(0.1, 0.5) * (g[0] * x + g[1] * y) / np.linalg.norm(g)
        colour = rng.uniform(0.1, 0.8, 3).astype(np.float32)
        albedo = np.clip(colour * ramp[..., None] * (0.97 + 0.06 * _smooth(rng, (h, w), 24)), 0.03, 0.9)
        z = (0.003 * _smooth(rng, (h, w), 8)[..., 0] / spacing).astype(np.float32)
    else:
        z, _ = _heights(rng, rcfg, x, y)
        z = z * rng.uniform(0.3, 0.5) / spacing
        albedo = random_albedo(rng, h, w)
    albedo = albedo.astype(np.float32)
    floor = float(z.max())
    people = 1 if rng.random() < 0.8 else 2
    person = np.zeros((h, w), bool)
    face = np.zeros((h, w), bool)
    landmarks = []
    tinted = np.ones((h, w, 3), np.float32)
    order = [0, 1] if rng.random() < 0.5 else [1, 0]
    for i in range(people):
        # Face heights (forehead to chin) from 12% of the frame, a webcam's view at arm's length seen at the
        # real-time chain's 1/4 resolution, to 80%, a close-up.
        fraction = (0.12, 0.8) if people == 1 else (0.12, 0.5)
        x_range = (0.0, w - 1.0) if people == 1 else ((0.0, w / 2 + 0.1 * w), (w / 2 - 0.1 * w, w - 1.0))[order[i]]
        p = _person(rng, (h, w), head, fraction, x_range, floor, pose)
        win = p.z > z
        z = np.where(win, p.z, z)
        albedo = np.where(win[..., None], p.albedo, albedo)
        person |= win
        face = np.where(win, p.part == FACE, face)
        tinted = np.where((win & p.lens)[..., None], p.tint, np.where(win[..., None], 1.0, tinted))
        landmarks.append(p.landmarks)
    heights = cv2.GaussianBlur((z * spacing).astype(np.float32), (0, 0), 0.7)
    return PersonScene(heights=heights, albedo=(albedo * tinted).astype(np.float32), face=face, person=person,
                       landmarks=np.stack(landmarks).astype(np.float32)), rng


def render_person_sample(seed: int, cfg: FaceRenderConfig = _DEFAULT,
                         pose: tuple[float, float, float] | None = None) -> dict[str, np.ndarray]:
    """One scene with one or two people under two lights; the same seed and config always give the same arrays.

    The keys, shapes and meaning are those of :func:`~train.sfsnet.data.render_face_sample` (``face`` the
    visible face meshes), plus ``person`` (H, W): 1 on the people, 0 on the background.

    Args:
        seed: the scene's and the lights' seed.
        cfg: image size and lights.
        pose: (yaw, pitch, roll) in degrees for every face instead of random ones.
    """
    scene, rng = person_scene(seed, cfg, pose)
    z = scene.heights
    normals = _normals(z, 2.0 / (cfg.width - 1))
    first = shade_sh(z, normals, scene.albedo, random_lighting(rng, cfg), cfg)
    second = shade_sh(z, normals, scene.albedo, random_lighting(rng, cfg), cfg)
    return {
        "image": first["image"], "normals": normals, "albedo": scene.albedo, "sh": first["sh"],
        "residue": first["residue"], "mask": np.ones(z.shape, np.float32), "face": scene.face.astype(np.float32),
        "relit_image": second["image"], "relit_sh": second["sh"], "relit_sh_image": second["sh_image"],
        "person": scene.person.astype(np.float32),
    }


def render_person_dataset(count: int, seed: int = 0, cfg: FaceRenderConfig = _DEFAULT,
                          workers: int | None = None, progress: bool = False) -> dict[str, np.ndarray]:
    """Render ``count`` scenes with seeds ``seed .. seed + count - 1`` (independent of ``workers``).

    Returns the arrays of :func:`~train.sfsnet.data.render_face_dataset` plus ``person`` (N, H, W).
    """
    return _render_many(render_person_sample, count, seed, cfg, workers, progress, "people")
