"""The enhance task's temporal noise reduction (``--denoise``): quieter steady scenes, no trails behind motion."""

import numpy as np
import pytest

from runtime.core.temporal import TemporalDenoiser


def test_steady_noise_falls_and_the_input_is_left_alone():
    rng = np.random.default_rng(0)
    clean = np.full((48, 64, 3), 0.4, np.float32)
    denoiser = TemporalDenoiser(0.8, threshold=0.08)
    for _ in range(20):
        frame = clean + rng.normal(0, 0.02, clean.shape).astype(np.float32)
        kept = frame.copy()
        out = denoiser(frame)
        np.testing.assert_array_equal(frame, kept)
    assert out.dtype == np.float32 and out.shape == clean.shape
    assert np.std(out - clean) < 0.5 * 0.02


def test_a_moving_edge_leaves_no_trail():
    denoiser = TemporalDenoiser(0.8)
    for t in range(6):
        frame = np.zeros((32, 64, 3), np.uint8)
        frame[:, 8 + 6 * t :] = 200
        out = denoiser(frame)
    assert out.dtype == np.uint8 and np.abs(out.astype(int) - frame).max() <= 1


def test_off_restart_and_bad_settings():
    frame = np.full((4, 4, 3), 7, np.uint8)
    assert TemporalDenoiser(0.0)(frame) is frame
    denoiser = TemporalDenoiser(0.5)
    denoiser(frame)
    denoiser.reset()
    np.testing.assert_array_equal(denoiser(np.zeros_like(frame)), 0)  # nothing of the frame before the reset
    with pytest.raises(ValueError, match=r"strength must be in \[0, 1\)"):
        TemporalDenoiser(1.0)
    with pytest.raises(ValueError, match="threshold must be positive"):
        TemporalDenoiser(0.5, threshold=0.0)
