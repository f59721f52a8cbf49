"""Runners: one module per backend behind the ``Runner`` protocol (``base``), each registering its backend.

Importing this package registers every backend (``runtime.backends``) without importing any backend
library: the modules import tensorrt, onnxruntime or torch when a runner activates. The order
below is the order ``backend="auto"`` tries them for a folder.
"""

from . import torch, tensorrt, onnxruntime  # noqa: F401  (each registers its backend)
