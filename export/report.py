"""The export report: the closing table of ``python -m export`` and ``export_report.md``."""

from __future__ import annotations

import datetime as _dt
import sys
from dataclasses import asdict

__all__ = ["build_report", "summary_rows", "markdown", "hw"]


def hw(shape) -> str:
    """A shape as ``HxW`` text (``BxHxW`` with a batch)."""
    return "x".join(str(v) for v in shape)


def summary_rows(report: dict) -> list[tuple[str, ...]]:
    """(artefact, size, precision, parity, time) per artefact, for the CLI's closing table."""
    rows = []
    for row in report["artefacts"]:
        size = f"{row['size_bytes'] / 1e6:.2f} MB" if row["size_bytes"] else "-"
        parity = row["parity"] if row["status"] != "not built" else f"not built: {row['note']}"
        if row["status"] == "failed" and row["note"]:
            parity = f"FAIL: {row['note']}" if row["parity"].startswith("pass") else row["parity"]
        rows.append((row["artefact"], size, row["precision"], parity,
                     f"{row['seconds']:.1f} s" if row["status"] != "not built" else "-"))
    return rows


def markdown(report: dict) -> str:
    lines = [f"# Export report: {report['name']}", "",
             f"- checkpoint: `{report['checkpoint']}` (sha256 `{report['checkpoint_sha256'][:16]}...`)",
             f"- result: {'**passed**' if report['passed'] else '**FAILED**: ' + ', '.join(report['failed'])}",
             f"- profile (HxW): min {hw(report['profile']['min'])}, opt {hw(report['profile']['opt'])}, "
             f"max {hw(report['profile']['max'])}, batch 1..{report['profile']['max_batch']}",
             f"- parity inputs (BxHxW, from the family's data generator): "
             f"{', '.join(hw(s) for s in report['parity_shapes'])}",
             f"- thresholds: FP32 max abs error {report['thresholds']['fp32_max_abs']:g}, "
             f"FP16 PSNR >= {report['thresholds']['fp16_min_psnr']:g} dB, "
             f"INT8 PSNR >= {report['thresholds'].get('int8_min_psnr', 35.0):g} dB",
             f"- created {report['created']}, {report['seconds']} s; versions: "
             + ", ".join(f"{k} {v}" for k, v in report["versions"].items()), "",
             "| artefact | size | precision | parity | time |", "|---|---|---|---|---|"]
    lines += ["| " + " | ".join(r) + " |" for r in summary_rows(report)]
    lines += ["", "## Parity per output", "",
              "| artefact | output | shape | max abs error | PSNR (dB) | NaN/Inf | result |",
              "|---|---|---|---|---|---|---|"]
    for row in report["artefacts"]:
        for p in row["parity_results"]:
            psnr = "identical" if p["psnr"] is None else f"{p['psnr']:.1f}"
            lines.append(f"| {row['artefact']} | {p['output']} | {hw(p['shape'])} | {p['max_abs']:.3g} | {psnr} | "
                         f"{p['nonfinite']} | {'pass' if p['passed'] else 'FAIL: ' + p['reason']} |")
    for row in report["artefacts"]:
        if "fp16" in row:
            s = row["fp16"]
            lines += ["", f"## FP16 compute in {row['artefact']}", "",
                      f"- FP16: {s['fp16_compute']} of {s['compute']} convolutions and matmuls "
                      f"({', '.join(f'{k} {v}' for k, v in s['fp16'].items()) or 'none'})",
                      f"- kept FP32: {', '.join(f'{k} {v}' for k, v in s['kept_fp32'].items()) or 'none'}",
                      f"- inputs and outputs: {', '.join(f'{k} {v}' for k, v in s['io'].items())}"]
    for row in report["artefacts"]:
        if "int8" in row:
            s = row["int8"]
            calib = s.get("calibration", {})
            lines += ["", f"## INT8 compute in {row['artefact']}", "",
                      f"- INT8: {s['int8_compute']} of {s['compute']} convolutions and matmuls "
                      f"({', '.join(f'{k} {v}' for k, v in s['int8'].items()) or 'none'}); "
                      f"{s['activations']} activations",
                      f"- quantized: {', '.join(f'{k} {v}' for k, v in s['quantized'].items()) or 'none'}",
                      f"- kept float: {', '.join(f'{k} {v}' for k, v in s['kept_float'].items()) or 'none'}",
                      f"- calibration: {calib.get('method', '?')} on {calib.get('source', '?')}"]
    timed = [row for row in report["artefacts"] if row.get("cpu_time")]
    if timed:
        t = timed[0]["cpu_time"]
        lines += ["", f"## CPU time ({t['cpu']}, {t['threads']} threads, input {hw(t['shape'])}, median of 3)", "",
                  "| artefact | ms |", "|---|---:|"]
        lines += [f"| {row['artefact']} | {row['cpu_time']['p50_ms']:.1f} |" for row in timed]
    for row in report["artefacts"]:
        if row["status"] == "not built":
            lines += ["", f"## {row['artefact']}: not built", "", f"{row['note']}."]
    return "\n".join(lines) + "\n"


def build_report(options, meta: dict, ckpt, ckpt_sha: str, artefacts: list, seconds: float, out, versions: dict) -> dict:
    """The ``export_report.json`` content: every artefact's status, size, time and parity, and the run's settings."""
    rows = []
    for art in artefacts:
        rows.append({
            "artefact": art.label, "kind": art.kind, "precision": art.precision, "status": art.status,
            "path": str(out / art.label) if art.path else None,
            "size_bytes": art.path.stat().st_size if art.path else None, "seconds": round(art.seconds, 2),
            "parity_passed": art.passed if art.parity else None, "parity": art.parity_text(), "note": art.note,
            "parity_results": [p.to_dict() for p in art.parity], **art.extra})
    failed = [a for a in artefacts if a.status == "failed"]
    return {
        "name": meta["name"], "family": meta["family"], "preset": meta["preset"],
        "checkpoint": str(ckpt), "checkpoint_sha256": ckpt_sha, "out": str(out),
        "passed": not failed, "failed": [a.label for a in failed],
        "thresholds": asdict(options.thresholds),
        "parity_shapes": [list(s) for s in options.parity_shapes],
        "profile": {"min": list(options.min_shape), "opt": list(options.opt_shape), "max": list(options.max_shape),
                    "max_batch": options.max_batch},
        "artefacts": rows, "seconds": round(seconds, 1),
        "triton_repo": options.triton_repo,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "versions": versions, "python": sys.version.split()[0],
    }
