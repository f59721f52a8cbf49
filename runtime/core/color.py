"""Colour conversions (numpy only): sRGB <-> linear light, and uint8 BGR frames <-> float NCHW RGB tensors.

``as_bgr8`` is the one check of a frame the Python API is given (``Pipeline.process``): uint8 HxWx3
BGR passes unchanged; grey, BGRA and 16-bit frames are converted; anything else is a ValueError
that says what is expected.
"""

from __future__ import annotations

import numpy as np

__all__ = ["srgb_to_linear", "linear_to_srgb", "as_bgr8", "frame_to_tensor", "tensor_to_frame"]

EXPECTED_FRAME = "expected a uint8 (or uint16) BGR frame of shape HxWx3 (grey HxW and BGRA HxWx4 are converted)"


def srgb_to_linear(values: np.ndarray) -> np.ndarray:
    """sRGB-encoded values in 0..1 -> linear light (float32), the IEC 61966-2-1 curve."""
    v = np.clip(np.asarray(values, np.float32), 0.0, 1.0)
    return np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4).astype(np.float32)


def linear_to_srgb(values: np.ndarray) -> np.ndarray:
    """Linear light (clipped to 0..1) -> sRGB-encoded values (float32), the IEC 61966-2-1 curve."""
    x = np.clip(np.asarray(values, np.float32), 0.0, 1.0)
    return np.where(x <= 0.0031308, 12.92 * x, 1.055 * np.power(x, 1 / 2.4) - 0.055).astype(np.float32)


def as_bgr8(frame: np.ndarray) -> np.ndarray:
    """A frame as uint8 HxWx3 BGR, or a ValueError that says what was given and what is expected.

    * uint8 HxWx3: returned as it is (no copy; views such as ``frame[:, ::-1]`` too);
    * grey HxW or HxWx1: the grey value in all three channels; BGRA HxWx4: the alpha dropped;
    * uint16 in any of these layouts: ``round(value / 257)``, so 0..65535 maps onto 0..255;
    * float, bool, other integer and complex frames, empty frames, other shapes, non-arrays: ValueError
      (a float frame has no single meaning: 0..1 or 0..255, linear or sRGB, so it is never guessed).
    """
    if not isinstance(frame, np.ndarray):
        hint = ": pass the frame as a numpy array" if frame is not None else ""
        raise ValueError(f"{EXPECTED_FRAME}; got {type(frame).__name__}{hint}")
    dtype, shape = frame.dtype, frame.shape
    if dtype == np.uint8 and len(shape) == 3 and shape[2] == 3 and shape[0] and shape[1]:
        return frame
    if dtype not in (np.uint8, np.uint16):
        if dtype.kind == "f":
            hint = ": scale float images to 0..255 and convert with frame.astype(np.uint8)"
        elif dtype.kind == "b":
            hint = ": convert a mask with frame.astype(np.uint8) * 255"
        elif dtype.kind in "iu":
            hint = ": scale to 0..255 and convert with frame.astype(np.uint8)"
        else:
            hint = ""
        raise ValueError(f"{EXPECTED_FRAME}; got {dtype} {shape}{hint}")
    if len(shape) not in (2, 3) or (len(shape) == 3 and shape[2] not in (1, 3, 4)):
        raise ValueError(f"{EXPECTED_FRAME}; got {dtype} {shape}")
    if not (shape[0] and shape[1]):
        raise ValueError(f"{EXPECTED_FRAME}; got {dtype} {shape}: an empty frame")
    if dtype == np.uint16:
        frame = ((frame.astype(np.uint32) + 128) // 257).astype(np.uint8)
    if frame.ndim == 2:
        frame = frame[..., None]
    if frame.shape[2] == 1:
        return np.repeat(frame, 3, axis=2)
    if frame.shape[2] == 4:
        return np.ascontiguousarray(frame[..., :3])
    return frame


def frame_to_tensor(frame: np.ndarray) -> np.ndarray:
    """uint8 HxWx3 BGR (or any frame ``as_bgr8`` converts) -> float32 1x3xHxW RGB in 0..1."""
    frame = as_bgr8(frame)
    return np.ascontiguousarray(frame[..., ::-1].transpose(2, 0, 1)[None], dtype=np.float32) * np.float32(1 / 255)


def tensor_to_frame(tensor: np.ndarray) -> np.ndarray:
    """float 1x3xHxW (or 3xHxW) RGB in 0..1 -> uint8 HxWx3 BGR, clipped and rounded."""
    chw = tensor[0] if tensor.ndim == 4 else tensor
    _, h, w = chw.shape
    frame = np.empty((h, w, 3), np.uint8)
    plane = np.empty((h, w), np.float32)
    for i in range(3):  # plane by plane on contiguous memory: about 4x faster than clip + transpose of the whole
        np.multiply(chw[2 - i], np.float32(255.0), out=plane, casting="unsafe")
        np.add(plane, np.float32(0.5), out=plane)
        np.clip(plane, np.float32(0.0), np.float32(255.0), out=plane)
        frame[..., i] = plane
    return frame
