"""Reading a written clip back in the tests: every frame OpenCV decodes, independently of the runtime's sources."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np


def read_frames(path: Path) -> list[np.ndarray]:
    """Every decoded frame of ``path`` (uint8 BGR), in order."""
    capture = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            return frames
        frames.append(frame)
