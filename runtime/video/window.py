"""The preview window sink (OpenCV HighGUI), kept apart: it needs a display and a GUI build of OpenCV."""

from __future__ import annotations

import os
import threading

import cv2
import numpy as np

from ..core.errors import UserError
from .sinks import Sink

__all__ = ["WindowSink"]


class WindowSink(Sink):
    """Shows frames in a window; q or Esc (or closing the window) sets ``stop_requested``.

    Raises:
        UserError: this OpenCV has no GUI (``opencv-python-headless``) or there is no display.
    """

    def __init__(self, title: str = "edgelight") -> None:
        super().__init__()
        self.title = title
        if os.name == "posix" and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")) \
                and not _is_macos():
            raise UserError("cannot show a window: no display (DISPLAY is not set); drop --show or write a file")
        try:
            cv2.namedWindow(title, cv2.WINDOW_NORMAL)
        except cv2.error:
            raise UserError("cannot show a window: this OpenCV has no GUI support (opencv-python-headless); "
                            "install opencv-python or drop --show") from None

    _latest: np.ndarray | None = None
    _lock = threading.Lock()

    def _write(self, image: np.ndarray) -> None:
        # Writers may run in a worker thread; HighGUI must be driven from the main thread (``pump``).
        with self._lock:
            self._latest = image
        if threading.current_thread() is threading.main_thread():
            self.pump()

    def pump(self) -> None:
        with self._lock:
            image, self._latest = self._latest, None
        if image is not None:
            cv2.imshow(self.title, image)
        key = cv2.waitKey(1) & 0xFF
        if key in (ord("q"), ord("Q"), 27):
            self.stop_requested = True
        elif cv2.getWindowProperty(self.title, cv2.WND_PROP_VISIBLE) < 1:
            self.stop_requested = True

    def _close(self, ok: bool) -> None:
        try:
            cv2.destroyWindow(self.title)
            cv2.waitKey(1)
        except cv2.error:
            pass


def _is_macos() -> bool:
    return os.uname().sysname == "Darwin"
