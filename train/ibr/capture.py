"""Capture folders (seed 001): one static scene photographed under many point lights, as a folder of
images plus ``lights.csv`` (header ``image,x,y`` and optionally ``z``), one row per image.

Images are linear HDR: ``.hdr`` (Radiance), float ``.tif``/``.tiff`` and ``.npy`` (float H x W x 3 RGB)
as they are; 8- or 16-bit ``.png``/``.jpg``/``.jpeg``/``.tif`` are read as sRGB and converted to linear
light. ``.exr`` is read through OpenCV when its build has OpenEXR (set ``OPENCV_IO_ENABLE_OPENEXR=1``).
Negative values (from black-level subtraction) are clamped to 0; NaN or inf is an error naming the file.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np

from runtime.core.color import srgb_to_linear
from runtime.core.errors import DatasetError

from .data import Capture

__all__ = ["LIGHTS_CSV", "IMAGE_SUFFIXES", "read_hdr_image", "read_capture", "write_capture"]

LIGHTS_CSV = "lights.csv"
SRGB_SUFFIXES = (".png", ".jpg", ".jpeg")
FLOAT_SUFFIXES = (".hdr", ".exr", ".npy", ".tif", ".tiff")
IMAGE_SUFFIXES = SRGB_SUFFIXES + FLOAT_SUFFIXES


def read_hdr_image(path: str | os.PathLike) -> np.ndarray:
    """One capture image as linear float32 RGB (H, W, 3); raises DatasetError naming the file."""
    import cv2

    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".npy":
        try:
            image = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise DatasetError(f"cannot read {path}: {str(exc).splitlines()[0]}") from None
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype.kind != "f":
            raise DatasetError(f"{path}: .npy images must be float arrays of shape (H, W, 3), got "
                               f"{image.dtype} {image.shape}")
        image = image.astype(np.float32)
    else:
        data = np.fromfile(str(path), dtype=np.uint8) if path.is_file() else None
        image = None
        if data is not None and data.size:
            try:
                image = cv2.imdecode(data, cv2.IMREAD_ANYDEPTH | cv2.IMREAD_COLOR)
            except cv2.error:
                image = None
        if image is None:
            hint = ""
            if suffix == ".exr":
                hint = " (this OpenCV build may lack OpenEXR: convert to .hdr, float .tif or .npy)"
            raise DatasetError(f"cannot read image {path}{hint}")
        image = image[..., ::-1]
        if image.dtype.kind == "f":
            image = image.astype(np.float32)
        else:
            image = srgb_to_linear(image.astype(np.float32) / float(np.iinfo(image.dtype).max))
    if not np.isfinite(image).all():
        raise DatasetError(f"{path.name}: the HDR image holds non-finite values (NaN or inf)")
    return np.ascontiguousarray(np.maximum(image, 0.0), dtype=np.float32)


def _listing(names, most: int = 5) -> str:
    names = sorted(names)
    shown = ", ".join(names[:most])
    return shown + (f" and {len(names) - most} more" if len(names) > most else "")


def _read_lights(path: Path) -> tuple[list[str], np.ndarray, np.ndarray | None]:
    try:
        with open(path, newline="") as f:
            rows = list(csv.reader(f))
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"cannot read {path}: {exc}") from None
    rows = [r for r in rows if any(cell.strip() for cell in r)]
    header = [c.strip().lower() for c in rows[0]] if rows else []
    if not {"image", "x", "y"} <= set(header):
        raise DatasetError(f"{path}: the first line must be the header image,x,y (optionally z), "
                           f"got {','.join(header)!r}")
    col = {name: header.index(name) for name in ("image", "x", "y", "z") if name in header}
    names, xy, z = [], [], []
    for line, row in enumerate(rows[1:], start=2):
        try:
            name = row[col["image"]].strip()
            values = [float(row[col[k]]) for k in ("x", "y", "z") if k in col]
        except (IndexError, ValueError):
            raise DatasetError(f"{path}, line {line}: expected {','.join(col)} with numbers, "
                               f"got {','.join(row)!r}") from None
        if not name or not np.isfinite(values).all():
            raise DatasetError(f"{path}, line {line}: needs an image name and finite numbers, got {','.join(row)!r}")
        names.append(name)
        xy.append(values[:2])
        if "z" in col:
            z.append(values[2])
    duplicates = {n for n in names if names.count(n) > 1}
    if duplicates:
        raise DatasetError(f"{path}: images listed more than once: {_listing(duplicates)}")
    return names, np.asarray(xy, np.float32).reshape(-1, 2), (np.asarray(z, np.float32) if "z" in col else None)


def read_capture(folder: str | os.PathLike, progress: bool = False) -> Capture:
    """Read a capture folder (images + lights.csv); every inconsistency is a DatasetError naming the files."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DatasetError(f"capture folder does not exist: {folder}")
    files = {p.name for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES}
    csv_path = folder / LIGHTS_CSV
    if not files and not csv_path.exists():
        raise DatasetError(f"{folder} is empty: expected images and {LIGHTS_CSV} (header image,x,y)")
    if not csv_path.is_file():
        raise DatasetError(f"{folder}: no {LIGHTS_CSV} (one row image,x,y per image)")
    names, lights, z = _read_lights(csv_path)
    if not names and not files:
        raise DatasetError(f"{folder}: no images and no rows in {LIGHTS_CSV}")
    missing = [n for n in names if n not in files]
    extra = sorted(files - set(names))
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"rows without an image file: {_listing(missing)}")
        if extra:
            parts.append(f"images without a row: {_listing(extra)}")
        raise DatasetError(f"{folder}: {LIGHTS_CSV} does not match the images ({'; '.join(parts)})")
    iterator = names
    if progress:
        from tqdm import tqdm

        iterator = tqdm(names, desc=f"reading {folder.name}", unit="image", leave=False)
    images = [read_hdr_image(folder / n) for n in iterator]
    shapes = [im.shape[:2] for im in images]
    common = max(set(shapes), key=shapes.count)
    odd = [f"{n} is {s[0]}x{s[1]}" for n, s in zip(names, shapes) if s != common]
    if odd:
        raise DatasetError(f"{folder}: images differ in size (most are {common[0]}x{common[1]}; "
                           f"{_listing(odd, 3)})")
    return Capture(np.stack(images), lights, names, z, {"source": str(folder.resolve())})


def write_capture(folder: str | os.PathLike, capture: Capture, image_format: str = "npy") -> Path:
    """Write ``capture`` as a new folder (images + lights.csv), atomically: all of it or nothing.

    Args:
        image_format: ``npy`` (lossless float32) or ``hdr`` (Radiance RGBE, about 1% precision).
    """
    import cv2

    from runtime.core.io import atomic_dir

    if image_format not in ("npy", "hdr"):
        raise ValueError(f"image_format must be npy or hdr, got {image_format!r}")
    folder = Path(folder)
    if folder.exists():
        raise DatasetError(f"{folder} already exists; choose a new folder")
    with atomic_dir(folder) as tmp:
        rows = []
        for i, (image, (x, y)) in enumerate(zip(capture.images, capture.lights)):
            name = f"light_{i:03d}.{image_format}"
            if image_format == "npy":
                np.save(tmp / name, image.astype(np.float32))
            elif not cv2.imwrite(str(tmp / name), np.ascontiguousarray(image[..., ::-1], dtype=np.float32)):
                raise DatasetError(f"OpenCV could not write {name}")
            row = [name, f"{x:.6f}", f"{y:.6f}"]
            if capture.z is not None:
                row.append(f"{capture.z[i]:.6f}")
            rows.append(row)
        with open(tmp / LIGHTS_CSV, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["image", "x", "y"] + (["z"] if capture.z is not None else []))
            writer.writerows(rows)
    return folder
