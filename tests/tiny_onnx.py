"""A small conv net as ONNX (FP32, and FP16 with FP32 or FP16 I/O) for the TensorRT tests."""

from __future__ import annotations

from pathlib import Path


def tiny_conv_onnx(folder: Path) -> dict[str, Path]:
    """Write ``tiny.onnx`` (FP32), ``tiny.fp32io.onnx`` and ``tiny.fp16io.onnx`` (FP16 compute) into ``folder``.

    The net is conv-relu-conv-sigmoid, input ``image`` (1x3xHxW, H and W dynamic 16..512), output ``output``.
    """
    import onnx
    import torch
    from onnxconverter_common import float16

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(),
                              torch.nn.Conv2d(8, 3, 3, padding=1), torch.nn.Sigmoid()).eval()
    height, width = torch.export.Dim("height", min=16, max=512), torch.export.Dim("width", min=16, max=512)
    program = torch.onnx.export(net, (torch.rand(1, 3, 64, 64),), dynamo=True, input_names=["image"],
                                output_names=["output"], dynamic_shapes=({2: height, 3: width},))
    paths = {"fp32": folder / "tiny.onnx", "fp32io": folder / "tiny.fp32io.onnx", "fp16io": folder / "tiny.fp16io.onnx"}
    onnx.save(program.model_proto, str(paths["fp32"]))
    for key, keep in (("fp32io", True), ("fp16io", False)):
        onnx.save(float16.convert_float_to_float16(program.model_proto, keep_io_types=keep), str(paths[key]))
    return paths
