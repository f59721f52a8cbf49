"""The two GPU kernels that convert video frames, their CUDA C source, and their NumPy definitions.

``frame_to_tensor`` turns a uint8 HxWx3 BGR frame into a 1x3xHxW RGB tensor in 0..1 (FP32 or FP16);
``tensor_to_frame`` is the inverse (clip to 0..1, optional linear -> sRGB, round half up, uint8 BGR).
Their arithmetic is that of the host conversion in ``runtime.tasks``, step for step, so GPU and host
frames are identical; ``frame_to_tensor_reference`` and ``tensor_to_frame_reference`` are the NumPy
definitions the tests hold the kernels to. ``Cuda.frame_to_tensor`` / ``tensor_to_frame`` (in
``runtime.cuda.base``) launch them. This module imports only NumPy.
"""

from __future__ import annotations

import numpy as np

__all__ = ["BLOCK", "KERNEL_SOURCE", "KERNELS", "TENSOR_DTYPES", "blocks", "frame_to_tensor_reference",
           "tensor_to_frame_reference"]

TENSOR_DTYPES = {"float32": np.dtype(np.float32), "float16": np.dtype(np.float16)}
"""The tensor types the kernels read and write, by the names their ``dtype`` arguments take."""

BLOCK = 256
"""Threads per block of the conversion kernels (one thread per pixel)."""

# One source for both implementations (pycuda compiles it with nvcc, cuda-python with NVRTC). No headers:
# FP16 conversion is inline PTX, so NVRTC needs no include path. The _rn intrinsics keep the compiler from
# fusing a multiply and an add, which would round differently from NumPy's two steps.
KERNEL_SOURCE = r"""
extern "C" {

__device__ __forceinline__ unsigned short edgelight_f32_to_f16(float x) {
    unsigned short h;
    asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(x));
    return h;
}

__device__ __forceinline__ float edgelight_f16_to_f32(unsigned short h) {
    float x;
    asm("cvt.f32.f16 %0, %1;" : "=f"(x) : "h"(h));
    return x;
}

/* uint8 BGR (HxWx3) -> channel c of RGB planes, scaled by the float32 nearest to 1/255 (as runtime.tasks does). */
__device__ __forceinline__ float edgelight_channel(const unsigned char* src, long long i, int c) {
    return __fmul_rn((float)src[3 * i + (2 - c)], 0.003921569f);
}

/* One plane value -> uint8: clip to 0..1 (NaN -> 0), optional linear -> sRGB, x * 255 + 0.5 truncated. */
__device__ __forceinline__ unsigned char edgelight_to_u8(float x, int srgb) {
    x = fminf(fmaxf(x, 0.0f), 1.0f);
    if (srgb) {
        x = x <= 0.0031308f ? __fmul_rn(x, 12.92f) : __fsub_rn(__fmul_rn(1.055f, powf(x, 0.41666666f)), 0.055f);
        x = fminf(fmaxf(x, 0.0f), 1.0f);
    }
    return (unsigned char)__fadd_rn(__fmul_rn(x, 255.0f), 0.5f);
}

__global__ void edgelight_frame_to_tensor_f32(const unsigned char* src, float* dst, int n) {
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    for (int c = 0; c < 3; ++c) dst[c * (long long)n + i] = edgelight_channel(src, i, c);
}

__global__ void edgelight_frame_to_tensor_f16(const unsigned char* src, unsigned short* dst, int n) {
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    for (int c = 0; c < 3; ++c) dst[c * (long long)n + i] = edgelight_f32_to_f16(edgelight_channel(src, i, c));
}

__global__ void edgelight_tensor_to_frame_f32(const float* src, unsigned char* dst, int n, int srgb) {
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    for (int c = 0; c < 3; ++c) dst[3 * i + (2 - c)] = edgelight_to_u8(src[c * (long long)n + i], srgb);
}

__global__ void edgelight_tensor_to_frame_f16(const unsigned short* src, unsigned char* dst, int n, int srgb) {
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    for (int c = 0; c < 3; ++c)
        dst[3 * i + (2 - c)] = edgelight_to_u8(edgelight_f16_to_f32(src[c * (long long)n + i]), srgb);
}

}
"""

KERNELS = {
    ("frame_to_tensor", "float32"): "edgelight_frame_to_tensor_f32",
    ("frame_to_tensor", "float16"): "edgelight_frame_to_tensor_f16",
    ("tensor_to_frame", "float32"): "edgelight_tensor_to_frame_f32",
    ("tensor_to_frame", "float16"): "edgelight_tensor_to_frame_f16",
}
"""Kernel names in ``KERNEL_SOURCE`` by (conversion, tensor type)."""

_SRGB_EXPONENT = np.float32(0.41666666)  # the kernel's 1/2.4, as the same float32
_INV_255 = np.float32(1 / 255)  # 0.003921569f in the kernel


def frame_to_tensor_reference(frame: np.ndarray, dtype: str = "float32") -> np.ndarray:
    """The NumPy definition of the ``frame_to_tensor`` kernel: uint8 HxWx3 BGR -> 1x3xHxW RGB in 0..1."""
    if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
        raise ValueError(f"expected a uint8 HxWx3 frame, got {frame.dtype} {frame.shape}")
    planes = np.ascontiguousarray(frame[..., ::-1].transpose(2, 0, 1)[None], dtype=np.float32) * _INV_255
    return planes.astype(TENSOR_DTYPES[dtype])


def tensor_to_frame_reference(tensor: np.ndarray, srgb: bool = False) -> np.ndarray:
    """The NumPy definition of the ``tensor_to_frame`` kernel: 1x3xHxW RGB -> uint8 HxWx3 BGR.

    Values are clipped to 0..1 (NaN becomes 0), optionally encoded from linear light to sRGB
    (IEC 61966-2-1), then mapped to ``floor(x * 255 + 0.5)``, all in float32.
    """
    if tensor.ndim != 4 or tensor.shape[:2] != (1, 3):
        raise ValueError(f"expected a 1x3xHxW tensor, got shape {tensor.shape}")
    x = np.nan_to_num(tensor[0].astype(np.float32), nan=0.0, posinf=1.0, neginf=0.0)
    x = np.clip(x, np.float32(0), np.float32(1))
    if srgb:
        with np.errstate(divide="ignore"):
            curve = np.float32(1.055) * np.power(x, _SRGB_EXPONENT) - np.float32(0.055)
        x = np.clip(np.where(x <= np.float32(0.0031308), x * np.float32(12.92), curve), np.float32(0), np.float32(1))
    values = (x * np.float32(255) + np.float32(0.5)).astype(np.uint8)
    return np.ascontiguousarray(values.transpose(1, 2, 0)[..., ::-1])


def blocks(threads: int) -> int:
    """Blocks of ``BLOCK`` threads that cover ``threads`` threads."""
    return (threads + BLOCK - 1) // BLOCK
