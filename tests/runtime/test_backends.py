"""The backend registry: every registered backend is reachable by suffix, folder and CLI choice; options are
one vocabulary and an option a backend does not take is refused with one line."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from runtime import load
from runtime.backends import OPTIONS, Backend, backend_for_file, get_backend, list_backends, pick_file, register_backend
from runtime.cli import build_parser
from runtime.core.errors import ModelError


@pytest.fixture
def export(exported_lowlight):
    return exported_lowlight


@pytest.mark.parametrize("name", list_backends())
def test_each_backend_is_declared_once_and_found_by_its_suffixes(name, tmp_path):
    backend = get_backend(name)
    assert backend.suffixes and set(backend.options) <= set(OPTIONS)
    for suffix in backend.suffixes:
        assert backend_for_file(tmp_path / f"model{suffix.upper()}") is backend
    with pytest.raises(ValueError, match="already registered"):
        register_backend(backend)
    reason = backend.unavailable()
    assert reason is None or (isinstance(reason, str) and reason)


def test_cli_backend_choices_come_from_the_registry():
    enhance = build_parser()._subparsers._group_actions[0].choices["enhance"]
    choices = next(a.choices for a in enhance._actions if a.dest == "backend")
    assert list(choices) == ["auto", *list_backends()]


def test_a_backend_must_declare_known_options_and_capabilities():
    with pytest.raises(ValueError, match="unknown options or capabilities: warp_speed"):
        Backend("x", object, (".x",), "an .x file", frozenset({"warp_speed"}), frozenset(), lambda: None,
                lambda folder: None)


@pytest.mark.parametrize("name", [n for n in list_backends() if get_backend(n).unavailable() is None])
def test_every_backend_that_runs_here_runs_the_same_model(name, export):
    folder = export if name == "torch" else export / "export"
    path = pick_file(folder, name)
    frame = np.random.default_rng(0).random((1, 3, 48, 64), dtype=np.float32)
    with load(path, name, threads=1) as runner:
        assert runner.backend == name and runner.sidecar.task == "enhance"
        out = runner.infer({"image": frame})[runner.contract["outputs"][0]["name"]]
    with load(export / "best.ckpt", device="cpu") as reference:
        expected = reference.infer({"image": frame})["enhanced"]
    assert np.abs(out - expected).max() < (1e-2 if "fp16" in path.name else 1e-4)


def test_options_a_backend_does_not_take_are_refused(export):
    with pytest.raises(ModelError, match=r"the onnxruntime backend \(model.onnx\) does not take cuda_graphs; "
                                         r"it takes cuda_lib, device"):
        load(export / "export" / "model.onnx", cuda_graphs=True)
    with pytest.raises(ModelError, match="does not take providers"):
        load(export / "best.ckpt", providers=("cpu",))
    with pytest.raises(ModelError, match="device 'gpu7': expected auto, cpu, cuda or cuda:N"):
        load(export / "export" / "model.onnx", device="gpu7")
    load(export / "export" / "model.onnx", threads=None, fp16=None)  # None means "not given"


def test_a_folder_picks_by_the_stated_rule(export, tmp_path):
    assert pick_file(export) == export / "best.ckpt"  # a run folder: its checkpoint
    assert pick_file(export / "export") == export / "export" / "model.onnx"  # no GPU provider here: FP32
    assert pick_file(export / "export", "onnxruntime").name == "model.onnx"
    with pytest.raises(ModelError, match="holds no model for the tensorrt backend"):
        pick_file(export / "export", "tensorrt")
    with pytest.raises(ModelError, match="holds no model"):
        pick_file(tmp_path)


def test_an_unknown_option_is_one_line_on_the_command_line(export, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "runtime", "enhance", "--model", str(export / "export"),
                           "--input", str(tmp_path / "missing.mp4"), "--cuda-graphs"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "python -m runtime: error: the onnxruntime backend (model.onnx) does not take cuda_graphs; "
        "it takes cuda_lib, device, optimization, optimized_cache, providers, spinning, stream, threads"]
