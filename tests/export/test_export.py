"""python -m export on CPU: every family to ONNX and FP16 ONNX, parity, sidecars, report, Triton, errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from export.cli import main
from export.fp16 import KEEP_FP32, precision_summary
from export.onnx_export import contract_from_onnx
from runtime import Pipeline, load
from runtime.core.sidecar import SidecarError, read_sidecar, validate_sidecar
from runtime.tasks import task_for
from train.checkpoint import load_checkpoint, save_checkpoint
from train.families import get_family, list_families, sample_inputs
from train.models import create_model

ort = pytest.importorskip("onnxruntime")

SMALL = ["--min-shape", "32x32", "--opt-shape", "64x64", "--max-shape", "128x128", "--max-batch", "2",
         "--parity-shapes", "1x48x64,2x64x40", "--quiet"]
TINY = {name: config for family in list_families() for name, config in get_family(family).tiny}
"""Every family's tiny presets, from the registry: a new family is exported here without being named."""


def run_torch(model, feeds: dict, contract: dict) -> dict:
    """The eager PyTorch outputs, computed here independently of export's parity code."""
    with torch.no_grad():
        out = model(*(torch.from_numpy(feeds[spec["name"]]) for spec in contract["inputs"]))
    out = out if isinstance(out, (tuple, list)) else (out,)
    return {spec["name"]: t.float().numpy() for spec, t in zip(contract["outputs"], out)}


def run_onnx(path: Path, feeds: dict) -> dict:
    """An ONNX file's outputs in a plain ONNX Runtime CPU session (FP16 inputs where the graph declares them)."""
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    kinds = {i.name: (np.float16 if i.type == "tensor(float16)" else np.float32) for i in session.get_inputs()}
    outputs = session.run(None, {name: feeds[name].astype(kinds[name]) for name in kinds})
    return {o.name: v.astype(np.float32) for o, v in zip(session.get_outputs(), outputs)}


def _checkpoint(tmp_path: Path, name: str, **config) -> Path:
    torch.manual_seed(0)
    path = tmp_path / f"{name}.ckpt"
    save_checkpoint(path, create_model(name, **config).eval())
    return path


@pytest.mark.parametrize("name", list(TINY))
def test_every_family_exports_fp32_and_fp16_onnx_that_match_pytorch_and_run_in_the_runtime(name, tmp_path, capsys):
    ckpt = _checkpoint(tmp_path, name, **TINY[name])
    out = tmp_path / "out"
    assert main([str(ckpt), "--fp16", "--out", str(out), *SMALL]) == 0
    assert "no engine:" in capsys.readouterr().out  # no TensorRT here: said, not an error
    model, meta = load_checkpoint(ckpt)
    report = json.loads((out / "export_report.json").read_text())
    assert report["passed"] and [a["status"] for a in report["artefacts"]] == ["built", "built", "not built"]
    assert (out / "export_report.md").read_text().startswith(f"# Export report: {name}")

    # Dynamic axes really work: a third batch and size the export never saw, judged here, not by the report.
    feeds = sample_inputs(meta, 3, 40, 72, seed=7)
    expected = run_torch(model, feeds, meta["contract"])
    fp32, fp16 = run_onnx(out / "model.onnx", feeds), run_onnx(out / "model.fp16.onnx", feeds)
    for spec in meta["contract"]["outputs"]:
        key = spec["name"]
        scale = max(1.0, float(np.abs(expected[key]).max()))
        np.testing.assert_allclose(fp32[key], expected[key], atol=1e-4 * scale, err_msg=key)
        error = np.abs(fp16[key] - expected[key])
        assert np.isfinite(fp16[key]).all() and error.max() < 3e-2 * scale, (key, error.max())

    # The FP16 file computes in FP16 behind FP32 inputs and outputs.
    summary = precision_summary(out / "model.fp16.onnx")
    assert summary["fp16_compute"] == summary["compute"] > 0
    assert set(summary["io"].values()) == {"float"}
    sensitive = {node.op_type for node in onnx.load(str(out / "model.onnx")).graph.node} & set(KEEP_FP32)
    assert sensitive <= set(summary["kept_fp32"]), sensitive - set(summary["kept_fp32"])  # each one kept FP32

    # Names and the contract travel with the files.
    session = ort.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == [s["name"] for s in meta["contract"]["inputs"]]
    assert [o.name for o in session.get_outputs()] == [s["name"] for s in meta["contract"]["outputs"]]
    assert contract_from_onnx(out / "model.fp16.onnx")["contract"] == meta["contract"]
    for artefact in ("model.onnx", "model.fp16.onnx"):
        sidecar = read_sidecar(out / artefact)
        assert sidecar.name == name and sidecar.parity["passed"] and sidecar.task == get_family(meta["family"]).task
        assert len(sidecar.parity["results"]) == 2 * len(meta["contract"]["outputs"])
    assert not list(out.glob(".*")), "staging files left behind"

    # The runtime runs the export folder as users will: its task on a frame, or the runner on the inputs.
    with load(out) as runner:
        kind = task_for(runner)
        if kind is not None and kind.video_input:
            frame = np.random.default_rng(0).integers(0, 256, (40, 72, 3), dtype=np.uint8)
            result = Pipeline(runner, kind.for_benchmark(runner, 4)).process(frame)
            assert result.shape == frame.shape and result.dtype == np.uint8
        got = runner.infer(feeds)
    for spec in meta["contract"]["outputs"]:
        scale = max(1.0, float(np.abs(expected[spec["name"]]).max()))
        np.testing.assert_allclose(got[spec["name"]], expected[spec["name"]], atol=1e-4 * scale)


def test_onnx_file_passes_the_full_checker_and_keeps_weights_inline(tmp_path):
    ckpt = _checkpoint(tmp_path, "unet_test")
    assert main([str(ckpt), "--out", str(tmp_path / "o"), *SMALL]) == 0
    onnx.checker.check_model(str(tmp_path / "o" / "model.onnx"), full_check=True)
    proto = onnx.load(str(tmp_path / "o" / "model.onnx"), load_external_data=False)
    assert all(not onnx.external_data_helper.uses_external_data(t) for t in proto.graph.initializer)
    dims = [d.dim_param or d.dim_value for d in proto.graph.input[2].type.tensor_type.shape.dim]
    assert dims == ["batch", 3, "height", "width"]
    assert not (tmp_path / "o" / "model.fp16.onnx").exists()  # only with --fp16


def _overflowing_checkpoint(tmp_path: Path) -> Path:
    """ibr_test whose first layer is scaled up 1e6 and second down 1e-6: the same function in FP32
    (ReLU commutes with positive scaling) but activations past FP16's 65504."""
    torch.manual_seed(0)
    model = create_model("ibr_test").eval()
    with torch.no_grad():
        model.layers[0].weight.mul_(1e6)
        model.layers[0].bias.mul_(1e6)
        model.layers[1].weight.mul_(1e-6)
    path = tmp_path / "overflow.ckpt"
    save_checkpoint(path, model)
    return path


def test_fp16_overflow_fails_parity_with_a_report_and_nothing_published(tmp_path, capsys):
    out = tmp_path / "out"
    assert main([str(_overflowing_checkpoint(tmp_path)), "--fp16", "--out", str(out), *SMALL]) == 1
    printed = capsys.readouterr().out
    assert "PARITY FAILED" in printed and "FAIL image: " in printed
    report = json.loads((out / "export_report.json").read_text())
    assert not report["passed"] and report["failed"] == ["model.fp16.onnx"]
    bad = [r for a in report["artefacts"] for r in a["parity_results"] if not r["passed"]]
    assert bad and all(r["output"] == "image" and ("NaN/Inf" in r["reason"] or "PSNR" in r["reason"]) for r in bad)
    assert "FAIL" in (out / "export_report.md").read_text()
    assert (out / "model.onnx").is_file()  # the FP32 file passed and is published
    assert not (out / "model.fp16.onnx").exists() and not (out / "model.fp16.onnx.json").exists()


def test_keep_fp32_takes_operator_types_and_node_names(tmp_path):
    ckpt = _checkpoint(tmp_path, "unet_test")
    out = tmp_path / "o"
    assert main([str(ckpt), "--fp16", "--out", str(out), "--keep-fp32", "Gemm", *SMALL]) == 0
    convs = [n.name for n in onnx.load(str(out / "model.onnx")).graph.node if n.op_type == "Conv"]
    assert precision_summary(out / "model.fp16.onnx")["fp32"] == {"Gemm": 2}
    assert main([str(ckpt), "--fp16", "--out", str(out), "--keep-fp32", convs[0], *SMALL]) == 0
    summary = precision_summary(out / "model.fp16.onnx")
    assert summary["fp32"] == {"Conv": 1} and summary["fp16"]["Conv"] == len(convs) - 1
    proc = subprocess.run([sys.executable, "-m", "export", str(ckpt), "--fp16", "--out", str(tmp_path / "x"),
                           "--keep-fp32", "node_nonexistent", *SMALL], capture_output=True, text=True)
    assert proc.returncode == 2 and "node_nonexistent" in proc.stderr and not (tmp_path / "x").exists()


def test_a_tighter_threshold_fails_fp32_parity_and_names_the_output(tmp_path, capsys):
    ckpt = _checkpoint(tmp_path, "sfsnet_test")
    assert main([str(ckpt), "--out", str(tmp_path / "o"), "--fp32-max-abs", "1e-12", *SMALL]) == 1
    report = json.loads((tmp_path / "o" / "export_report.json").read_text())
    failing = {r["output"] for r in report["artefacts"][0]["parity_results"] if not r["passed"]}
    assert failing and failing <= {"normals", "albedo", "sh", "residue", "reconstruction"}
    assert "max abs error" in report["artefacts"][0]["parity"]
    assert not (tmp_path / "o" / "model.onnx").exists()


def test_triton_repository_layout(tmp_path):
    ckpt = _checkpoint(tmp_path, "relight_sh", **TINY["relight_sh"])
    repo = tmp_path / "triton"
    assert main([str(ckpt), "--fp16", "--out", str(tmp_path / "o"), "--triton-repo", str(repo), *SMALL]) == 0
    assert sorted(p.relative_to(repo).as_posix() for p in repo.rglob("*")) == [
        "relight_sh_onnx", "relight_sh_onnx/1", "relight_sh_onnx/1/model.onnx", "relight_sh_onnx/config.pbtxt"]
    assert (repo / "relight_sh_onnx/1/model.onnx").read_bytes() == (tmp_path / "o" / "model.fp16.onnx").read_bytes()
    config = (repo / "relight_sh_onnx/config.pbtxt").read_text()
    assert 'backend: "onnxruntime"' in config and "max_batch_size: 2" in config
    for block in ('name: "image"\n    data_type: TYPE_FP32\n    dims: [ 3, -1, -1 ]',
                  'name: "sh"\n    data_type: TYPE_FP32\n    dims: [ 27 ]',
                  'name: "relit"\n    data_type: TYPE_FP32\n    dims: [ 3, -1, -1 ]'):
        assert block in config


def test_sidecar_schema_rejects_what_the_runtime_could_not_use(tmp_path):
    ckpt = _checkpoint(tmp_path, "lowlight_edgetest")
    assert main([str(ckpt), "--out", str(tmp_path / "o"), *SMALL]) == 0
    good = json.loads((tmp_path / "o" / "model.onnx.json").read_text())
    assert validate_sidecar(good) is good
    assert good["profile"]["image"] == {"min": [1, 3, 32, 32], "opt": [1, 3, 64, 64], "max": [2, 3, 128, 128]}
    assert good["dynamic"]["shapes"]["image"] == ["batch", 3, "height", "width"]
    assert good["source"]["sha256"] and good["io_precision"] == "fp32" and good["opset"] == 18
    broken = [
        {k: v for k, v in good.items() if k != "contract"},
        {**good, "format": "other/1"},
        {**good, "precision": "int4"},
        {**good, "io_precision": "int8"},
        {**good, "profile": {"image": {"min": [1, 3, 64, 64], "opt": [1, 3, 32, 32], "max": [1, 3, 128, 128]}}},
        {**good, "profile": {"frame": good["profile"]["image"]}},
        {**good, "kind": "engine"},  # an engine must say which TensorRT and GPU it was built for
    ]
    for data in broken:
        with pytest.raises(SidecarError):
            validate_sidecar(data)
    (tmp_path / "o" / "model.onnx.json").write_text("{not json")
    with pytest.raises(SidecarError, match="cannot read sidecar"):
        read_sidecar(tmp_path / "o" / "model.onnx")


@pytest.mark.parametrize("case", ["missing", "corrupt", "unknown-family", "min>max", "zero", "out-is-file", "engine",
                                  "parity-outside-profile", "fp16-io-without-fp16"])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(case, tmp_path):
    ckpt = _checkpoint(tmp_path, "lowlight_edgetest")
    out = tmp_path / "out"
    args = [str(ckpt), "--out", str(out), *SMALL]
    if case == "missing":
        args[0] = str(tmp_path / "nope.ckpt")
    elif case == "corrupt":
        (tmp_path / "bad.ckpt").write_bytes(ckpt.read_bytes()[:500])
        args[0] = str(tmp_path / "bad.ckpt")
    elif case == "unknown-family":
        payload = torch.load(ckpt, weights_only=True)
        payload["edgelight"]["name"] = "warp_edge"
        torch.save(payload, tmp_path / "warp.ckpt")
        args[0] = str(tmp_path / "warp.ckpt")
    elif case == "min>max":
        args += ["--min-shape", "256x256", "--max-shape", "128x128"]
    elif case == "zero":
        args += ["--min-shape", "0x32"]
    elif case == "out-is-file":
        out.write_text("keep me")
    elif case == "engine":
        args += ["--engine"]
    elif case == "parity-outside-profile":
        args += ["--parity-shapes", "1x256x256"]
    elif case == "fp16-io-without-fp16":
        args += ["--fp16-io"]
    proc = subprocess.run([sys.executable, "-m", "export", *args], capture_output=True, text=True)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "error" in lines[0], proc.stderr
    if case == "out-is-file":
        assert out.read_text() == "keep me"
    else:
        assert not out.exists()


def test_help_works_without_tensorrt_torch_or_onnx():
    code = ("import sys; from export.cli import build_parser; text = build_parser().format_help(); "
            "assert '--fp16' in text and '--triton-repo' in text; "
            "heavy = [m for m in ('tensorrt', 'torch', 'onnx', 'onnxruntime') if m in sys.modules]; "
            "assert not heavy, heavy")
    subprocess.run([sys.executable, "-c", code], check=True)
    proc = subprocess.run([sys.executable, "-m", "export", "--help"], capture_output=True, text=True)
    assert proc.returncode == 0 and "--engine" in proc.stdout and "Exit codes" in proc.stdout


def test_fp16_io_gives_half_inputs_and_outputs_everywhere(tmp_path):
    ckpt = _checkpoint(tmp_path, "unet_test")
    out, repo = tmp_path / "o", tmp_path / "triton"
    assert main([str(ckpt), "--fp16", "--fp16-io", "--out", str(out), "--triton-repo", str(repo), *SMALL]) == 0
    assert set(precision_summary(out / "model.fp16.onnx")["io"].values()) == {"float16"}
    assert set(precision_summary(out / "model.onnx")["io"].values()) == {"float"}  # the FP32 file keeps FP32
    assert read_sidecar(out / "model.fp16.onnx").io_precision == "fp16"
    session = ort.InferenceSession(str(out / "model.fp16.onnx"), providers=["CPUExecutionProvider"])
    feeds = sample_inputs(load_checkpoint(ckpt)[1], 1, 40, 56)
    (image,) = session.run(None, {k: v.astype(np.float16) for k, v in feeds.items()})
    assert image.dtype == np.float16 and image.shape == (1, 3, 40, 56)
    assert "data_type: TYPE_FP16" in (repo / "unet_test_onnx" / "config.pbtxt").read_text()


def test_ibr_export_ships_the_capture_average_next_to_the_model(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    _checkpoint(run, "ibr_test").rename(run / "best.ckpt")
    average = np.random.default_rng(0).uniform(0, 2, (20, 24, 3)).astype(np.float32)
    np.save(run / "average.npy", average)
    assert main([str(run), *SMALL]) == 0
    assert read_sidecar(run / "export" / "model.onnx").assets == {"average": "average.npy"}
    np.testing.assert_array_equal(np.load(run / "export" / "average.npy"), average)


def test_a_new_export_replaces_the_whole_set_of_an_earlier_one(tmp_path):
    ckpt = _checkpoint(tmp_path, "unet_test")
    out = tmp_path / "o"
    assert main([str(ckpt), "--fp16", "--out", str(out), *SMALL]) == 0
    assert (out / "model.fp16.onnx").is_file()
    assert main([str(ckpt), "--out", str(out), *SMALL]) == 0  # FP32 only this time
    assert (out / "model.onnx").is_file() and not (out / "model.fp16.onnx").exists()
    assert not (out / "model.fp16.onnx.json").exists()


@pytest.mark.parametrize("opset", ["17", "99"])
def test_opsets_the_exporter_cannot_write_are_refused(opset, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "export", str(_checkpoint(tmp_path, "unet_test")), "--opset", opset,
                           "--out", str(tmp_path / "o")], capture_output=True, text=True)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1 and not (tmp_path / "o").exists()
