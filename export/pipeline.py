"""The export run: checkpoint -> ONNX FP32 -> FP16 ONNX -> INT8 ONNX -> TensorRT engines, each checked against PyTorch.

Each step is a function of ``export`` that can be called alone (``export_onnx``, ``convert_fp16``,
``quantize_int8``, ``engine.build_engine``); this module chains them, runs the parity checks, writes the sidecars and
the report, and publishes only artefacts that passed. The whole set (models, sidecars, assets, report)
is built in a recognisable staging folder beside ``--out`` and renamed into place in one step at the end
(swapped with an earlier export there; files of the user's in ``--out`` are carried over), so model,
sidecar and report appear together or not at all, and a failed or interrupted export leaves nothing
half-written.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from runtime.core.errors import UserError
from runtime.core.io import publish, temp_dir, write_text
from runtime.core.sidecar import MAX_SIDE, MIN_SIDE, Sidecar, file_sha256, make_profile, sidecar_path

from .parity import Thresholds, compare
from .report import build_report, markdown
from .report import hw as _hw

__all__ = ["ExportOptions", "ExportError", "run_export", "parse_shape", "MIN_SIDE", "MAX_SIDE"]


class ExportError(UserError):
    """Bad input to an export: a checkpoint, a shape, an output folder, a missing TensorRT with --engine."""


def parse_shape(text: str, *, batch: bool = False) -> tuple[int, ...]:
    """``HxW`` (or ``BxHxW`` when ``batch``) -> a tuple of ints, checked to be within MIN_SIDE..MAX_SIDE."""
    parts = text.lower().replace(" ", "").split("x")
    try:
        values = tuple(int(p) for p in parts)
    except ValueError:
        raise ValueError(f"{text!r} is not a shape like 720x1280") from None
    if batch and len(values) == 2:
        values = (1, *values)
    if len(values) != (3 if batch else 2):
        raise ValueError(f"{text!r}: expected {'[B]x' if batch else ''}HxW")
    if batch and values[0] < 1:
        raise ValueError(f"{text!r}: the batch must be positive")
    if any(not MIN_SIDE <= v <= MAX_SIDE for v in values[-2:]):
        raise ValueError(f"{text!r}: height and width must be between {MIN_SIDE} and {MAX_SIDE}")
    return values


@dataclass
class ExportOptions:
    """What to build; the CLI's options (``python -m export --help`` explains each)."""

    checkpoint: str
    out: str | None = None
    fp16: bool = False
    fp16_io: bool = False
    keep_fp32: tuple[str, ...] = ()
    int8: bool = False
    calib: str | None = None
    """A folder of images or videos to calibrate INT8 on (None: the family's generated inputs)."""
    calib_count: int = 32
    calib_method: str = "minmax"
    opset: int = 18
    min_shape: tuple[int, int] = (256, 256)
    opt_shape: tuple[int, int] = (720, 1280)
    max_shape: tuple[int, int] = (1088, 1920)
    max_batch: int = 4
    parity_shapes: tuple[tuple[int, int, int], ...] = ((1, 256, 256), (2, 360, 640))
    thresholds: Thresholds = field(default_factory=Thresholds)
    engine: bool | None = None
    """True: an engine is required (error without TensorRT or a GPU); False: never; None: when possible."""
    workspace_gb: float = 4.0
    timing_cache: str | None = None
    cache_dir: str | None = None
    version_compatible: bool = False
    hardware_compatible: bool = False
    triton_repo: str | None = None
    threads: int = 0
    quiet: bool = False

    def check(self) -> None:
        """Raise ExportError naming the first inconsistent option."""
        low, opt, high = self.min_shape, self.opt_shape, self.max_shape
        if any(not a <= b <= c for a, b, c in zip(low, opt, high)):
            raise ExportError(f"shapes must satisfy --min-shape <= --opt-shape <= --max-shape on both sides; got "
                              f"{_hw(low)}, {_hw(opt)}, {_hw(high)}")
        for b, h, w in self.parity_shapes:
            if not (low[0] <= h <= high[0] and low[1] <= w <= high[1]) or b > self.max_batch:
                raise ExportError(f"--parity-shapes {b}x{h}x{w} is outside the profile "
                                  f"(1..{self.max_batch} x {_hw(low)} .. {_hw(high)})")
        if self.fp16_io and not self.fp16:
            raise ExportError("--fp16-io needs --fp16")
        if (self.calib is not None or self.calib_method != "minmax") and not self.int8:
            raise ExportError("--calib and --calib-method need --int8")
        if self.engine is True and self.engine_unavailable():
            raise ExportError(f"--engine: {self.engine_unavailable()}")

    def engine_unavailable(self) -> str | None:
        """Why no engine can be built here (None: it can)."""
        from . import engine

        return engine.unavailable_reason()


def _cache_home() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "edgelight" / "tensorrt"


class _Log:
    def __init__(self, quiet: bool, stages: int) -> None:
        self.quiet, self.stages, self.step = quiet, stages, 0

    def stage(self, text: str) -> float:
        self.step += 1
        if not self.quiet:
            print(f"[{self.step}/{self.stages}] {text}", flush=True)
        return time.perf_counter()

    def __call__(self, text: str) -> None:
        if not self.quiet:
            print(f"      {text}", flush=True)


def _load(checkpoint: str):
    from train.checkpoint import checkpoint_path, load_checkpoint

    path = checkpoint_path(checkpoint)
    model, meta = load_checkpoint(path)
    return model, meta, path


def _versions(**extra) -> dict:
    import onnx
    import onnxruntime
    import torch

    from runtime.core import __version__

    return {"edgelight": __version__, "torch": torch.__version__.split("+")[0], "onnx": onnx.__version__,
            "onnxruntime": onnxruntime.__version__, **extra}


def _dynamic(meta: dict, max_batch: int) -> dict:
    from .onnx_export import dynamic_axes

    shapes = {}
    for spec in meta["contract"]["inputs"] + meta["contract"]["outputs"]:
        shape = list(spec["shape"]) if "shape" in spec else ["N", spec["channels"], "H", "W"]
        for axis, label in dynamic_axes(spec).items():
            shape[axis] = label
        shapes[spec["name"]] = shape
    return {"shapes": shapes, "batch": [1, max_batch], "height": [MIN_SIDE, MAX_SIDE], "width": [MIN_SIDE, MAX_SIDE]}


def _size(path: Path) -> str:
    n = path.stat().st_size
    return f"{n / 1e6:.2f} MB" if n >= 1e5 else f"{n / 1e3:.1f} kB"


@dataclass
class _Artefact:
    label: str
    kind: str
    precision: str
    path: Path | None = None
    seconds: float = 0.0
    parity: list = field(default_factory=list)
    status: str = "built"
    """built | failed | not built | reused"""
    note: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return bool(self.parity) and all(p.passed for p in self.parity)

    def parity_text(self) -> str:
        if not self.parity:
            return "-"
        bad = [p for p in self.parity if not p.passed]
        if bad:
            return f"FAIL {bad[0].output}: {bad[0].reason}"
        if self.precision == "fp32":
            return f"pass (max abs {max(p.max_abs for p in self.parity):.2g})"
        psnrs = [p.psnr for p in self.parity if p.psnr is not None]
        return f"pass (PSNR >= {min(psnrs):.1f} dB)" if psnrs else "pass (identical)"


def run_export(options: ExportOptions) -> dict:
    """Run the export described by ``options``; return the report (also written as export_report.json/.md).

    Raises:
        ExportError: bad input (checkpoint, shapes, output folder, --engine without TensorRT).
    """
    from .fp16 import convert_fp16, precision_summary
    from runtime.runners.onnxruntime import OnnxRuntimeRunner
    from runtime.runners.torch import TorchRunner
    from train.families import get_family, sample_inputs

    from .onnx_export import export_onnx

    options.check()
    started = time.perf_counter()
    model, meta, ckpt = _load(options.checkpoint)
    out = Path(options.out) if options.out else (ckpt.parent / "export")
    if out.exists() and not out.is_dir():
        raise ExportError(f"--out {out} is a file")
    triton = Path(options.triton_repo) if options.triton_repo else None
    for option, folder in (("--out", out), ("--triton-repo", triton)):
        if folder is None:
            continue
        if folder.exists() and not folder.is_dir():
            raise ExportError(f"{option} {folder} is a file")
        parent = next((p for p in [folder, *folder.parents] if p.exists()), None)
        if parent is not None and (not parent.is_dir() or not os.access(parent, os.W_OK)):
            raise ExportError(f"{option} {folder}: cannot create or write it under {parent}")
    if options.int8:  # read (and check) the calibration data before anything is built: a bad folder fails at once
        calib, where = _calibration(meta, options)
    reason = None if options.engine is False else options.engine_unavailable()
    if options.engine is False:
        reason = "--no-engine"
    log = _Log(options.quiet, 3 + int(options.fp16) + int(options.int8) + int(reason is None) * (1 + 2 * options.int8))
    stem = "model"
    contract = meta["contract"]
    ckpt_sha = file_sha256(ckpt)
    existed = out.is_dir()
    staging = temp_dir(out)  # beside --out; the whole set is renamed into place at the end
    artefacts: list[_Artefact] = []
    profile = make_profile(contract, options.min_shape, options.opt_shape, options.max_shape, options.max_batch)
    assets = get_family(meta["family"]).assets(meta, ckpt)

    def check(art: _Artefact, runner_class, **runner_options) -> list:
        """Parity of a staged artefact, run by the runtime's own runner for it (as users will run it); an ONNX
        artefact's CPU time on the last (largest) parity input is recorded for ``pick_file``'s choice."""
        with runner_class(art.path, _sidecar(art, meta, ckpt, ckpt_sha, options, profile, assets),
                          **runner_options) as runner:
            parity = [r for f, ref in zip(feeds, references)
                      for r in compare(art.label, art.precision, ref, runner.infer(f), contract, options.thresholds)]
            if art.kind == "onnx" and runner.device == "cpu":
                art.extra["cpu_time"] = _cpu_time(runner, feeds[-1])
            return parity

    def judge(art: _Artefact, summary: dict, reduced: str) -> None:
        """Parity of a reduced-precision ONNX file on ONNX Runtime's CPU provider; failed when no convolution or
        matmul runs at ``reduced`` (``fp16``, ``int8``) either."""
        art.parity = check(art, OnnxRuntimeRunner, device="cpu", threads=options.threads or None)
        if summary["compute"] and not summary[f"{reduced}_compute"]:
            art.note = f"no convolution or matmul runs in {reduced.upper()}"
        art.status = "built" if art.passed and not art.note else "failed"

    try:
        t0 = log.stage(f"realistic inputs for {meta['name']} at "
                       f"{', '.join(_hw(s) for s in options.parity_shapes)} (BxHxW)")
        feeds = [sample_inputs(meta, *shape, seed=i) for i, shape in enumerate(options.parity_shapes)]
        with TorchRunner(ckpt, device="cpu", channels_last=False) as reference:
            references = [reference.infer(f) for f in feeds]
        trace = sample_inputs(meta, 2, *options.min_shape, seed=99)  # batch 2: torch.export specialises 1
        log(f"PyTorch FP32 reference: {time.perf_counter() - t0:.1f} s")

        t0 = log.stage(f"ONNX fp32: torch.onnx.export (dynamo, opset {options.opset}), dynamic batch/height/width")
        fp32 = _Artefact(f"{stem}.onnx", "onnx", "fp32", staging / f"{stem}.onnx")
        try:
            export_onnx(model, meta, trace, fp32.path, opset=options.opset, min_side=MIN_SIDE, max_side=MAX_SIDE)
        except OSError:  # a failed write (a full disk): reported as such below
            raise
        except Exception as exc:  # an exporter failure is the model's, not the user's: report it whole
            raise RuntimeError(f"torch.onnx.export failed for {meta['name']}: {exc}") from exc
        fp32.seconds = time.perf_counter() - t0
        fp32.parity = check(fp32, OnnxRuntimeRunner, device="cpu", threads=options.threads or None)
        fp32.status = "built" if fp32.passed else "failed"
        log(f"{_size(fp32.path)}, checker ok, parity {fp32.parity_text()} ({fp32.seconds:.1f} s)")
        artefacts.append(fp32)
        last = fp32
        if options.fp16 or options.int8:  # --keep-fp32: operator types and node names, for FP16 and INT8 alike
            ops, nodes = _split_keep(fp32.path, options.keep_fp32)

        if options.fp16:
            t0 = log.stage("FP16 ONNX: onnxconverter-common float16, sensitive ops kept FP32"
                           + (", FP16 I/O" if options.fp16_io else ", FP32 I/O"))
            from .fp16 import KEEP_FP32

            half = _Artefact(f"{stem}.fp16.onnx", "onnx", "fp16", staging / f"{stem}.fp16.onnx")
            convert_fp16(fp32.path, half.path, keep_fp32=tuple(dict.fromkeys(KEEP_FP32 + ops)), keep_nodes=nodes,
                         fp16_io=options.fp16_io)
            half.seconds = time.perf_counter() - t0
            summary = precision_summary(half.path)
            half.extra["fp16"] = summary
            judge(half, summary, "fp16")
            log(f"{_size(half.path)}, {summary['fp16_compute']}/{summary['compute']} convs+matmuls in FP16, "
                f"kept FP32: {', '.join(f'{k} x{v}' for k, v in summary['kept_fp32'].items()) or 'none'}; "
                f"parity {half.parity_text()} ({half.seconds:.1f} s)")
            artefacts.append(half)
            last = half

        sources = [last]  # what engines are built from: the FP16 (or FP32) file, and the INT8 Q/DQ one
        if options.int8:
            from .int8 import int8_summary, quantize_int8

            t0 = log.stage(f"INT8 ONNX: ONNX Runtime static quantization, Q/DQ, per-channel INT8 weights, UINT8 "
                           f"activations, {options.calib_method} calibration")
            q8 = _Artefact(f"{stem}.int8.onnx", "onnx", "int8", staging / f"{stem}.int8.onnx")
            quantize_int8(fp32.path, q8.path, calib, method=options.calib_method, keep_ops=ops, keep_nodes=nodes)
            q8.seconds = time.perf_counter() - t0
            summary = int8_summary(q8.path)
            q8.extra["int8"] = {**summary, "calibration": {"method": options.calib_method, "source": where,
                                                          "count": len(calib)}}
            judge(q8, summary, "int8")
            log(f"calibrated on {where}; {_size(q8.path)}, {summary['int8_compute']}/{summary['compute']} "
                f"convs+matmuls in INT8, kept float: "
                f"{', '.join(f'{k} x{v}' for k, v in summary['kept_float'].items()) or 'none'}; "
                f"parity {q8.parity_text()} ({q8.seconds:.1f} s)")
            artefacts.append(q8)
            engine_source = q8
            if reason is None and q8.status == "built":
                # TensorRT takes INT8 activations with zero point 0 only: the engine's own Q/DQ file, same calibration.
                t0 = log.stage("INT8 Q/DQ for TensorRT: symmetric INT8 activations, same calibration")
                sym = _Artefact(f"{stem}.int8.qdq.onnx", "onnx", "int8", staging / f"{stem}.int8.qdq.onnx")
                quantize_int8(fp32.path, sym.path, calib, method=options.calib_method, symmetric=True, keep_ops=ops,
                              keep_nodes=nodes)
                sym.seconds, sym.extra["int8"] = time.perf_counter() - t0, {**int8_summary(sym.path),
                                                                           "calibration": q8.extra["int8"]["calibration"]}
                sym.parity = check(sym, OnnxRuntimeRunner, device="cpu", threads=options.threads or None)
                sym.status = "built" if sym.passed else "failed"
                log(f"{_size(sym.path)}, parity on ONNX Runtime {sym.parity_text()} ({sym.seconds:.1f} s)")
                artefacts.append(sym)
                engine_source = sym
            sources.append(engine_source)

        for source in sources:
            _engine_stage(source, artefacts, reason, options, profile, staging, check, log)

        t0 = log.stage(f"sidecars, report{' and Triton repository' if options.triton_repo else ''} -> {out}")
        _copy_assets(assets, staging)
        sidecars = {}
        for art in artefacts:  # what passed goes out with its sidecar; failed artefacts stay out of --out
            if art.path is not None and art.status in ("built", "reused"):
                sidecars[art.label] = _sidecar(art, meta, ckpt, ckpt_sha, options, profile, assets)
                _write_json(sidecar_path(art.path), sidecars[art.label].to_dict())
            elif art.path is not None:
                art.path.unlink()
                art.path = None
        report = build_report(options, meta, ckpt, ckpt_sha, artefacts, time.perf_counter() - started, out,
                              _versions())
        _write_json(staging / "export_report.json", report)
        write_text(staging / "export_report.md", markdown(report))
        if existed:
            _keep_foreign(out, staging)
        # Model, sidecars and report appear together: the staging folder becomes --out in one rename
        # (swapped with an earlier export in --out), and never replaces a folder another run made meanwhile.
        publish(staging, out, overwrite=existed)
        for art in artefacts:
            art.path = out / art.label if art.path is not None else None
        if options.triton_repo:
            _triton(options, meta, artefacts, sidecars)
        return report
    except OSError as exc:  # name what the user asked for, not the staging folder
        if not exc.filename or str(exc.filename).startswith(str(staging)):  # a write to the set (on an open file:
            where = out / Path(exc.filename).relative_to(staging) if exc.filename else out  # no name given)
            raise OSError(exc.errno, exc.strerror or str(exc), str(where)) from None
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _engine_stage(source: _Artefact, artefacts: list[_Artefact], reason: str | None, options: ExportOptions,
                  profile: dict, staging: Path, check, log: _Log) -> None:
    """Build the TensorRT engine of ``source`` (strongly typed: its precision is the ONNX file's), check its
    parity and add it to ``artefacts``; or add it as not built, with the reason."""
    from . import engine as trt_engine
    from runtime.runners.tensorrt import TensorRTRunner

    label = {"fp32": "model.engine", "fp16": "model.fp16.engine", "int8": "model.int8.engine"}[source.precision]
    if reason is not None or source.status != "built":
        artefacts.append(_Artefact(label, "engine", source.precision, status="not built",
                                   note=reason or f"{source.label} failed parity"))
        return
    t0 = log.stage(f"TensorRT engine from {source.label}: strongly typed, profile {_hw(options.min_shape)} / "
                   f"{_hw(options.opt_shape)} / {_hw(options.max_shape)}, batch 1..{options.max_batch}")
    plan = _Artefact(label, "engine", source.precision, staging / label)
    cc, version = trt_engine.compute_capability(), trt_engine.tensorrt_version()
    cache_dir = Path(options.cache_dir) if options.cache_dir else _cache_home() / "engines"
    timing = (Path(options.timing_cache) if options.timing_cache
              else _cache_home() / f"timing-sm{cc.replace('.', '')}-trt{version}.cache")
    shapes = {name: (p.min, p.opt, p.max) for name, p in profile.items()}
    build = trt_engine.build_engine(
        source.path, plan.path, trt_engine.Profile(shapes), workspace_gb=options.workspace_gb,
        timing_cache=timing, cache_dir=cache_dir, version_compatible=options.version_compatible,
        hardware_compatible=options.hardware_compatible, progress=not options.quiet, log=log)
    plan.seconds = time.perf_counter() - t0
    plan.extra["tensorrt"] = {
        "version": build.trt_version, "compute_capability": build.compute_capability,
        "device_name": build.device_name, "cache_key": build.cache_key,
        "version_compatible": options.version_compatible, "hardware_compatible": options.hardware_compatible,
        "workspace_gb": options.workspace_gb, "timing_cache": str(timing), "reused": build.reused,
        "source": source.label}
    if "int8" in source.extra:
        plan.extra["int8"] = source.extra["int8"]
    plan.parity = check(plan, TensorRTRunner)
    plan.status = ("reused" if build.reused else "built") if plan.passed else "failed"
    log(f"{_size(plan.path)}, {'reused from the engine cache' if build.reused else 'built'}, "
        f"parity {plan.parity_text()} ({plan.seconds:.1f} s)")
    artefacts.append(plan)


def _calibration(meta: dict, options: ExportOptions) -> tuple[list, str]:
    """The INT8 calibration feeds and where they came from; a CalibrationError is bad input (exit 2)."""
    from .int8 import CalibrationError, calibration_feeds

    try:
        return calibration_feeds(meta, options.calib_count, folder=options.calib)
    except CalibrationError as exc:
        raise ExportError(str(exc)) from None


def _cpu_time(runner, feed: dict, runs: int = 3) -> dict:
    """Median milliseconds of ``runs`` runs of ``feed`` after one warm-up, with the CPU and the input shape."""
    from runtime.core.host import cpu_name

    runner.infer(feed)
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        runner.infer(feed)
        times.append(time.perf_counter() - t0)
    shape = next(iter(feed.values())).shape
    return {"cpu": cpu_name(), "threads": runner.threads or os.cpu_count(), "shape": list(shape),
            "p50_ms": round(float(np.median(times)) * 1e3, 3)}


_EXPORT_FILES = ("model.onnx", "model.*.onnx", "model.engine", "model.*.engine", "model*.json", "export_report.*")
"""What an export writes in --out (besides its assets): an earlier export's set is replaced as a whole."""


def _keep_foreign(out: Path, staging: Path) -> None:
    """Carry what the user keeps in --out that is not an earlier export's set over into the new set."""
    ours = {p.name for pattern in _EXPORT_FILES for p in out.glob(pattern)} | {p.name for p in staging.iterdir()}
    for entry in out.iterdir():
        if entry.name in ours or entry.name.startswith("."):
            continue
        if entry.is_dir():
            shutil.copytree(entry, staging / entry.name, symlinks=True, copy_function=_link_or_copy)
        else:
            _link_or_copy(entry, staging / entry.name)


def _link_or_copy(source, target) -> None:
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def _copy_assets(assets: dict[str, Path], staging: Path) -> None:
    """Copy the files a model needs besides its weights (its family's ``assets``) into the set."""
    for source in assets.values():
        shutil.copyfile(source, staging / source.name)


def _split_keep(path: Path, names: tuple[str, ...]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """--keep-fp32 entries -> (operator types, node names); an entry that is neither is an error."""
    import onnx

    if not names:
        return (), ()
    nodes = {node.name for node in onnx.load(str(path), load_external_data=False).graph.node}
    ops = tuple(n for n in names if n not in nodes and onnx.defs.has(n))
    unknown = [n for n in names if n not in nodes and n not in ops]
    if unknown:
        raise ExportError(f"--keep-fp32 {', '.join(unknown)}: neither an ONNX operator type nor a node of {path.name} "
                          "(node names are in Netron or onnx.load(...).graph.node)")
    return ops, tuple(n for n in names if n in nodes)


def _sidecar(art: _Artefact, meta: dict, ckpt: Path, ckpt_sha: str, options: ExportOptions, profile: dict,
             assets: dict[str, Path]) -> Sidecar:
    extra_versions = {"tensorrt": art.extra["tensorrt"]["version"]} if "tensorrt" in art.extra else {}
    extra = {key: art.extra[key] for key in ("int8", "cpu_time") if key in art.extra}
    sidecar = Sidecar(
        artefact=art.label, kind=art.kind, sha256=file_sha256(art.path), size_bytes=art.path.stat().st_size,
        precision=art.precision, io_precision="fp16" if options.fp16_io and art.precision == "fp16" else "fp32",
        name=meta["name"], family=meta["family"], task=meta.get("task"), preset=meta["preset"],
        config=meta["config"], contract=meta["contract"], opset=options.opset,
        dynamic=_dynamic(meta, options.max_batch), profile=profile,
        source={"checkpoint": str(ckpt.resolve()), "sha256": ckpt_sha, "metrics": meta.get("metrics", {})},
        parity={"passed": art.passed, "thresholds": asdict(options.thresholds),
                "results": [p.to_dict() for p in art.parity]},
        assets={name: path.name for name, path in assets.items()}, fp16=art.extra.get("fp16"),
        tensorrt=None, extra=extra, created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        versions=_versions(**extra_versions))
    if "tensorrt" in art.extra:
        sidecar = sidecar.replace(tensorrt=art.extra["tensorrt"])
    return Sidecar.from_dict(json.loads(json.dumps(sidecar.to_dict(), default=_json_default)))


def _triton(options: ExportOptions, meta: dict, artefacts: list[_Artefact], sidecars: dict) -> None:
    from .triton import write_triton_model

    onnx_art = [a for a in artefacts if a.kind == "onnx" and a.path is not None][-1:]
    plans = [a for a in artefacts if a.kind == "engine" and a.path is not None]
    for art, backend, suffix in [*((a, "onnxruntime", "onnx") for a in onnx_art),
                                 *((a, "tensorrt", "tensorrt") for a in plans)]:
        folder = write_triton_model(options.triton_repo, f"{meta['name']}_{suffix}", art.path, sidecars[art.label],
                                    backend, options.max_batch)
        art.extra.setdefault("triton", str(folder))


def _json_default(value):
    if isinstance(value, (np.generic,)):
        return value.item()
    if isinstance(value, (Path, tuple)):
        return str(value) if isinstance(value, Path) else list(value)
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def _write_json(path: Path, data: dict) -> None:
    write_text(path, json.dumps(data, indent=2, default=_json_default) + "\n")
