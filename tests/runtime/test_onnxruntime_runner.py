"""The ONNX Runtime runner's CPU session: its options reach ONNX Runtime, and the optimised model is kept,
keyed by content, and rebuilt (with one warning) when its cache entry is damaged."""

from __future__ import annotations

import hashlib
import logging
import shutil

import numpy as np
import pytest

ort = pytest.importorskip("onnxruntime")

from runtime.cli import _runner, build_parser  # noqa: E402
from runtime.core.errors import ModelError  # noqa: E402
from runtime.core.sidecar import read_sidecar  # noqa: E402
from runtime.runners.onnxruntime import DEFAULT_SPINNING, OnnxRuntimeRunner, optimized_cache_dir  # noqa: E402

FRAME = {"image": np.random.default_rng(0).random((1, 3, 48, 64), dtype=np.float32)}


@pytest.fixture
def model(exported_lowlight, tmp_path, monkeypatch):
    """A copy of a tiny exported ``model.onnx`` (with its sidecar) and an empty cache of optimised models."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    folder = tmp_path / "export"
    folder.mkdir()
    for name in ("model.onnx", "model.onnx.json"):
        shutil.copy2(exported_lowlight / "export" / name, folder / name)
    return folder / "model.onnx"


@pytest.fixture
def sessions(monkeypatch):
    """Every ``onnxruntime.InferenceSession`` created: (model path, SessionOptions)."""
    made = []
    real = ort.InferenceSession

    def record(path, options=None, **kwargs):
        made.append((str(path), options))
        return real(path, options, **kwargs)

    monkeypatch.setattr(ort, "InferenceSession", record)
    return made


def _run(path, **options) -> tuple[OnnxRuntimeRunner, np.ndarray]:
    with OnnxRuntimeRunner(path, device="cpu", **options) as runner:
        return runner, runner.infer(FRAME)["enhanced"]


def test_the_first_start_keeps_the_optimised_model_and_the_next_start_loads_it(model, sessions):
    first, expected = _run(model)
    assert not first.optimized_from_cache
    entry = first.optimized_path
    assert entry.is_file() and entry.parent == optimized_cache_dir() and entry.name.startswith("model.ort-all-")
    assert sorted(p.name for p in model.parent.iterdir()) == ["model.onnx", "model.onnx.json"]  # the export untouched
    assert [p.name for p in optimized_cache_dir().iterdir()] == [entry.name]  # no temporary left

    second, out = _run(model)
    assert second.optimized_from_cache and second.optimized_path == entry
    np.testing.assert_allclose(out, expected, rtol=0, atol=1e-6)
    (path, options), = sessions[1:]
    assert path == str(entry) and options.graph_optimization_level == ort.GraphOptimizationLevel.ORT_DISABLE_ALL

    _, plain = _run(model, optimized_cache=False)  # what ONNX Runtime computes without the cache
    np.testing.assert_allclose(out, plain, rtol=0, atol=1e-6)


def test_a_changed_model_is_not_served_the_old_optimised_model(model):
    onnx = pytest.importorskip("onnx")
    from onnx import numpy_helper

    first, before = _run(model)
    proto = onnx.load(str(model))
    weight = next(t for t in proto.graph.initializer if numpy_helper.to_array(t).ndim == 4)  # a convolution's
    weight.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(weight) * 0.5, weight.name))
    onnx.save(proto, str(model))
    sidecar = read_sidecar(model, verify=False)

    changed, after = _run(model, sidecar=sidecar)
    assert not changed.optimized_from_cache and changed.optimized_path != first.optimized_path
    assert np.abs(after - before).max() > 1e-3  # the new weights run, not the kept graph of the old ones
    _, plain = _run(model, sidecar=sidecar, optimized_cache=False)
    np.testing.assert_allclose(after, plain, rtol=0, atol=1e-6)
    assert len(list(optimized_cache_dir().glob("*.onnx"))) == 2


@pytest.mark.parametrize("damage", ["overwritten", "unreadable"])
def test_a_damaged_cache_entry_is_rebuilt_with_one_warning(model, caplog, damage):
    first, expected = _run(model)
    entry = first.optimized_path
    if damage == "overwritten":  # its bytes no longer match the digest in its name
        entry.write_bytes(entry.read_bytes()[: entry.stat().st_size // 2])
    else:  # a file that matches its name but is no model
        junk = b"not an onnx model"
        entry.unlink()
        entry = entry.with_name(f"{entry.stem.rsplit('-', 1)[0]}-{hashlib.sha256(junk).hexdigest()[:16]}.onnx")
        entry.write_bytes(junk)

    with caplog.at_level(logging.WARNING, logger="runtime"):
        rebuilt, out = _run(model)
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "damaged" in warnings[0].getMessage() and entry.name in warnings[0].getMessage()
    assert not rebuilt.optimized_from_cache and rebuilt.optimized_path.is_file()
    np.testing.assert_allclose(out, expected, rtol=0, atol=1e-6)

    caplog.clear()
    again, _ = _run(model)
    assert again.optimized_from_cache and not caplog.records


def test_the_options_reach_the_session(model, sessions):
    _run(model, threads=1, spinning="off", optimization="basic")
    (path, options), = sessions
    assert path == str(model) and options.intra_op_num_threads == 1
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    assert options.graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    assert ".ort-basic-" in options.optimized_model_filepath  # written under a temporary name, then renamed

    _run(model, threads=1, spinning="off", optimization="basic")
    cached = sessions[1][1]
    assert cached.intra_op_num_threads == 1 and cached.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    assert cached.graph_optimization_level == ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    assert cached.optimized_model_filepath == ""

    _run(model, spinning="on", optimized_cache=False)
    on = sessions[2][1]
    assert on.get_session_config_entry("session.intra_op.allow_spinning") == "1"
    assert on.graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_ALL and on.optimized_model_filepath == ""
    with pytest.raises(RuntimeError):  # not set: ONNX Runtime's threads may spin on after a run
        on.get_session_config_entry("session.force_spinning_stop")

    _run(model, spinning="run", optimized_cache=False)
    run = sessions[3][1]
    assert run.get_session_config_entry("session.intra_op.allow_spinning") == "1"
    assert run.get_session_config_entry("session.force_spinning_stop") == "1"


def test_by_default_threads_spin_only_while_a_frame_runs(model, sessions):
    """ONNX Runtime's own default keeps idle threads spinning for tens of milliseconds after each run, which takes
    the cores the pipeline's decode and encode threads need on a small machine; spinning only within a run keeps
    the speed of spinning between a frame's operators (benchmarks/RESULTS.md)."""
    runner, _ = _run(model)
    options = sessions[0][1]
    assert runner.spinning == DEFAULT_SPINNING == "run"
    assert options.get_session_config_entry("session.force_spinning_stop") == "1"


def test_without_a_writable_cache_the_model_still_runs(model, tmp_path, monkeypatch, caplog):
    (tmp_path / "file").write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "file"))  # the cache folder cannot be made
    with caplog.at_level(logging.WARNING, logger="runtime"):
        runner, out = _run(model)
    assert not runner.optimized_from_cache and runner.optimized_path is None and not caplog.records
    assert np.isfinite(out).all()


def test_the_cli_passes_the_options_and_refuses_them_for_other_backends(model, exported_lowlight):
    args = build_parser().parse_args(["enhance", "--model", str(model), "--input", "clip.mp4", "--spinning", "off",
                                      "--optimization", "extended", "--no-optimized-cache", "--threads", "1"])
    runner = _runner(args)
    assert (runner.spinning, runner.optimization, runner.optimized_cache, runner.threads) == ("off", "extended",
                                                                                             False, 1)
    args = build_parser().parse_args(["enhance", "--model", str(exported_lowlight / "best.ckpt"), "--input",
                                      "clip.mp4", "--spinning", "off"])
    with pytest.raises(ModelError, match="does not take spinning"):
        _runner(args)


@pytest.mark.parametrize("options, message", [({"spinning": "sometimes"}, "spinning 'sometimes': expected on, run, off"),
                                              ({"optimization": "max"}, "optimization 'max': expected disable, basic")])
def test_bad_option_values_are_refused_before_activation(model, options, message):
    with pytest.raises(ModelError, match=message):
        OnnxRuntimeRunner(model, device="cpu", **options)
