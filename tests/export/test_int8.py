"""``python -m export --int8``: a Q/DQ INT8 ONNX file that matches PyTorch, runs in the runtime and says what it quantized."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from export.cli import main
from export.int8 import calibration_feeds, heads, int8_summary, quantize_int8, shallow_convs, stems
from runtime import Pipeline, load
from runtime.core.errors import ModelError
from runtime.core.sidecar import read_sidecar
from runtime.tasks import task_for
from train.checkpoint import load_checkpoint, save_checkpoint
from train.families import get_family, list_families, sample_inputs
from train.models import create_model

ort = pytest.importorskip("onnxruntime")

SMALL = ["--min-shape", "32x32", "--opt-shape", "64x64", "--max-shape", "128x128", "--max-batch", "2",
         "--parity-shapes", "1x48x64,2x64x40", "--calib-count", "8", "--quiet"]
TINY = {name: config for family in list_families() for name, config in get_family(family).tiny}


def _checkpoint(tmp_path: Path, name: str, **config) -> Path:
    torch.manual_seed(0)
    path = tmp_path / f"{name}.ckpt"
    save_checkpoint(path, create_model(name, **config).eval())
    return path


def _psnr(expected: np.ndarray, got: np.ndarray, peak: float) -> float:
    mse = float(np.mean((expected.astype(np.float64) - got) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(peak**2 / mse)


THIN = {"ibr_test"}
"""Tiny presets whose layers are all thinner than MIN_DEPTH: nothing to quantize, refused (tested below)."""


@pytest.mark.parametrize("name", [name for name in TINY if name not in THIN])
def test_every_tiny_preset_quantizes_passes_parity_and_runs_in_the_runtime(name, tmp_path):
    ckpt = _checkpoint(tmp_path, name, **TINY[name])
    out = tmp_path / "out"
    assert main([str(ckpt), "--int8", "--out", str(out), *SMALL]) == 0
    report = json.loads((out / "export_report.json").read_text())
    q8 = next(a for a in report["artefacts"] if a["artefact"] == "model.int8.onnx")
    assert q8["status"] == "built" and q8["parity_passed"]
    assert q8["int8"]["int8_compute"] > 0 and q8["int8"]["activations"] == "uint8"
    assert "INT8 compute in model.int8.onnx" in (out / "export_report.md").read_text()
    engine = next(a for a in report["artefacts"] if a["artefact"] == "model.int8.engine")
    assert engine["status"] == "not built" and engine["note"]  # no TensorRT here: said, with the reason

    # Integer arithmetic really is in the file: Q/DQ pairs and INT8 weights.
    graph = onnx.load(str(out / "model.int8.onnx")).graph
    ops = {node.op_type for node in graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    assert any(t.data_type == onnx.TensorProto.INT8 for t in graph.initializer)

    # Judged here, not by the report: a batch and size the export never saw.
    model, meta = load_checkpoint(ckpt)
    feeds = sample_inputs(meta, 3, 40, 72, seed=7)
    with torch.no_grad():
        expected = model(*(torch.from_numpy(feeds[s["name"]]) for s in meta["contract"]["inputs"]))
    expected = expected if isinstance(expected, (tuple, list)) else (expected,)
    sidecar = read_sidecar(out / "model.int8.onnx")
    assert sidecar.precision == "int8" and sidecar.parity["passed"] and sidecar.extra["int8"]["int8_compute"] > 0
    assert sidecar.extra["cpu_time"]["p50_ms"] > 0
    with load(out, precision="int8") as runner:
        assert runner.path.name == "model.int8.onnx"
        got = runner.infer(feeds)
        kind = task_for(runner)
        if kind is not None and kind.video_input:
            frame = np.random.default_rng(0).integers(0, 256, (40, 72, 3), dtype=np.uint8)
            result = Pipeline(runner, kind.for_benchmark(runner, 4)).process(frame)
            assert result.shape == frame.shape and result.dtype == np.uint8
    for spec, ref in zip(meta["contract"]["outputs"], expected):
        ref = ref.numpy()
        low, high = (spec.get("range") or [None, None])[:2]
        peak = (high - low) if low is not None and high is not None else float(np.ptp(ref)) or 1.0
        assert _psnr(ref, got[spec["name"]], peak) >= 30.0, spec["name"]


def test_int8_keeps_stems_heads_and_shallow_convolutions_float(tmp_path):
    ckpt = _checkpoint(tmp_path, "lowlight_edgetest")
    out = tmp_path / "out"
    assert main([str(ckpt), "--int8", "--out", str(out), *SMALL]) == 0
    fp32 = onnx.load(str(out / "model.onnx"))
    float_convs = set(stems(fp32)) | set(heads(fp32)) | set(shallow_convs(fp32))
    assert float_convs  # the mean-pool filters, the first layer and the map head
    graph = onnx.load(str(out / "model.int8.onnx")).graph
    producer = {o: n for n in graph.node for o in n.output}
    for node in graph.node:
        if node.op_type == "Conv" and node.name in float_convs:
            weight = producer.get(node.input[1])
            assert weight is None or weight.op_type != "DequantizeLinear", node.name
    summary = int8_summary(out / "model.int8.onnx")
    assert summary["float"].get("Conv", 0) >= len([n for n in float_convs if n.startswith("node_Conv")
                                                   or "conv" in n.lower()]) > 0
    assert {"Exp", "Log"} <= set(summary["kept_float"])  # sensitive arithmetic stays float


def test_a_model_with_nothing_deep_enough_to_quantize_is_refused(tmp_path, capsys):
    ckpt = _checkpoint(tmp_path, "ibr_test")  # 1x1 convolutions of 8 channels: thinner than MIN_DEPTH
    out = tmp_path / "out"
    assert main([str(ckpt), "--int8", "--out", str(out), *SMALL]) == 1
    assert "no convolution or matmul runs in INT8" in capsys.readouterr().out
    assert (out / "model.onnx").is_file() and not (out / "model.int8.onnx").exists()


def test_keep_fp32_keeps_operator_types_and_nodes_out_of_int8(tmp_path):
    ckpt = _checkpoint(tmp_path, "lowlight_edgetest")
    out = tmp_path / "default"
    assert main([str(ckpt), "--int8", "--out", str(out), *SMALL]) == 0
    default = int8_summary(out / "model.int8.onnx")
    assert default["quantized"].get("Concat", 0) > 0
    graph = onnx.load(str(out / "model.int8.onnx")).graph
    producer = {o: n for n in graph.node for o in n.output}
    quantized = [n.name for n in graph.node if n.op_type == "Conv"
                 and getattr(producer.get(n.input[1]), "op_type", "") == "DequantizeLinear"]
    kept = tmp_path / "kept"
    assert main([str(ckpt), "--int8", "--keep-fp32", f"Concat,{quantized[0]}", "--out", str(kept), *SMALL]) == 0
    summary = int8_summary(kept / "model.int8.onnx")
    assert "Concat" not in summary["quantized"] and summary["kept_float"]["Concat"] > 0
    assert summary["int8"]["Conv"] < default["int8"]["Conv"]


def test_symmetric_qdq_for_tensorrt_has_zero_points_of_zero_and_matches(tmp_path):
    ckpt = _checkpoint(tmp_path, "lowlight_edgetest")
    out = tmp_path / "out"
    assert main([str(ckpt), "--out", str(out), *SMALL[:-3], "--quiet"]) == 0
    _, meta = load_checkpoint(ckpt)
    feeds, source = calibration_feeds(meta, 8)
    assert "8 generated lowlight samples" in source
    sym = quantize_int8(out / "model.onnx", tmp_path / "sym.onnx", feeds, symmetric=True)
    graph = onnx.load(str(sym)).graph
    zeros = {t.name: t for t in graph.initializer}
    points = [zeros[n.input[2]] for n in graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")
              and len(n.input) > 2 and n.input[2] in zeros]
    assert points and {p.data_type for p in points} == {onnx.TensorProto.INT8}  # no UINT8, no INT32 biases
    assert all(not onnx.numpy_helper.to_array(p).any() for p in points)  # TensorRT takes zero point 0 only
    assert int8_summary(sym)["activations"] == "int8"
    test = sample_inputs(meta, 1, 48, 64, seed=3)
    run = lambda p: ort.InferenceSession(str(p), providers=["CPUExecutionProvider"]).run(None, test)[0]  # noqa: E731
    assert _psnr(run(out / "model.onnx"), run(sym), 1.0) > 30.0


def test_calibration_from_a_folder_of_real_photos(tmp_path):
    import cv2
    from skimage import data

    photos = tmp_path / "photos"
    photos.mkdir()
    for i, name in enumerate(("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry", "hubble_deep_field",
                              "retina", "colorwheel")):
        image = getattr(data, name)()
        cv2.imwrite(str(photos / f"{i}.jpg"), cv2.cvtColor((image * 0.25).astype(np.uint8), cv2.COLOR_RGB2BGR))
    ckpt = _checkpoint(tmp_path, "lowlight_edgetest")
    out = tmp_path / "out"
    assert main([str(ckpt), "--int8", "--calib", str(photos), "--calib-method", "percentile", "--out", str(out),
                 *SMALL]) == 0
    calibration = read_sidecar(out / "model.int8.onnx").extra["int8"]["calibration"]
    assert calibration == {"method": "percentile", "source": f"8 frames from {photos}", "count": 8}
    _, meta = load_checkpoint(ckpt)
    feeds, _ = calibration_feeds(meta, 8, folder=photos)
    assert {f["image"].shape for f in feeds} == {(1, 3, 360, 640)}  # every photo scaled and cropped to one shape


def test_calibration_from_one_video_file(tmp_path):
    from runtime.democlip import make_demo_clip

    clip = make_demo_clip(tmp_path / "night.mp4", kind="lowlight", frames=12, size=(96, 128))
    _, meta = load_checkpoint(_checkpoint(tmp_path, "lowlight_edgetest"))
    feeds, source = calibration_feeds(meta, 8, folder=clip, frame_size=(48, 64))
    assert source == f"8 frames from {clip}" and len(feeds) == 8
    assert {f["image"].shape for f in feeds} == {(1, 3, 48, 64)}
    assert len({float(f["image"].mean()) for f in feeds}) > 1  # frames spread over the clip, not one repeated


def _bad_folder(tmp_path: Path, kind: str) -> str:
    folder = tmp_path / kind
    folder.mkdir()
    if kind == "few":
        for i in range(3):
            (folder / f"{i}.png").write_bytes(_png())
    elif kind == "wrong":
        for i in range(10):
            np.save(folder / f"{i}.npy", np.zeros(3))
    elif kind == "corrupt":
        for i in range(10):
            (folder / f"{i}.jpg").write_bytes(b"not a jpeg")
    return str(folder)


def _png() -> bytes:
    import cv2

    return cv2.imencode(".png", np.full((40, 60, 3), 80, np.uint8))[1].tobytes()


@pytest.mark.parametrize("case", ["count", "few", "wrong", "corrupt", "missing", "empty", "no-int8", "no-frame"])
def test_bad_calibration_is_one_line_exit_2_and_writes_nothing(case, tmp_path, capsys):
    from runtime.core.cli import run

    name = "unet_test" if case == "no-frame" else "lowlight_edgetest"
    ckpt = _checkpoint(tmp_path, name)
    out = tmp_path / "out"
    if case == "missing":
        folder = str(tmp_path / "nowhere")
    else:
        folder = _bad_folder(tmp_path, "few" if case in ("count", "no-int8", "no-frame") else case)
    args = (["--int8", "--calib-count", "4"] if case == "count" else
            ["--calib", folder] if case == "no-int8" else ["--int8", "--calib", folder, "--calib-count", "8"])
    small = [a for a in SMALL if a not in ("--calib-count", "8")]
    code = run(main, [str(ckpt), "--out", str(out), *small, *args])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    expected = {"count": "at least 8", "few": "gives 3 frames", "wrong": "no images", "corrupt": "10 unreadable",
                "missing": "no such folder", "empty": "no images", "no-int8": "need --int8",
                "no-frame": "not one sRGB frame"}[case]
    assert expected in err, err
    assert not out.exists() and not list(tmp_path.glob(".*out*"))


def test_precision_picks_the_artefact_and_refuses_what_is_not_there(tmp_path):
    ckpt = _checkpoint(tmp_path, "lowlight_edgetest")
    out = tmp_path / "out"
    assert main([str(ckpt), "--int8", "--out", str(out), *SMALL]) == 0
    with pytest.raises(ModelError, match="no FP16 model"):
        load(out, precision="fp16")
    with pytest.raises(ModelError, match="is a FP32 model; --precision int8"):
        load(out / "model.onnx", precision="int8")
    assert load(out, precision="fp32").path.name == "model.onnx"
    # auto on the CPU: the faster of the two as the export timed them on this CPU model
    times = {n: read_sidecar(out / n).extra["cpu_time"]["p50_ms"] for n in ("model.onnx", "model.int8.onnx")}
    assert load(out).path.name == min(times, key=times.get)
    # timed on another CPU: no claim about this one, so FP32
    sidecar = json.loads((out / "model.int8.onnx.json").read_text())
    sidecar["cpu_time"]["cpu"] = "another CPU"
    (out / "model.int8.onnx.json").write_text(json.dumps(sidecar))
    assert load(out).path.name == "model.onnx"


def test_with_tensorrt_the_int8_engine_is_built_from_the_symmetric_qdq_file(tmp_path, monkeypatch):
    """The pipeline's engine stage, with TensorRT's build replaced by a copy of the ONNX file it was given and
    the engine runner by ONNX Runtime on that copy: which file each engine comes from, and its parity gate."""
    import export.engine as trt_engine
    import runtime.runners.tensorrt as trt_runner
    from export.pipeline import ExportOptions
    from runtime.runners.onnxruntime import OnnxRuntimeRunner

    built = {}

    def build_engine(onnx_path, plan_path, profile, **options):
        built[Path(plan_path).name] = Path(onnx_path).name
        Path(plan_path).write_bytes(Path(onnx_path).read_bytes())
        return trt_engine.EngineBuild(Path(plan_path), "key", False, 0.0, "10.99", "9.0", {}, {}, 1)

    class EngineOnOnnxRuntime(OnnxRuntimeRunner):
        def __init__(self, path, sidecar=None, **options):
            super().__init__(path, sidecar, device="cpu")

    monkeypatch.setattr(ExportOptions, "engine_unavailable", lambda self: None)
    monkeypatch.setattr(trt_engine, "build_engine", build_engine)
    monkeypatch.setattr(trt_engine, "compute_capability", lambda: "9.0")
    monkeypatch.setattr(trt_engine, "tensorrt_version", lambda: "10.99")
    monkeypatch.setattr(trt_runner, "TensorRTRunner", EngineOnOnnxRuntime)
    ckpt = _checkpoint(tmp_path, "lowlight_edgetest")
    out = tmp_path / "out"
    assert main([str(ckpt), "--int8", "--fp16", "--out", str(out), *SMALL]) == 0
    assert built == {"model.fp16.engine": "model.fp16.onnx", "model.int8.engine": "model.int8.qdq.onnx"}
    sidecar = read_sidecar(out / "model.int8.engine")
    assert sidecar.precision == "int8" and sidecar.parity["passed"]
    assert sidecar.parity["thresholds"]["int8_min_psnr"] == 35.0
    rows = {a["artefact"]: a for a in json.loads((out / "export_report.json").read_text())["artefacts"]}
    assert rows["model.int8.engine"]["tensorrt"]["source"] == "model.int8.qdq.onnx"
    assert rows["model.int8.engine"]["int8"]["activations"] == "int8"
    assert int8_summary(out / "model.int8.qdq.onnx")["activations"] == "int8"
    assert int8_summary(out / "model.int8.onnx")["activations"] == "uint8"
