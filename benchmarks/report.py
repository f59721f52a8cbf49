"""Benchmark results as a text table, Markdown and a latency chart."""

from __future__ import annotations

from pathlib import Path

__all__ = ["table", "markdown", "plot"]

_HEAD = ("model", "backend", "size", "p50 ms", "p95 ms", "p99 ms", "FPS", "speed-up", "PSNR dB", "MB", "+mem MB",
         "floor ms", "% of floor")


def _fmt(value, spec: str = ".1f", none: str = "-") -> str:
    if value is None:
        return none
    if value == float("inf"):
        return "exact"
    return format(value, spec)


def _live_text(e: dict) -> str:
    """The live figures of an end-to-end row as a clause of the text table ('' when not measured)."""
    if e.get("live_error"):
        return f"; live: not measured ({e['live_error']})"
    if e.get("live_p50_ms") is None:
        return ""
    return (f"; live stream: capture to output p50 {e['live_p50_ms']:.1f} / p95 {e['live_p95_ms']:.1f} / p99 "
            f"{e['live_p99_ms']:.1f} ms, {e['live_dropped']} of {e['live_sent']} dropped, {e['live_fps']:.1f} FPS out"
            + (", the queue grew" if e.get("live_queue_grew") else ""))


def _rows(results: dict) -> list[tuple[str, ...]]:
    out = []
    for r in results["rows"]:
        size = f"{r['resolution'][0]}x{r['resolution'][1]}"
        peak = r["peak_gpu_mb"] if r["peak_gpu_mb"] is not None else r["added_rss_mb"]
        artefact = r["artefact_bytes"] / 1e6 if r["artefact_bytes"] else None
        out.append((r["model"], r["backend"], size, _fmt(r["p50_ms"]), _fmt(r["p95_ms"]), _fmt(r["p99_ms"]),
                    _fmt(r["fps"]), _fmt(r["speedup"], ".2f") + ("x" if r["speedup"] else ""),
                    _fmt(r["parity_psnr_db"]), _fmt(artefact, ".2f"), _fmt(peak, ".0f"), _fmt(r["floor_ms"], ".2f"),
                    _fmt(r["floor_pct"], ".1f")))
    return out


def _header(results: dict) -> list[str]:
    env = results["environment"]
    gpu = env["gpu"]
    lines = [f"command: {results['command']}",
             f"date: {env['date']}; CPU: {env['cpu']}, {env['cores']} cores; Python {env['python']}",
             f"torch {env['torch']} ({env['torch_threads']} threads); onnxruntime {env['onnxruntime']} "
             f"({env['ort_threads']} threads; providers {', '.join(env['ort_providers'])}); "
             f"TensorRT {env.get('tensorrt') or 'not installed'}",
             "GPU: " + (f"{gpu['name']} (compute capability {gpu['compute_capability']}, {gpu['memory_gb']} GB, "
                        f"CUDA {gpu['cuda']}, driver {gpu['driver']})" if gpu else "none")]
    cpu = results["peaks"]["cpu"]
    if cpu:
        lines.append(f"CPU floor from measured peaks: {cpu['fp32_gflops']:.0f} GFLOP/s FP32 (matmul, "
                     f"{cpu['threads']} threads), {cpu['bandwidth_gbs']:.1f} GB/s (copy)")
    if results["peaks"]["gpu"]:
        g = results["peaks"]["gpu"]
        lines.append(f"GPU floor from stated peaks: {g.get('fp32_tflops')} TFLOP/s FP32, {g.get('fp16_tflops')} "
                     f"TFLOP/s FP16, {g.get('bandwidth_gbs')} GB/s ({g.get('source', 'datasheet')})")
    return lines


def table(results: dict) -> str:
    """An aligned text table with the header and the unavailable backends."""
    rows = _rows(results)
    widths = [max(len(x[i]) for x in [_HEAD, *rows]) for i in range(len(_HEAD))]
    def line(r: tuple[str, ...]) -> str:
        return "  ".join(c.rjust(w) if i > 2 else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths)))

    text = ["# " + h for h in _header(results)] + ["", line(_HEAD), line(tuple("-" * w for w in widths))]
    text += [line(r) for r in rows]
    if results["e2e"]:
        text += ["", "end to end (runtime pipeline on a generated clip, encode to MP4):"]
        text += [f"  {e['model']} {e['backend']} {e['resolution'][0]}x{e['resolution'][1]}: {e['e2e_fps']:.1f} FPS "
                 f"end to end vs {e['infer_fps']:.1f} inference only ({e['efficiency_pct']:.0f}%){_live_text(e)}"
                 for e in results["e2e"]]
    for u in results["unavailable"]:
        text.append(f"not available: {u['backend']} ({u['label']}): {u['reason']}")
    for e in results["errors"]:
        text.append(f"FAILED: {e['model']} {e['backend']}: {e['error']}")
    return "\n".join(text)


def markdown(results: dict) -> str:
    """The results as Markdown: environment, the table, end-to-end rows, unavailable backends."""
    lines = ["# Benchmark results", ""] + [f"- {h}" for h in _header(results)] + [""]
    lines += ["| " + " | ".join(_HEAD) + " |", "|" + "---|" * 3 + "---:|" * (len(_HEAD) - 3)]
    lines += ["| " + " | ".join(r) + " |" for r in _rows(results)]
    lines += ["", "Speed-up is over PyTorch eager FP32 at the same size; PSNR is against its outputs (exact: "
              "identical); MB: the artefact (checkpoint, ONNX file or engine); +mem MB: resident memory the "
              "row added to the process at its peak (GPU rows of PyTorch: peak CUDA memory); floor: the best time "
              "from the model's operations and minimum bytes moved at the "
              "device's peak (% of floor = floor / measured)."]
    if results["e2e"]:
        lines += ["", "## End to end", "", "| model | backend | size | end-to-end FPS | inference-only FPS | "
                  "efficiency | live p50 ms | live p95 ms | live p99 ms | live dropped | live FPS | stage p50 ms |",
                  "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
        for e in results["e2e"]:
            stages = ", ".join(f"{k} {v:.1f}" for k, v in e["stages"].items())
            sent = e.get("live_sent")
            dropped = f"{e['live_dropped']} of {sent}" if e.get("live_dropped") is not None else "-"
            lines.append(f"| {e['model']} | {e['backend']} | {e['resolution'][0]}x{e['resolution'][1]} | "
                         f"{e['e2e_fps']:.1f} | {e['infer_fps']:.1f} | {e['efficiency_pct']:.0f}% | "
                         + " | ".join(_fmt(e.get(f"live_{p}_ms")) for p in ("p50", "p95", "p99"))
                         + f" | {dropped} | {_fmt(e.get('live_fps'))} | {stages} |")
        lines += ["", "End-to-end FPS: a generated clip decoded, processed and encoded to MP4 as fast as it goes. "
                  "Live: the same pipeline on a live H.264 stream on loopback (UDP) at its real frame rate; latency "
                  "runs from the sender grabbing a frame (before encoding) to its result reaching the sink; dropped: "
                  "frames sent and never output (the live source keeps only the newest frame)."]
        failed = [e for e in results["e2e"] if e.get("live_error")]
        if failed:
            lines += [""] + [f"- live not measured for {e['model']} `{e['backend']}`: {e['live_error']}"
                             for e in failed]
    if results["unavailable"]:
        lines += ["", "## Not available here", ""]
        lines += [f"- `{u['backend']}` ({u['label']}): {u['reason']}" for u in results["unavailable"]]
    if results["errors"]:
        lines += ["", "## Failed", ""] + [f"- {e['model']} `{e['backend']}`: {e['error']}" for e in results["errors"]]
    return "\n".join(lines) + "\n"


def plot(results: dict, path: Path) -> Path | None:
    """p50 latency per backend, one panel per model, bars per resolution; None without matplotlib or rows."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    rows = results["rows"]
    if not rows:
        return None
    from runtime.core.io import atomic_path

    models = list(dict.fromkeys(r["model"] for r in rows))
    sizes = list(dict.fromkeys(tuple(r["resolution"]) for r in rows))
    fig, axes = plt.subplots(1, len(models), figsize=(4.2 * len(models), 3.6), squeeze=False)
    for ax, model in zip(axes[0], models):
        backends = list(dict.fromkeys(r["backend"] for r in rows if r["model"] == model))
        width = 0.8 / max(1, len(sizes))
        for k, size in enumerate(sizes):
            values = [next((r["p50_ms"] for r in rows if r["model"] == model and r["backend"] == b
                            and tuple(r["resolution"]) == size), 0.0) for b in backends]
            ax.bar([i + k * width for i in range(len(backends))], values, width, label=f"{size[0]}x{size[1]}")
        ax.set_xticks([i + width * (len(sizes) - 1) / 2 for i in range(len(backends))], backends, rotation=35,
                      ha="right", fontsize=8)
        ax.set_title(model, fontsize=10)
        ax.set_ylabel("p50 latency (ms)")
        ax.legend(fontsize=7)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=90)
    plt.close(fig)
    return path
