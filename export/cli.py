"""``python -m export``: a checkpoint -> ONNX, FP16 and INT8 ONNX and TensorRT engines, each verified against PyTorch.

    python -m export runs/unet --fp16
    python -m export runs/lowlight/best.ckpt --fp16 --out exports/lowlight --triton-repo triton/
    python -m export runs/lowlight --int8 --calib my_frames/ --calib-method percentile
    python -m export runs/relight_point.ckpt --fp16 --engine --opt-shape 720x1280 --max-shape 1088x1920

Exit codes: 0 every artefact passed parity; 1 an artefact failed parity (the report says which
output and by how much; failed artefacts are not published); 2 bad input.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from runtime.core.cli import ArgumentParser, bounded_float, bounded_int, run

__all__ = ["build_parser", "main"]


MAX_BATCH = 1024  # largest batch of a profile or a parity check


def _shape(text: str) -> tuple[int, int]:
    from .pipeline import parse_shape

    try:
        return parse_shape(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _shapes(text: str) -> tuple[tuple[int, int, int], ...]:
    from .pipeline import parse_shape

    try:
        shapes = tuple(parse_shape(part, batch=True) for part in text.split(",") if part.strip())
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if not shapes:
        raise argparse.ArgumentTypeError(f"{text!r}: expected one or more BxHxW shapes")
    if any(shape[0] > MAX_BATCH for shape in shapes):
        raise argparse.ArgumentTypeError(f"{text!r}: the batch must be from 1 to {MAX_BATCH}")
    return shapes


_shape.numeric = _shapes.numeric = True  # type: ignore[attr-defined]


def _ops(text: str) -> tuple[str, ...]:
    return tuple(op.strip() for op in text.split(",") if op.strip())


def build_parser() -> ArgumentParser:
    p = ArgumentParser(
        prog="python -m export",
        description="Export a checkpoint" + __doc__.split("``python -m export``: a checkpoint", 1)[1],
        epilog="Artefacts (in --out): model.onnx, model.fp16.onnx, model.int8.onnx, model.fp16.engine, "
               "model.int8.engine (from model.int8.qdq.onnx), each with a .json sidecar (contract, precision, "
               "profile, parity, CPU time), and export_report.json / export_report.md.")
    p.add_argument("checkpoint", help="an edgelight checkpoint (.ckpt) or a training run folder (uses its best.ckpt)")
    p.add_argument("--out", metavar="DIR", help="output folder (default: an 'export' folder next to the checkpoint)")
    p.add_argument("--fp16", action="store_true",
                   help="also write a mixed-precision FP16 ONNX (normalisation, reductions, softmax, exp/log/pow and "
                        "resize stay FP32) and build the engine from it")
    p.add_argument("--fp16-io", action="store_true",
                   help="FP16 inputs and outputs in the FP16 artefacts (default: FP32)")
    p.add_argument("--keep-fp32", type=_ops, default=(), metavar="OPS",
                   help="more ONNX operator types or node names to keep in FP32 (FP16 and INT8 files), "
                        "comma-separated (e.g. Mul,Add or node_conv2d_3 when parity shows an overflow or a loss)")
    q = p.add_argument_group("INT8 (ONNX Runtime static quantization, Q/DQ; see export/int8.py for what is quantized)")
    q.add_argument("--int8", action="store_true",
                   help="also write model.int8.onnx: per-channel INT8 weights, UINT8 activations calibrated on "
                        "realistic inputs; exp/log/pow, normalisation, reductions, resizing and shallow "
                        "(depthwise) convolutions stay float. With TensorRT, also an INT8 engine (symmetric Q/DQ)")
    q.add_argument("--calib", metavar="DIR",
                   help="calibrate on the images and videos in DIR, or on one video file (frames of the camera "
                        "or footage the model will see; default: the family's generated inputs, the ones parity "
                        "uses)")
    q.add_argument("--calib-count", type=bounded_int(1, 100_000), default=32, metavar="N",
                   help="calibration samples (default: 32; at least 8)")
    q.add_argument("--calib-method", choices=["minmax", "percentile", "entropy"], default="minmax",
                   help="activation ranges: observed min/max, the 99.999th percentile, or least KL divergence "
                        "(default: minmax)")
    p.add_argument("--opset", type=bounded_int(18, 100), default=18, metavar="N", help="ONNX opset (18 or newer)")
    shapes = p.add_argument_group("shapes (HxW; the ONNX files take any size from 16 to 8192)")
    shapes.add_argument("--min-shape", type=_shape, default=(256, 256), metavar="HxW",
                        help="smallest frame of the engine's optimisation profile (default: 256x256)")
    shapes.add_argument("--opt-shape", type=_shape, default=(720, 1280), metavar="HxW",
                        help="frame size TensorRT tunes for (default: 720x1280, 720p)")
    shapes.add_argument("--max-shape", type=_shape, default=(1088, 1920), metavar="HxW",
                        help="largest frame of the profile (default: 1088x1920, 1080p rounded up to 16)")
    shapes.add_argument("--max-batch", type=bounded_int(1, MAX_BATCH), default=4, help="largest batch of the profile")
    parity = p.add_argument_group("parity (PyTorch FP32 against every artefact, on the family's own data)")
    parity.add_argument("--parity-shapes", type=_shapes, default=((1, 256, 256), (2, 360, 640)), metavar="BxHxW,...",
                        help="input batches to compare on (default: 1x256x256,2x360x640); within the profile")
    parity.add_argument("--fp32-max-abs", type=bounded_float(0.0, 1e6, low_open=True), default=1e-4,
                        help="largest abs error of FP32 artefacts (scaled by the output's range when that exceeds 1)")
    parity.add_argument("--fp16-min-psnr", type=bounded_float(0.0, 200.0, low_open=True), default=45.0,
                        help="smallest PSNR in dB of FP16 artefacts against PyTorch FP32")
    parity.add_argument("--int8-min-psnr", type=bounded_float(0.0, 200.0, low_open=True), default=35.0,
                        help="smallest PSNR in dB of INT8 artefacts against PyTorch FP32")
    parity.add_argument("--threads", type=bounded_int(0, 1024), default=0, metavar="N",
                        help="ONNX Runtime CPU threads for the checks (0: all cores)")
    trt = p.add_argument_group("TensorRT (built when the tensorrt package and an NVIDIA GPU are present)")
    when = trt.add_mutually_exclusive_group()
    when.add_argument("--engine", action="store_true", default=None,
                      help="require an engine: without TensorRT or a GPU, fail (exit 2) instead of skipping it")
    when.add_argument("--no-engine", dest="engine", action="store_false", help="never build an engine")
    trt.add_argument("--workspace", type=bounded_float(0.0, 1024.0, low_open=True), default=4.0, metavar="GB",
                     help="builder workspace limit")
    trt.add_argument("--timing-cache", metavar="PATH",
                     help="timing cache file, read and updated by every build (default: one per GPU and TensorRT "
                          "version in ~/.cache/edgelight/tensorrt)")
    trt.add_argument("--cache-dir", metavar="DIR",
                     help="engine cache: an engine whose key (ONNX content, TensorRT version, GPU compute capability, "
                          "profile, options) matches is reused (default: ~/.cache/edgelight/tensorrt/engines)")
    trt.add_argument("--version-compatible", action="store_true",
                     help="engine loadable by later TensorRT versions (lean runtime; slower)")
    trt.add_argument("--hardware-compatible", action="store_true",
                     help="engine that runs on any Ampere or newer GPU (may be slower)")
    p.add_argument("--triton-repo", metavar="DIR",
                   help="also write a Triton Inference Server model repository (onnxruntime and tensorrt backends)")
    p.add_argument("--quiet", action="store_true", help="print only the summary table")
    return p


def _table(rows: list[tuple[str, ...]]) -> str:
    head = ("artefact", "size", "precision", "parity", "time")
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    line = lambda r: "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip()  # noqa: E731
    return "\n".join([line(head), line(tuple("-" * w for w in widths)), *(line(r) for r in rows)])


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from .parity import Thresholds
    from .pipeline import ExportOptions, run_export
    from .report import summary_rows

    import onnx

    if not 18 <= args.opset <= onnx.defs.onnx_opset_version():
        raise _error(f"--opset {args.opset}: the exporter writes opsets 18 to {onnx.defs.onnx_opset_version()}")
    options = ExportOptions(
        checkpoint=args.checkpoint, out=args.out, fp16=args.fp16, fp16_io=args.fp16_io, keep_fp32=args.keep_fp32,
        int8=args.int8, calib=args.calib, calib_count=args.calib_count, calib_method=args.calib_method,
        opset=args.opset, min_shape=args.min_shape, opt_shape=args.opt_shape, max_shape=args.max_shape,
        max_batch=args.max_batch, parity_shapes=args.parity_shapes,
        thresholds=Thresholds(args.fp32_max_abs, args.fp16_min_psnr, args.int8_min_psnr), engine=args.engine,
        workspace_gb=args.workspace, timing_cache=args.timing_cache, cache_dir=args.cache_dir,
        version_compatible=args.version_compatible, hardware_compatible=args.hardware_compatible,
        triton_repo=args.triton_repo, threads=args.threads, quiet=args.quiet)
    report = run_export(options)  # a failed write (a full disk) is an OSError: one line and exit 1 from run()
    print()
    print(_table(summary_rows(report)))
    print(f"\n{report['name']}: {'all artefacts passed parity' if report['passed'] else 'PARITY FAILED'}; "
          f"report: {report['out']}/export_report.md ({report['seconds']:.0f} s)")
    for note in dict.fromkeys(row["note"] for row in report["artefacts"] if row["status"] == "not built"):
        print(f"no engine: {note}")
    if report["triton_repo"]:
        print(f"Triton model repository: {report['triton_repo']}")
    return 0 if report["passed"] else 1


def _error(message: str):
    from .pipeline import ExportError

    return ExportError(message)


main.prog = "python -m export"  # type: ignore[attr-defined]


if __name__ == "__main__":
    raise SystemExit(run(main))
