"""Lean runtime for edgelight models on video: numpy and OpenCV only; each backend loads when used.

* ``runtime.load(path)``: the runner for an engine (TensorRT), an ONNX file (ONNX Runtime) or a
  checkpoint (PyTorch, the reference); every runner has ``activate`` / ``infer`` / ``deactivate``
  and is a context manager (``runtime.runners``).
* ``runtime.Pipeline``: source -> runner -> sink with per-stage statistics; ``process(frame)`` for
  apps that own their capture loop. Tasks (``runtime.tasks``): enhance, relight, ibr.
* ``runtime.video``: sources (files, cameras, network streams, image folders) and sinks.
* ``runtime.cuda``: streams, events, device and pinned buffers (pycuda or cuda-python).

Importing this package imports neither torch, onnxruntime, tensorrt nor a CUDA library.
"""

from .load import load
from .pipeline import Pipeline

__all__ = ["load", "Pipeline"]
