"""Lossy codecs in memory, through PyAV: training crops as H.264 intra frames (``h264_intra``) and evaluation
clips as a whole (``roundtrip``): encode RGB frames with PyAV (FFmpeg's encoders) and decode them back.

Frames travel as 8-bit RGB converted to YUV 4:2:0 (BT.601, limited range: FFmpeg's defaults, the same both
ways); odd sides are padded by edge replication for the chroma subsampling and cropped off after decoding.
"""

from __future__ import annotations

import io
from fractions import Fraction
from functools import lru_cache

import numpy as np

__all__ = ["h264", "h264_intra", "mpeg4", "pad_even", "roundtrip", "to_uint8"]


def to_uint8(image: np.ndarray) -> np.ndarray:
    """Float RGB in [0, 1] to 8-bit, rounded."""
    return np.clip(np.round(np.asarray(image, dtype=np.float32) * 255.0), 0, 255).astype(np.uint8)


def pad_even(rgb: np.ndarray) -> np.ndarray:
    """An odd height or width padded by one replicated row or column, for 4:2:0 chroma subsampling."""
    h, w = rgb.shape[:2]
    return np.pad(rgb, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge") if h % 2 or w % 2 else rgb


def h264_intra(rgb8: np.ndarray, crf: int, preset: str) -> np.ndarray:
    """One uint8 RGB frame through libx264 as an intra frame and back, in memory: float RGB in [0, 1]."""
    import av

    h, w = rgb8.shape[:2]
    padded = pad_even(rgb8)
    encoder, decoder = _h264_codecs(padded.shape[1], padded.shape[0], crf, preset)
    packets = encoder.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(padded), format="rgb24"))
    frames = [frame for packet in packets for frame in decoder.decode(packet)]
    if len(frames) != 1:
        raise RuntimeError(f"libx264 returned {len(frames)} frames for one")
    return np.ascontiguousarray(frames[0].to_ndarray(format="rgb24")[:h, :w]).astype(np.float32) / 255.0


@lru_cache(maxsize=128)
def _h264_codecs(width: int, height: int, crf: int, preset: str):
    """An intra-only libx264 encoder without delay and its decoder, kept open: opening one costs more
    than encoding a training crop."""
    import av

    encoder = av.CodecContext.create("libx264", "w")
    encoder.width, encoder.height, encoder.pix_fmt = width, height, "yuv420p"
    encoder.time_base = Fraction(1, 30)
    encoder.options = {"crf": str(crf), "preset": preset, "tune": "zerolatency", "x264-params": "keyint=1:threads=1"}
    encoder.open()
    decoder = av.CodecContext.create("h264", "r")
    return encoder, decoder


def roundtrip(frames: list[np.ndarray], codec: str, *, options: dict[str, str] | None = None, gop: int = 30,
              fps: int = 30, bit_rate: int | None = None, qscale: int | None = None) -> list[np.ndarray]:
    """Encode ``frames`` (float RGB in [0, 1] or uint8, all one size) as one clip and decode it.

    Args:
        frames: the clip's frames, in order.
        codec: an FFmpeg encoder name (``libx264``, ``mpeg4``).
        options: encoder private options (``{"crf": "32", "preset": "fast"}`` for libx264).
        gop: frames between intra frames.
        fps: frame rate written to the stream (rate control budgets bits per second).
        bit_rate: target bits per second, for encoders with bit-rate control.
        qscale: a fixed quantiser (``mpeg4``'s ``-q:v``), for the whole clip.

    Returns:
        The decoded frames as uint8 RGB (H, W, 3), as many as went in.
    """
    import av

    if not frames:
        return []
    h, w = frames[0].shape[:2]
    ph, pw = h + h % 2, w + w % 2
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mp4") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = pw, ph, "yuv420p"
        stream.codec_context.gop_size = gop
        if bit_rate is not None:
            stream.bit_rate = int(bit_rate)
            stream.codec_context.bit_rate_tolerance = int(bit_rate)
        if qscale is not None:
            stream.codec_context.qmin = stream.codec_context.qmax = int(qscale)
        if options:
            stream.options = dict(options)
        for frame in frames:
            rgb = pad_even(frame if frame.dtype == np.uint8 else to_uint8(frame))
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    buffer.seek(0)
    with av.open(buffer) as container:
        decoded = [f.to_ndarray(format="rgb24")[:h, :w] for f in container.decode(video=0)]
    if len(decoded) != len(frames):
        raise RuntimeError(f"{codec}: {len(frames)} frames encoded but {len(decoded)} decoded")
    return [np.ascontiguousarray(f) for f in decoded]


def h264(frames: list[np.ndarray], crf: int = 32, gop: int = 30) -> list[np.ndarray]:
    """H.264 (x264, preset ``fast``, constant rate factor ``crf``, in-loop deblocking on) and back."""
    return roundtrip(frames, "libx264", options={"crf": str(crf), "preset": "fast"}, gop=gop)


def mpeg4(frames: list[np.ndarray], *, bits_per_pixel: float | None = None, qscale: int | None = None,
          gop: int = 30, fps: int = 30) -> list[np.ndarray]:
    """MPEG-4 Part 2 (FFmpeg's ``mpeg4``: 8x8 DCT, no deblocking filter) at a bit rate or a fixed quantiser."""
    bit_rate = None
    if bits_per_pixel is not None:
        h, w = frames[0].shape[:2]
        bit_rate = max(8_000, round(bits_per_pixel * h * w * fps))
    return roundtrip(frames, "mpeg4", gop=gop, fps=fps, bit_rate=bit_rate, qscale=qscale)
