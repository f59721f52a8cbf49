"""Relighting on real photographs: figures against a face model's mesh, and an image strip.

Synthetic held-out figures say how well a network learned its renderer; they say little about a real
face. ``python -m train.sfsnet real-eval`` runs a trained decomposition on real portraits (a folder
of them, or scikit-image's astronaut by default) and scores it against what MediaPipe's face-mesh
model (``train.facemesh``) finds in the same photograph:

- **normal error**: mean angle between the predicted normals and the normals of the fitted 468-point
  mesh, over the mesh's pixels (the mesh is smooth and has no pores or wrinkles, so this is a
  pseudo ground truth of the face's overall shape, which is what relighting needs);
- **directionality**: the photograph relit with the named SH lights ``left`` and ``right``; for each,
  the ratio of the mean linear luminance of the face's left half to its right half (split at the
  nose tip); the report gives ``flip`` = ratio(left light) / ratio(right light), 1.0 when the light's
  direction has no effect;
- **reconstruction**: the photograph relit under the light the network estimated from it, against
  the photograph (PSNR, sRGB); and the decomposition's own ``albedo x SH shading`` against it;
- **mask IoU** (models with a person mask): against MediaPipe's selfie segmentation, thresholded at 0.5.

Two kinds of model are accepted: an ``sfsnet`` checkpoint relights as SfSNet does (and as the
``relight_sh`` chain does): ``albedo x sh_shading(normals, light)`` at full resolution; a ``relight``
chain with a ratio path (``relight_edge``) relights the way it runs in the runtime.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from runtime.core.errors import UserError
from runtime.core.lighting import sh_preset

from ..models.sh import sh_shading
from ..relight.model import linear_to_srgb as _linear_to_srgb
from ..relight.model import srgb_to_linear as _srgb_to_linear

__all__ = ["RealFace", "Relighter", "find_faces", "evaluate_real", "save_real_strip", "STRIP_LIGHTS"]

log = logging.getLogger("train.sfsnet")

STRIP_LIGHTS = ("left", "right", "top", "front")
_LUMA = torch.tensor([0.2126, 0.7152, 0.0722]).reshape(1, 3, 1, 1)


@dataclass
class RealFace:
    """One face in one photograph: the photograph (sRGB float RGB), the mesh's normals and pixels, and its centre."""

    name: str
    image: np.ndarray
    normals: np.ndarray
    mask: np.ndarray
    centre_x: float
    person: np.ndarray | None = None


def find_faces(images: list[tuple[str, np.ndarray]], max_side: int = 640) -> list[RealFace]:
    """Faces in sRGB photographs (float RGB in [0, 1]), with their mesh normals; photographs larger than
    ``max_side`` are scaled down first. Photographs without a face are skipped with a warning (an
    error when no photograph has one)."""
    import cv2

    from ..facemesh import FaceMesh, mesh_normals, triangles

    mesh = FaceMesh()
    faces, skipped = [], []
    for name, image in images:
        scale = min(1.0, max_side / max(image.shape[:2]))
        if scale < 1.0:
            image = cv2.resize(image, (round(image.shape[1] * scale), round(image.shape[0] * scale)),
                               interpolation=cv2.INTER_AREA)
        rgb8 = (np.clip(image, 0, 1) * 255 + 0.5).astype(np.uint8)
        found = mesh.faces(rgb8)
        if not found:
            skipped.append(name)
            continue
        person = mesh.segment(rgb8)
        h, w = image.shape[:2]
        for i, face in enumerate(found):
            normals, covered = mesh_normals(face.points, triangles(), h, w)
            # Keep off the mesh's silhouette, where one pixel's normal is mostly the rim's.
            covered = cv2.erode(covered.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
            label = name if len(found) == 1 else f"{name}#{i + 1}"
            faces.append(RealFace(label, image.astype(np.float32), normals.astype(np.float32), covered,
                                  float(face.points[1, 0]), person))
    if not faces:
        shown = ", ".join(skipped[:3]) + (f" and {len(skipped) - 3} more" if len(skipped) > 3 else "")
        raise UserError(f"no face found in {shown}")
    for name in skipped:
        log.warning("%s: no face found; skipped", name)
    return faces


class Relighter:
    """The two kinds of model behind one interface: decompose a photograph, relight it.

    Raises UserError for a relighting chain other than ``relight_edge`` (its sfsnet checkpoint is what to score).
    """

    def __init__(self, model) -> None:
        self.model = model.eval()
        self.chain = getattr(model, "family", "") == "relight"
        if self.chain and not hasattr(model.config, "scale"):
            raise UserError(f"this takes an sfsnet checkpoint or a relight_edge chain; got a "
                            f"{model.config.light}-light chain (evaluate its sfsnet checkpoint instead)")
        self.sfsnet = model.sfsnet if self.chain else model

    @torch.no_grad()
    def decompose(self, srgb: torch.Tensor) -> dict[str, torch.Tensor]:
        """normals, albedo, sh and (when the model has one) mask, at the photograph's resolution; plus
        ``reconstruction`` = albedo x SH shading under the estimated light (sRGB)."""
        if self.chain:
            scale = int(self.model.config.scale)
            h, w = srgb.shape[-2:]
            parts = self.model.decompose(srgb)
            def up(t: torch.Tensor) -> torch.Tensor:
                return F.interpolate(t, scale_factor=scale, mode="bilinear", align_corners=False)[..., :h, :w]

            out = {"normals": F.normalize(up(parts["normals"]), dim=1), "albedo": up(parts["albedo"]),
                   "sh": parts["sh"]}
            if "mask" in parts:
                out["mask"] = up(parts["mask"])
        else:
            parts = self.sfsnet.decompose(_srgb_to_linear(srgb))
            out = {k: parts[k] for k in ("normals", "albedo", "sh", "mask") if k in parts}
        out["reconstruction"] = _linear_to_srgb(out["albedo"] * sh_shading(out["normals"], out["sh"]))
        return out

    @torch.no_grad()
    def relight(self, srgb: torch.Tensor, sh: torch.Tensor,
                parts: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        """The photograph (sRGB, N x 3 x H x W) under the SH light ``sh`` (N, 27), sRGB. An sfsnet reuses
        ``parts`` (this photograph's ``decompose``) when given; a chain always runs its own forward pass, the
        path the runtime runs."""
        if self.chain:
            n = srgb.shape[0]
            relit, _ = self.model(srgb, sh, torch.ones(n, 1), torch.zeros(n, 28))
            return relit
        parts = parts or self.decompose(srgb)
        return _linear_to_srgb(parts["albedo"] * sh_shading(parts["normals"], sh))


def _psnr(a: torch.Tensor, b: torch.Tensor, cap: float = 100.0) -> float:
    mse = float(((a.clamp(0, 1) - b) ** 2).mean())
    return cap if mse <= 10 ** (-cap / 10) else -10.0 * math.log10(mse)


def _halves(luma: torch.Tensor, mask: np.ndarray, centre_x: float) -> float:
    """Mean luminance of the face's left half over that of its right half (image left and right)."""
    columns = np.arange(mask.shape[1])[None, :]
    left = torch.from_numpy(mask & (columns < centre_x))
    right = torch.from_numpy(mask & (columns >= centre_x))
    values = luma[0, 0]
    return float(values[left].mean() / values[right].mean().clamp_min(1e-6))


def evaluate_real(model, faces: list[RealFace]) -> tuple[dict, list[dict], list[dict]]:
    """Mean figures over the faces, and each face's own (see the module docstring), plus the strips' panels."""
    relighter = Relighter(model)
    rows, panels = [], []
    for face in faces:
        srgb = torch.from_numpy(np.ascontiguousarray(face.image.transpose(2, 0, 1)))[None]
        parts = relighter.decompose(srgb)
        target = torch.from_numpy(np.ascontiguousarray(face.normals.transpose(2, 0, 1)))[None]
        covered = torch.from_numpy(face.mask)
        cos = (parts["normals"] * target).sum(1)[0].clamp(-1, 1)
        flat_cos = target[0, 2].clamp(-1, 1)
        row = {"name": face.name, "face_pixels": int(face.mask.sum()),
               "normal_deg": float(torch.rad2deg(torch.acos(cos[covered])).mean()),
               "flat_normal_deg": float(torch.rad2deg(torch.acos(flat_cos[covered])).mean())}
        relit = {name: relighter.relight(srgb, torch.from_numpy(sh_preset(name))[None], parts) for name in STRIP_LIGHTS}
        ratio = {name: _halves((_srgb_to_linear(relit[name]) * _LUMA).sum(1, keepdim=True), face.mask, face.centre_x)
                 for name in ("left", "right")}
        row.update(left_right_under_left=ratio["left"], left_right_under_right=ratio["right"],
                   flip=ratio["left"] / max(ratio["right"], 1e-6))
        row["recon_psnr"] = _psnr(relighter.relight(srgb, parts["sh"], parts), srgb)
        row["decomposition_psnr"] = _psnr(parts["reconstruction"], srgb)
        if "mask" in parts and face.person is not None:
            predicted, reference = parts["mask"][0, 0].numpy() > 0.5, face.person > 0.5
            union = np.logical_or(predicted, reference).sum()
            row["mask_iou"] = float(np.logical_and(predicted, reference).sum() / max(union, 1))
        rows.append(row)
        panels.append({"face": face, "parts": parts, "relit": relit})
    numeric = [k for k, v in rows[0].items() if isinstance(v, float)]
    means = {k: round(float(np.mean([r[k] for r in rows if k in r])), 4) for k in numeric}
    means["faces"] = len(rows)
    return means, rows, panels


def save_real_strip(path: Path, panels: list[dict], title: str = "") -> Path:
    """One row per face, cropped around it: input, predicted normals, mesh normals, albedo, then the relit
    photographs."""
    from ..plots import save_image_grid

    rows = []
    for panel in panels:
        face, parts = panel["face"], panel["parts"]
        ys, xs = np.nonzero(face.mask)
        cy, cx = (ys.min() + ys.max()) / 2, (xs.min() + xs.max()) / 2
        half = 0.8 * max(ys.max() - ys.min(), xs.max() - xs.min())
        box = (slice(max(0, int(cy - half)), int(cy + half) + 1), slice(max(0, int(cx - half)), int(cx + half) + 1))
        hwc = [t[0].detach().float().numpy().transpose(1, 2, 0)[box]
               for t in (parts["normals"], _linear_to_srgb(parts["albedo"]),
                         *(panel["relit"][n] for n in STRIP_LIGHTS))]
        mesh = np.where(face.mask[..., None], (face.normals + 1) / 2, 0.0)
        rows.append([face.image[box], (hwc[0] + 1) / 2, mesh[box], *hwc[1:]])
    names = ["input", "normals", "mesh normals", "albedo", *(f"relit: {n}" for n in STRIP_LIGHTS)]
    return save_image_grid(path, rows, names, title)
