"""FP32 ONNX -> INT8 Q/DQ ONNX by ONNX Runtime's static quantization, calibrated on realistic frames.

The file is in the Q/DQ format (QuantizeLinear / DequantizeLinear pairs around the quantized
operators, explicit quantization): ONNX Runtime fuses each pair with its operator into integer
kernels (``QLinearConv``, ...) on x86 (AVX2, AVX-512 VNNI) and ARM, and TensorRT builds a strongly
typed network from it where every quantized tensor is INT8.

Weights are INT8, symmetric, one scale per output channel. Activations are the one choice that
differs between the two consumers:

* ``asymmetric`` (the ONNX Runtime artefact, ``model.int8.onnx``): UINT8 with a zero point, U8S8
  arithmetic, the fast path of ONNX Runtime's x86 kernels (VPMADDUBSW). On an AVX2 AMD EPYC the
  same models quantized with symmetric INT8 activations ran up to 2.1 times slower (RESULTS).
* ``symmetric`` (the TensorRT engine's source, ``model.int8.qdq.onnx``): INT8 with zero point 0 and
  float biases, what TensorRT's explicit quantization takes (symmetric INT8 Q/DQ, built strongly
  typed with no precision flags).

What is quantized (``QUANTIZED_OPS``): convolutions and matmuls whose reduction depth (input
channels per group x kernel area) is at least ``MIN_DEPTH`` and that are not depthwise, and the operators between them that
ONNX Runtime runs on integers without leaving INT8 (activations, concatenation, max pooling).
Everything else stays in float: exp / log / pow / sqrt / division, normalisation, reductions,
softmax, sigmoid and tanh (the same sensitive set as FP16, ``export.fp16.KEEP_FP32``), resizing and
the element-wise products that apply a predicted map to the full-resolution frame; shallow
convolutions (depthwise filters, fixed pooling and separation kernels), which are bound by memory,
not arithmetic, and gain nothing from INT8 but its rounding; and, as in most INT8 deployments, the
first layer on each input (``stems``) and the layers whose results leave the network (``heads``).
"""

from __future__ import annotations

import os
import tempfile
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

__all__ = [
    "METHODS",
    "MIN_CALIBRATION",
    "MIN_DEPTH",
    "QUANTIZED_OPS",
    "CalibrationError",
    "calibration_feeds",
    "heads",
    "stems",
    "int8_summary",
    "quantize_int8",
    "shallow_convs",
]

QUANTIZED_OPS = ("Conv", "ConvTranspose", "MatMul", "Gemm", "LeakyRelu", "Relu", "Clip", "Concat", "MaxPool")
"""Operator types quantized by default; ``--keep-fp32`` removes types or single nodes from it."""

COMPUTE_OPS = ("Conv", "ConvTranspose", "MatMul", "Gemm")
"""The operators that carry nearly all the arithmetic; the report counts how many run in INT8."""

MIN_DEPTH = 16
"""Convolutions summing fewer products per output value than this stay in float."""

METHODS = ("minmax", "percentile", "entropy")
"""Calibration methods: the observed range, its 99.999th percentile, or the range that keeps the
activation histogram's KL divergence smallest (TensorRT's classic calibrator)."""

MIN_CALIBRATION = 8
"""Fewest calibration samples: with fewer, one frame sets every range."""


class CalibrationError(ValueError):
    """The calibration data cannot calibrate this model (too few samples, a folder of the wrong kind)."""


def _conv_depths(model) -> dict[str, tuple[int, int]]:
    """Per convolution of ``model`` with constant weights: (input channels per group, reduction depth)."""
    weights = {t.name: tuple(t.dims) for t in model.graph.initializer}
    depths = {}
    for node in model.graph.node:
        if node.op_type not in ("Conv", "ConvTranspose") or len(node.input) < 2 or node.input[1] not in weights:
            continue
        dims = weights[node.input[1]]
        group = next((a.i for a in node.attribute if a.name == "group"), 1)
        per_group = dims[1] if node.op_type == "Conv" else dims[0] // group  # ConvTranspose: (C_in, C_out/g, k...)
        depths[node.name] = (per_group, per_group * int(np.prod(dims[2:])))
    return depths


def shallow_convs(model, min_depth: int = MIN_DEPTH) -> list[str]:
    """Names of the depthwise convolutions of ``model`` (an ``onnx.ModelProto``) and of those whose reduction
    depth is below ``min_depth``: per-channel filters (pooling, Gaussian separation) and thin layers."""
    return [name for name, (per_group, depth) in _conv_depths(model).items() if per_group == 1 or depth < min_depth]


def _reaches_compute(model, forward: bool) -> set[str]:
    """Tensors with a convolution or matmul (not a depthwise filter) upstream (``forward``) or downstream of
    them (not ``forward``)."""
    filters = {name for name, (per_group, _) in _conv_depths(model).items() if per_group == 1}
    nodes = list(model.graph.node) if forward else list(reversed(model.graph.node))  # ONNX graphs are sorted
    marked: set[str] = set()
    for node in nodes:
        ins, outs = (node.input, node.output) if forward else (node.output, node.input)
        if (node.op_type in COMPUTE_OPS and node.name not in filters) or any(name in marked for name in ins if name):
            marked.update(name for name in outs if name)
    return marked


def stems(model) -> list[str]:
    """Names of the first convolutions and matmuls: those reading a tensor computed from the graph's inputs
    without a convolution or matmul on the way (a depthwise pooling or blur filter does not count).

    Their input is the frame or features computed from it in float (logs, statistics, a concatenation
    of both), channels of very different ranges under one activation scale: in a dark frame the pixel
    values themselves fall within one or two INT8 steps of a log channel's range, so they stay float.
    """
    after = _reaches_compute(model, forward=True)
    weights = {t.name for t in model.graph.initializer}
    return [node.name for node in model.graph.node if node.op_type in COMPUTE_OPS
            and any(name and name not in weights and name not in after for name in node.input)]


def heads(model) -> list[str]:
    """Names of the last convolutions and matmuls: those whose results reach no other convolution or matmul,
    only float arithmetic and the graph's outputs.

    These are the network's heads: the layers that predict a gain, a curve, normals or a light. Their
    outputs go on into exp, products and the output image, where one INT8 step of the prediction
    becomes a visible error (a log-gain step of 0.08 is an 8% brightness error), so they stay float.
    """
    before = _reaches_compute(model, forward=False)
    return [node.name for node in model.graph.node if node.op_type in COMPUTE_OPS
            and not any(name in before for name in node.output)]


def quantize_int8(src: str | os.PathLike, dst: str | os.PathLike, feeds: Sequence[dict[str, np.ndarray]], *,
                  method: str = "minmax", symmetric: bool = False, keep_ops: Iterable[str] = (),
                  keep_nodes: Iterable[str] = (), min_depth: int = MIN_DEPTH) -> Path:
    """Write the INT8 Q/DQ version of the FP32 ONNX file ``src`` to ``dst``.

    Args:
        feeds: calibration inputs, one dict ``{input name: float32 array}`` per run.
        method: one of ``METHODS``.
        symmetric: INT8 activations with zero point 0 (for TensorRT); default UINT8 with a zero point.
        keep_ops: operator types kept in float on top of those outside ``QUANTIZED_OPS``.
        keep_nodes: names of single nodes kept in float.
        min_depth: convolutions with a smaller reduction depth stay in float.

    Returns:
        ``dst``, checked with ``onnx.checker``; the source's metadata is carried over.
    """
    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if method not in METHODS:
        raise ValueError(f"calibration method {method!r}: choose from {', '.join(METHODS)}")
    if len(feeds) < MIN_CALIBRATION:
        raise CalibrationError(f"{len(feeds)} calibration samples; INT8 needs at least {MIN_CALIBRATION}")
    dst = Path(dst)
    keep_ops = set(keep_ops)

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.feeds = iter(feeds)

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.feeds, None)

    with tempfile.TemporaryDirectory(dir=dst.parent, prefix=".int8-") as tmp:
        # Shape inference and ONNX Runtime's basic fusions (Conv + activation patterns, constant folding)
        # first, as onnxruntime.quantization recommends; the symbolic shape pass is for transformers.
        prepared = Path(tmp) / "prepared.onnx"
        quant_pre_process(str(src), str(prepared), skip_symbolic_shape=True)
        graph = onnx.load(str(prepared))
        types = [op for op in QUANTIZED_OPS if op not in keep_ops]
        exclude = sorted(set(shallow_convs(graph, min_depth)) | set(stems(graph)) | set(heads(graph))
                         | set(keep_nodes))
        quantize_static(
            str(prepared), str(dst), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
            activation_type=QuantType.QInt8 if symmetric else QuantType.QUInt8, weight_type=QuantType.QInt8,
            op_types_to_quantize=types, nodes_to_exclude=exclude,
            calibrate_method={"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile,
                              "entropy": CalibrationMethod.Entropy}[method],
            calibration_providers=["CPUExecutionProvider"],
            # TensorRT dequantizes INT8 (not INT32) tensors only: its file keeps the biases float, added
            # after the integer product; ONNX Runtime's QLinearConv takes them as INT32.
            extra_options={"ActivationSymmetric": symmetric, "WeightSymmetric": True,
                           "CalibTensorRangeSymmetric": symmetric, "QuantizeBias": not symmetric})
    model = onnx.load(str(dst))
    source = onnx.load(str(src), load_external_data=False)
    present = {p.key for p in model.metadata_props}
    for prop in source.metadata_props:
        if prop.key not in present:
            model.metadata_props.append(prop)
    onnx.save_model(model, str(dst))
    onnx.checker.check_model(str(dst), full_check=True)
    return dst


def int8_summary(path: str | os.PathLike) -> dict:
    """What runs in INT8 in the Q/DQ ONNX file at ``path``.

    A node is quantized when every tensor it reads comes from a DequantizeLinear and every tensor it
    writes goes to a QuantizeLinear (ONNX Runtime and TensorRT then run it on integers).

    Returns:
        ``{"int8": {op: n}, "float": {op: n}}`` for the convolutions and matmuls, ``"int8_compute"``
        and ``"compute"`` totals, ``"quantized"`` (every quantized operator type, with counts),
        ``"kept_float"`` (every other operator type, with counts), ``"qdq"`` (QuantizeLinear and
        DequantizeLinear nodes) and ``"activations"`` (``uint8`` or ``int8``).
    """
    import onnx

    model = onnx.load(str(path))
    graph = model.graph
    producer = {out: node for node in graph.node for out in node.output}
    consumers: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    outputs = {o.name for o in graph.output}
    initializers = {t.name: t for t in graph.initializer}
    int8, flt, quantized, kept = Counter(), Counter(), Counter(), Counter()
    qdq = Counter()
    activation = None
    for node in graph.node:
        if node.op_type in ("QuantizeLinear", "DequantizeLinear"):
            qdq[node.op_type] += 1
            if node.op_type == "QuantizeLinear" and activation is None and len(node.input) > 2:
                zero = initializers.get(node.input[2])
                if zero is not None:
                    activation = "int8" if zero.data_type == onnx.TensorProto.INT8 else "uint8"
            continue
        if node.op_type in ("Constant", "Shape", "Cast") or not node.input:
            continue
        reads = [i for i in node.input if i and i not in initializers]
        is_quantized = bool(reads) and all(
            (p := producer.get(i)) is not None and p.op_type == "DequantizeLinear" for i in node.input if i) and all(
            out not in outputs and all(c.op_type == "QuantizeLinear" for c in consumers.get(out, [None]) if c)
            and consumers.get(out) for out in node.output[:1])
        if node.op_type in COMPUTE_OPS:
            (int8 if is_quantized else flt)[node.op_type] += 1
        (quantized if is_quantized else kept)[node.op_type] += 1
    return {"int8": dict(int8), "float": dict(flt), "int8_compute": sum(int8.values()),
            "compute": sum(int8.values()) + sum(flt.values()), "quantized": dict(sorted(quantized.items())),
            "kept_float": dict(sorted(kept.items())), "qdq": dict(qdq), "activations": activation or "none"}


# -- calibration data ---------------------------------------------------------------------------------------------

def calibration_feeds(meta: dict, count: int, *, folder: str | os.PathLike | None = None,
                      size: tuple[int, int] = (256, 256), frame_size: tuple[int, int] = (360, 640),
                      seed: int = 1000) -> tuple[list[dict[str, np.ndarray]], str]:
    """``count`` calibration feeds for the checkpoint described by ``meta``, and a line saying where they came from.

    Without ``folder``: the family's own generator (the realistic inputs parity uses) at ``size``,
    seeds ``seed``, ``seed + 1``, ... (disjoint from the parity inputs' seeds). With ``folder``: its
    images and videos (frames spread evenly over each video) as the model's sRGB frame input,
    scaled and cropped to ``frame_size``; the model's other inputs (a light, a history) still come from
    the generator.

    Raises:
        CalibrationError: ``count`` below ``MIN_CALIBRATION``; the folder is missing, holds nothing
            readable, holds fewer frames than ``count``; the model takes no single sRGB frame.
    """
    from train.families import sample_inputs

    if count < MIN_CALIBRATION:
        raise CalibrationError(f"--calib-count {count}: INT8 needs at least {MIN_CALIBRATION} calibration samples "
                               "(with fewer, one frame sets every range)")
    if folder is None:
        return ([sample_inputs(meta, 1, *size, seed=seed + i) for i in range(count)],
                f"{count} generated {meta['family']} samples of {size[0]}x{size[1]}")
    frame_input = _frame_input(meta)
    frames = _read_frames(Path(folder), count, frame_size)
    feeds = []
    for i, frame in enumerate(frames):
        feed = sample_inputs(meta, 1, *frame.shape[:2], seed=seed + i)
        feed[frame_input] = np.ascontiguousarray(frame.transpose(2, 0, 1)[None], dtype=np.float32)
        feeds.append(feed)
    return feeds, f"{count} frames from {folder}"


def _frame_input(meta: dict) -> str:
    """The name of the model's one sRGB frame input (the frame a video gives it)."""
    frames = [s["name"] for s in meta["contract"]["inputs"]
              if s.get("channels") == 3 and "srgb" in str(s.get("normalisation", "")).lower()]
    if len(frames) != 1:
        names = ", ".join(s["name"] for s in meta["contract"]["inputs"])
        raise CalibrationError(f"--calib: {meta['name']} takes {names}, not one sRGB frame; leave out --calib to "
                               "calibrate on the family's generated inputs")
    return frames[0]


def _read_frames(folder: Path, count: int, size: tuple[int, int]) -> list[np.ndarray]:
    """``count`` RGB float frames in [0, 1] from the images and videos in ``folder`` (name order), or from
    ``folder`` itself when it is one video file."""
    import cv2

    from runtime.video import IMAGE_SUFFIXES
    from runtime.video.ffmpeg import OTHER_VIDEO_SUFFIXES, VIDEO_SUFFIXES

    video_suffixes = (*VIDEO_SUFFIXES, *OTHER_VIDEO_SUFFIXES)
    if folder.is_file() and folder.suffix.lower() in video_suffixes:
        files = [folder]
    elif not folder.is_dir():
        raise CalibrationError(f"--calib {folder}: {'not a folder or a video' if folder.exists() else 'no such folder'}")
    else:
        files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    images = [p for p in files if p.suffix.lower() in IMAGE_SUFFIXES]
    videos = [p for p in files if p.suffix.lower() in video_suffixes]
    if not images and not videos:
        kinds = ", ".join(sorted({p.suffix or p.name for p in files})[:5]) or "nothing"
        raise CalibrationError(f"--calib {folder} holds no images ({', '.join(IMAGE_SUFFIXES)}) or videos; it holds "
                               f"{kinds}")
    frames, unreadable = [], []
    for path in images:
        if len(frames) == count:
            break
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            unreadable.append(path.name)
        else:
            frames.append(image)
    if len(frames) < count and videos:
        per_video = -(-(count - len(frames)) // len(videos))
        for path in videos:
            got = _video_frames(path, min(per_video, count - len(frames)))
            if not got:
                unreadable.append(path.name)
            frames += got
    if len(frames) < count:
        why = f" ({len(unreadable)} unreadable: {', '.join(unreadable[:3])})" if unreadable else ""
        raise CalibrationError(f"--calib {folder} gives {len(frames)} frames{why}; --calib-count {count} needs "
                               f"{count} (add images or lower --calib-count, at least {MIN_CALIBRATION})")
    return [_fit(cv2.cvtColor(f, cv2.COLOR_BGR2RGB), size) for f in frames[:count]]


def _video_frames(path: Path, count: int) -> list[np.ndarray]:
    """Up to ``count`` BGR frames spread evenly over the video at ``path``."""
    import cv2

    capture = cv2.VideoCapture(str(path))
    try:
        total = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) if capture.isOpened() else 0
        frames = []
        for index in np.linspace(0, max(total - 1, 0), count).astype(int) if total > 0 else []:
            capture.set(cv2.CAP_PROP_POS_FRAMES, int(index))
            ok, frame = capture.read()
            if ok and frame is not None and frame.ndim == 3:
                frames.append(frame)
        return frames
    finally:
        capture.release()


def _fit(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``image`` (uint8 HxWx3) scaled to cover ``size`` (height, width) and cropped to it at the centre, as
    float32 in [0, 1]: every calibration run has the same shape (the histogram methods need it)."""
    import cv2

    h, w = image.shape[:2]
    scale = max(size[0] / h, size[1] / w)
    resized = cv2.resize(image, (max(size[1], round(w * scale)), max(size[0], round(h * scale))),
                         interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    top, left = (resized.shape[0] - size[0]) // 2, (resized.shape[1] - size[1]) // 2
    return resized[top:top + size[0], left:left + size[1]].astype(np.float32) / 255.0
