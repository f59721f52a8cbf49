"""FP32 ONNX -> mixed-precision FP16 ONNX, keeping the numerically sensitive operations in FP32.

The conversion is onnxconverter-common's ``float16.convert_float_to_float16``. Its ``op_block_list``
replaces the converter's own defaults (operators with no FP16 kernel), so ``KEEP_FP32`` is added to
``DEFAULT_OP_BLOCK_LIST`` rather than passed alone. Blocked nodes run in FP32 between Cast nodes.
TensorRT builds this graph as a strongly typed network: every tensor keeps the type the graph gives it.
"""

from __future__ import annotations

import os
import warnings
from collections import Counter
from pathlib import Path

__all__ = ["KEEP_FP32", "COMPUTE_OPS", "convert_fp16", "precision_summary"]

KEEP_FP32 = (
    # statistics of normalisation layers (sums of squares overflow FP16)
    "BatchNormalization", "InstanceNormalization", "LayerNormalization", "GroupNormalization",
    "LpNormalization", "MeanVarianceNormalization",
    # reductions and softmax
    "ReduceMean", "ReduceSum", "ReduceSumSquare", "ReduceL1", "ReduceL2", "ReduceLogSum", "ReduceLogSumExp",
    "ReduceProd", "Softmax", "LogSoftmax",
    # exp / log / pow: HDR and sRGB transfer functions, log-domain normalisation
    "Exp", "Log", "Pow", "Sqrt", "Reciprocal",
    # resampling (also in the converter's defaults)
    "Resize", "Upsample",
)
"""Operator types that stay FP32 in every FP16 export (on top of the converter's defaults)."""

COMPUTE_OPS = ("Conv", "ConvTranspose", "MatMul", "Gemm")
"""The operators that carry nearly all the arithmetic; the report counts how many run in FP16."""


def convert_fp16(src: str | os.PathLike, dst: str | os.PathLike, *, keep_fp32: tuple[str, ...] = KEEP_FP32,
                 keep_nodes: tuple[str, ...] = (), fp16_io: bool = False) -> Path:
    """Write the mixed-precision FP16 version of the ONNX file ``src`` to ``dst``.

    Args:
        keep_fp32: operator types kept in FP32 (added to the converter's default block list).
        keep_nodes: names of single nodes kept in FP32 (one overflowing layer, say).
        fp16_io: give the graph FP16 inputs and outputs (default: FP32 I/O, casts inside).

    Returns:
        ``dst``, checked with ``onnx.checker`` (full check). Metadata is carried over.
    """
    import onnx
    from onnxconverter_common import float16

    model = onnx.load(str(src))
    _separate_outputs(model)
    block = sorted(set(float16.DEFAULT_OP_BLOCK_LIST) | set(keep_fp32))
    # Casts to float (index and shape arithmetic turned into coordinates) keep their FP32 result: the
    # converter would retype their outputs but not their "to" attribute, leaving an invalid graph.
    casts = [node.name for node in model.graph.node if node.op_type == "Cast"
             and any(a.name == "to" and a.i == onnx.TensorProto.FLOAT for a in node.attribute)]
    with warnings.catch_warnings():  # one warning per tiny weight rounded to FP16's smallest normal
        warnings.simplefilter("ignore", UserWarning)
        # max_finite_val: constants beyond it are clamped; FP16's own limit, not the converter's 1e4.
        half = float16.convert_float_to_float16(model, keep_io_types=not fp16_io, op_block_list=block,
                                                node_block_list=casts + list(keep_nodes), max_finite_val=65504.0)
    dst = Path(dst)
    onnx.save_model(half, str(dst))
    onnx.checker.check_model(str(dst), full_check=True)
    return dst


def _separate_outputs(model) -> None:
    """Give every graph output that other nodes also read an Identity of its own.

    With FP32 I/O the converter casts each graph output back to FP32 under its original name; a node
    that reads the same tensor inside the graph would then get FP32 next to FP16 inputs.
    """
    import onnx

    graph = model.graph
    read = {name for node in graph.node for name in node.input}
    for output in graph.output:
        if output.name not in read:
            continue
        inner = f"{output.name}__inner"
        for node in graph.node:
            node.output[:] = [inner if o == output.name else o for o in node.output]
            node.input[:] = [inner if i == output.name else i for i in node.input]
        graph.node.append(onnx.helper.make_node("Identity", [inner], [output.name], name=f"{output.name}__output"))


def precision_summary(path: str | os.PathLike) -> dict:
    """What runs in FP16 in the ONNX file at ``path``.

    Returns:
        ``{"fp16": {op: n}, "fp32": {op: n}}`` for ``COMPUTE_OPS`` (by the type of their first
        input), ``"fp16_compute"`` and ``"compute"`` totals, ``"kept_fp32"`` (every other operator
        type computing in FP32, with counts) and ``"io"`` (each graph input and output's type).
    """
    import onnx

    model = onnx.shape_inference.infer_shapes(onnx.load(str(path)))
    graph = model.graph
    types = {v.name: v.type.tensor_type.elem_type for v in [*graph.input, *graph.output, *graph.value_info]}
    types.update({t.name: t.data_type for t in graph.initializer})
    fp16, fp32, kept = Counter(), Counter(), Counter()
    for node in graph.node:
        if node.op_type == "Cast" or not node.input:
            continue
        kind = types.get(node.input[0])
        if node.op_type in COMPUTE_OPS:
            (fp16 if kind == onnx.TensorProto.FLOAT16 else fp32)[node.op_type] += 1
        elif kind == onnx.TensorProto.FLOAT:
            kept[node.op_type] += 1
    name = onnx.TensorProto.DataType.Name
    return {
        "fp16": dict(fp16), "fp32": dict(fp32),
        "fp16_compute": sum(fp16.values()), "compute": sum(fp16.values()) + sum(fp32.values()),
        "kept_fp32": dict(sorted(kept.items())),
        "io": {v.name: name(v.type.tensor_type.elem_type).lower() for v in [*graph.input, *graph.output]},
    }
