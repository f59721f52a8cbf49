"""A Triton Inference Server model repository for the exported ONNX model and TensorRT engine.

Layout (one model per artefact, version 1)::

    REPO/<name>_onnx/config.pbtxt        backend "onnxruntime"
    REPO/<name>_onnx/1/model.onnx
    REPO/<name>_tensorrt/config.pbtxt    backend "tensorrt"
    REPO/<name>_tensorrt/1/model.plan

The batch axis is Triton's (``max_batch_size``, dynamic batching on); height and width are -1.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from runtime.core.sidecar import Sidecar

__all__ = ["config_pbtxt", "write_triton_model"]

_TYPES = {"fp32": "TYPE_FP32", "fp16": "TYPE_FP16"}


def _dims(spec: dict) -> list[int]:
    """Dimensions after the batch axis: (C, -1, -1) for images, (K,) for vectors."""
    if "shape" in spec:
        return [int(d) for d in spec["shape"][1:]]
    return [int(spec["channels"]), -1, -1]


def config_pbtxt(model_name: str, backend: str, sidecar: Sidecar, max_batch_size: int) -> str:
    """The ``config.pbtxt`` text for one artefact, from its sidecar.

    Args:
        model_name: the folder name of the model in the repository.
        backend: ``onnxruntime`` or ``tensorrt``.
        sidecar: the artefact's sidecar (contract and I/O precision).
        max_batch_size: the largest batch Triton may form (an engine's profile maximum).
    """
    dtype = _TYPES[sidecar.io_precision]

    def block(kind: str, specs: list[dict]) -> str:
        rows = [f'  {{\n    name: "{s["name"]}"\n    data_type: {dtype}\n'
                f'    dims: [ {", ".join(map(str, _dims(s)))} ]\n  }}' for s in specs]
        return f"{kind} [\n" + ",\n".join(rows) + "\n]"

    contract = sidecar.contract
    filename = "model.onnx" if backend == "onnxruntime" else "model.plan"
    return "\n".join([
        f'name: "{model_name}"',
        f'backend: "{backend}"',
        f'default_model_filename: "{filename}"',
        f"max_batch_size: {max_batch_size}",
        block("input", contract["inputs"]),
        block("output", contract["outputs"]),
        # An engine needs its GPU; the ONNX model runs on a GPU when the server has one, else on its CPUs.
        f"instance_group [ {{ kind: {'KIND_GPU' if backend == 'tensorrt' else 'KIND_AUTO'}, count: 1 }} ]",
        "dynamic_batching { }",
        "",
    ])


def write_triton_model(repo: str | os.PathLike, model_name: str, artefact: str | os.PathLike, sidecar: Sidecar,
                       backend: str, max_batch_size: int) -> Path:
    """Write ``repo/model_name`` (config and version 1) for ``artefact``, replacing an older one.

    The folder is assembled under a temporary name and renamed into place.
    """
    repo = Path(repo)
    repo.mkdir(parents=True, exist_ok=True)
    final = repo / model_name
    staging = repo / f".{model_name}.tmp"
    shutil.rmtree(staging, ignore_errors=True)
    (staging / "1").mkdir(parents=True)
    try:
        filename = "model.onnx" if backend == "onnxruntime" else "model.plan"
        shutil.copyfile(artefact, staging / "1" / filename)
        (staging / "config.pbtxt").write_text(config_pbtxt(model_name, backend, sidecar, max_batch_size))
        if final.exists():
            shutil.rmtree(final)
        os.rename(staging, final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return final
