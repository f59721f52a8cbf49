"""Parameter count, multiply-accumulates and CPU forward time of registered models.

    python -m benchmarks.model_cost [--models unet_edge unet_seed] [--sizes 256x256 360x640] [--iters 5]

Eager PyTorch FP32, batch 1, no_grad, after warm-up; time from a monotonic clock.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
from torch import nn

from runtime.core.cli import ArgumentParser, bounded_int, image_size
from runtime.core.host import cpu_name
from train.models import create_model


def count_macs(model: nn.Module, inputs: tuple[torch.Tensor, ...]) -> int:
    """Multiply-accumulates of one forward pass: convolutions, linear layers, and attention products
    (modules with a ``macs(*inputs)`` method report their own)."""
    total = 0

    def conv_hook(module: nn.Conv2d, args, output):
        nonlocal total
        kh, kw = module.kernel_size
        total += output.numel() * (module.in_channels // module.groups) * kh * kw

    def linear_hook(module: nn.Linear, args, output):
        nonlocal total
        total += output.numel() * module.in_features

    def own_hook(module, args, output):
        nonlocal total
        total += module.macs(*args)

    hooks = [m.register_forward_hook(conv_hook) for m in model.modules() if isinstance(m, nn.Conv2d)]
    hooks += [m.register_forward_hook(own_hook) for m in model.modules() if callable(getattr(m, "macs", None))]
    hooks += [m.register_forward_hook(linear_hook) for m in model.modules() if isinstance(m, nn.Linear)]
    with torch.no_grad():
        model(*inputs)
    for h in hooks:
        h.remove()
    return total


def example_inputs(model: nn.Module, height: int, width: int) -> tuple[torch.Tensor, ...]:
    """Random inputs that follow the model's input contract."""
    g = torch.Generator().manual_seed(0)
    inputs = []
    for spec in model.io_contract()["inputs"]:
        if "shape" in spec:  # a per-frame vector such as a light position or SH coefficients
            x = torch.rand(1, *spec["shape"][1:], generator=g)
            if spec["name"] == "light" and x.shape[-1] == 3:
                x[:, 2] += 2.5  # a point light above the scene
        else:
            x = torch.rand(1, spec["channels"], height, width, generator=g)
            if spec["name"] == "distances":
                x += 1.0
        inputs.append(x)
    return tuple(inputs)


def time_forward(model: nn.Module, inputs, warmup: int, iters: int) -> list[float]:
    with torch.inference_mode():
        for _ in range(warmup):
            model(*inputs)
        times = []
        for _ in range(iters):
            start = time.perf_counter()
            model(*inputs)
            times.append(time.perf_counter() - start)
    return times


def main(argv=None) -> int:
    p = ArgumentParser(prog="python -m benchmarks.model_cost", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", default=["unet_edge", "unet_seed"])
    p.add_argument("--sizes", nargs="+", type=image_size, default=[(256, 256), (360, 640)], metavar="HxW",
                   help="input sizes (default: 256x256 360x640)")
    p.add_argument("--warmup", type=bounded_int(0, 1_000_000), default=2)
    p.add_argument("--iters", type=bounded_int(1, 1_000_000), default=5)
    p.add_argument("--json", type=Path, default=None, help="also write the rows as JSON")
    args = p.parse_args(argv)
    print(f"# {cpu_name()}, {torch.get_num_threads()} threads, "
          f"torch {torch.__version__}, eager FP32, batch 1")
    print("| model | parameters | input HxW | GMAC | median ms | min ms | FPS |")
    print("|---|---:|---|---:|---:|---:|---:|")
    rows = []
    for name in args.models:
        model = create_model(name).eval()
        params = sum(p.numel() for p in model.parameters())
        for size in args.sizes:
            h, w = size
            inputs = example_inputs(model, h, w)
            macs = count_macs(model, inputs)
            times = time_forward(model, inputs, args.warmup, args.iters)
            med = statistics.median(times)
            row = {"model": name, "parameters": params, "height": h, "width": w, "gmac": macs / 1e9,
                   "median_ms": med * 1e3, "min_ms": min(times) * 1e3, "fps": 1 / med, "iters": args.iters}
            rows.append(row)
            print(f"| {name} | {params:,} | {h}x{w} | {macs / 1e9:.2f} | {med * 1e3:.1f} | {min(times) * 1e3:.1f} | {1 / med:.2f} |",
                  flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
