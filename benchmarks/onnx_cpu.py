"""ONNX Runtime CPU latency of exported models, FP32 against FP16, beside PyTorch eager FP32.

    python -m benchmarks.onnx_cpu EXPORT_DIR [EXPORT_DIR ...] [--size 360x640] [--iters 20]

Each EXPORT_DIR is a ``python -m export`` output folder (``model.onnx``, optionally ``model.fp16.onnx``,
with sidecars). Inputs come from the family's data generator at ``--size``; the PyTorch reference
is the sidecar's source checkpoint. Prints a Markdown table (median and p90 over ``--iters`` runs
after warm-up, wall clock).
"""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path

import numpy as np

from runtime.core.cli import ArgumentParser, bounded_int, image_size


def _time(fn, iters: int, warmup: int = 3) -> tuple[float, float]:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(iters):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times) * 1e3), float(np.percentile(times, 90) * 1e3)


def measure(folder: Path, height: int, width: int, iters: int, threads: int) -> dict:
    """Latencies (ms) of PyTorch eager FP32 and ONNX Runtime FP32 / FP16 for one export folder."""
    import onnxruntime as ort
    import torch

    from train.families import sample_inputs
    from runtime.core.sidecar import read_sidecar
    from train.checkpoint import load_checkpoint

    sidecar = read_sidecar(folder / "model.onnx")
    model, meta = load_checkpoint(sidecar.source["checkpoint"])
    feeds = sample_inputs(meta, 1, height, width, seed=0)
    row = {"name": sidecar.name, "onnx_mb": (folder / "model.onnx").stat().st_size / 1e6}
    args = [torch.from_numpy(feeds[s["name"]]) for s in sidecar.contract["inputs"]]
    with torch.inference_mode():
        row["torch"] = _time(lambda: model(*args), iters)
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    for label, name in (("ort_fp32", "model.onnx"), ("ort_fp16", "model.fp16.onnx")):
        if (folder / name).is_file():
            session = ort.InferenceSession(str(folder / name), options, providers=["CPUExecutionProvider"])
            row[label] = _time(lambda: session.run(None, feeds), iters)
            row[label.replace("ort", "size")] = (folder / name).stat().st_size / 1e6
    return row


def main(argv: list[str] | None = None) -> int:
    p = ArgumentParser(prog="python -m benchmarks.onnx_cpu", description=__doc__.split("\n\n")[0])
    p.add_argument("folders", nargs="+", type=Path, help="python -m export output folders")
    p.add_argument("--size", type=image_size, default="360x640", help="HxW of the inputs (default: 360x640)")
    p.add_argument("--iters", type=bounded_int(1, 1_000_000), default=20, help="timed runs per backend (default: 20)")
    p.add_argument("--threads", type=bounded_int(0, 1024), default=0,
                   help="ONNX Runtime intra-op threads (0: all cores)")
    args = p.parse_args(argv)
    height, width = args.size
    import onnxruntime as ort
    import torch

    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__} "
          f"({torch.get_num_threads()} threads), onnxruntime {ort.__version__}; {height}x{width}, batch 1, "
          f"median / p90 of {args.iters} runs, ms\n")
    print("| model | PyTorch eager FP32 | ORT CPU FP32 | ORT CPU FP16 | ORT FP32 speed-up | FP16 / FP32 |")
    print("|---|---|---|---|---|---|")
    for folder in args.folders:
        r = measure(folder, height, width, args.iters, args.threads)
        fmt = lambda v: f"{v[0]:.1f} / {v[1]:.1f}" if v else "-"  # noqa: E731
        fp16 = r.get("ort_fp16")
        ratio = f"{fp16[0] / r['ort_fp32'][0]:.2f}x" if fp16 else "-"
        print(f"| {r['name']} ({folder}) | {fmt(r['torch'])} | {fmt(r['ort_fp32'])} | {fmt(fp16)} | "
              f"{r['torch'][0] / r['ort_fp32'][0]:.2f}x | {ratio} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
