"""Checkpoint model -> ONNX (FP32) with dynamic batch, height and width and the contract in its metadata."""

from __future__ import annotations

import json
import logging
import os
import warnings
from pathlib import Path

import numpy as np

__all__ = ["METADATA_KEY", "export_onnx", "check_onnx", "contract_from_onnx", "dynamic_axes"]

METADATA_KEY = "edgelight"
"""``metadata_props`` key holding the checkpoint's contract (JSON) in every exported ONNX file."""

_TWO_GB = 2**31


def dynamic_axes(spec: dict) -> dict[int, str]:
    """The dynamic axes of one contract input or output: batch, and height and width for images."""
    if "shape" in spec:  # a per-sample vector such as a light position: (N, K)
        return {0: "batch"}
    return {0: "batch", 2: "height", 3: "width"}


def _dynamic_shapes(contract: dict, min_side: int, max_side: int, max_batch: int) -> tuple:
    import torch

    batch = torch.export.Dim("batch", min=1, max=max(max_batch, 2))
    height = torch.export.Dim("height", min=min_side, max=max_side)
    width = torch.export.Dim("width", min=min_side, max=max_side)
    dims = {"batch": batch, "height": height, "width": width}
    # Positional, like the model's arguments (whose Python names need not match the contract's).
    return tuple({axis: dims[label] for axis, label in dynamic_axes(spec).items()} for spec in contract["inputs"])


def export_onnx(model, meta: dict, example: dict[str, np.ndarray], path: str | os.PathLike, *, opset: int = 18,
                min_side: int = 16, max_side: int = 8192, max_batch: int = 64) -> Path:
    """Export ``model`` to ``path`` with the dynamo exporter and check the result.

    Args:
        model: the PyTorch model in eval mode (``load_checkpoint``'s first result).
        meta: its checkpoint metadata; the contract names the inputs and outputs and is stored in
            the file's ``metadata_props`` under ``edgelight``.
        example: one realistic input batch (``train.families.sample_inputs``), used for tracing. Its
            batch must be at least 2: ``torch.export`` specialises dimensions of size 1.
        opset: the ONNX opset of the default domain.
        min_side, max_side, max_batch: bounds of the dynamic height, width and batch.

    Returns:
        ``path``. The file holds its weights inline (models under 2 GB) and passes ``onnx.checker``'s
        full check with shape inference.
    """
    import onnx
    import torch

    contract = meta["contract"]
    inputs = [spec["name"] for spec in contract["inputs"]]
    outputs = [spec["name"] for spec in contract["outputs"]]
    args = tuple(torch.from_numpy(example[name]) for name in inputs)
    # The exporter prints its progress through warnings and logging; keep the CLI's output readable.
    for name in ("torch.onnx", "onnxscript", "onnx_ir"):
        logging.getLogger(name).setLevel(logging.ERROR)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            model, args, dynamo=True, opset_version=opset, input_names=inputs, output_names=outputs,
            dynamic_shapes=_dynamic_shapes(contract, min_side, max_side, max_batch), verbose=False)
    proto = program.model_proto
    # The exporter annotates every node with its source location and module path (most of a small
    # model's file size, and the exporting machine's paths); deployment files do not need them.
    for node in proto.graph.node:
        del node.metadata_props[:]
        node.doc_string = ""
    for value in [*proto.graph.value_info, *proto.graph.input, *proto.graph.output, *proto.graph.initializer]:
        del value.metadata_props[:]
    # Name the dynamic dimensions after their meaning (the exporter's symbols are s0, s1, ...).
    values = [*proto.graph.input, *proto.graph.output]
    for value, spec in zip(values, contract["inputs"] + contract["outputs"]):
        dims = value.type.tensor_type.shape.dim
        for axis, label in dynamic_axes(spec).items():
            if axis < len(dims) and not dims[axis].HasField("dim_value"):
                dims[axis].dim_param = label
    entry = proto.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, json.dumps(
        {"name": meta["name"], "family": meta["family"], "preset": meta["preset"], "contract": contract})
    proto.producer_name = "edgelight"
    if proto.ByteSize() >= _TWO_GB:
        raise ValueError(f"{meta['name']} is over 2 GB as ONNX; external weights are not supported by this exporter")
    path = Path(path)
    onnx.save_model(proto, str(path))
    check_onnx(path)
    return path


def check_onnx(path: str | os.PathLike) -> None:
    """``onnx.checker`` full check (with strict shape inference) of the file at ``path``."""
    import onnx

    onnx.checker.check_model(str(path), full_check=True)


def contract_from_onnx(path: str | os.PathLike) -> dict | None:
    """The edgelight metadata stored in an ONNX file, or None for a foreign file."""
    import onnx

    proto = onnx.load(str(path), load_external_data=False)
    for entry in proto.metadata_props:
        if entry.key == METADATA_KEY:
            return json.loads(entry.value)
    return None
