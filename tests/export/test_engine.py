"""The TensorRT engine builder: cache keys, profiles, the engine and timing caches, and real engines on a GPU."""

from __future__ import annotations

import json
import re
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from export.engine import EngineError, Profile, build_engine, cache_key, unavailable_reason

PROFILE = Profile({"image": ((1, 3, 16, 16), (1, 3, 64, 64), (1, 3, 256, 256))})
OPTIONS = {"workspace_gb": 4.0, "version_compatible": False, "exclude_lean_runtime": False,
           "hardware_compatible": False}


# --- CPU ------------------------------------------------------------------------------------------------------

def test_cache_key_changes_with_every_component_and_only_then():
    base = ("ab" * 32, "10.13.0.35", "8.9", PROFILE, OPTIONS)
    l4 = {"device_name": "NVIDIA L4"}
    key = cache_key(*base, **l4)
    assert len(key) == 64 and int(key, 16) >= 0
    assert cache_key("ab" * 32, "10.13.0.35", "8.9", Profile.from_dict(PROFILE.to_dict()), dict(OPTIONS), **l4) == key
    assert cache_key(*base[:4], dict(reversed(OPTIONS.items())), **l4) == key  # option order does not matter
    changed = [
        ("cd" * 32, *base[1:]),
        (base[0], "11.0.0.1", *base[2:]),
        (*base[:2], "9.0", *base[3:]),
        (*base[:3], Profile({"image": ((1, 3, 16, 16), (1, 3, 64, 64), (1, 3, 512, 512))}), OPTIONS),
        (*base[:3], Profile({"frame": PROFILE.shapes["image"]}), OPTIONS),
    ] + [(*base[:4], {**OPTIONS, name: value}) for name, value in
         [("workspace_gb", 2.0), ("version_compatible", True), ("exclude_lean_runtime", True),
          ("hardware_compatible", True), ("new_option", 1)]]
    keys = {cache_key(*args, **l4) for args in changed}
    # GPUs of one compute capability (8.9: an L4, an RTX 4090, an L40S) get plans of their own.
    keys |= {cache_key(*base, device_name=name) for name in ("NVIDIA GeForce RTX 4090", "NVIDIA L40S")}
    assert len(keys) == len(changed) + 2 and key not in keys


def test_profile_round_trips_through_json():
    profile = Profile({"distances": ((1, 1, 8, 8), (2, 1, 64, 96), (4, 1, 128, 128)),
                       "albedo": ((1, 3, 8, 8), (2, 3, 64, 96), (4, 3, 128, 128))})
    data = json.loads(json.dumps(profile.to_dict()))
    assert data["albedo"] == {"min": [1, 3, 8, 8], "opt": [2, 3, 64, 96], "max": [4, 3, 128, 128]}
    assert Profile.from_dict(data) == profile


@pytest.mark.parametrize("shapes, message", [
    ({}, "at least one input"),
    ({"image": ((1, 3, 16), (1, 3, 64, 64), (1, 3, 256, 256))}, "rank"),
    ({"image": ((1, 3, 16, 16), (1, 3, 300, 64), (1, 3, 256, 256))}, "min <= opt <= max"),
])
def test_profile_rejects_inconsistent_shapes(shapes, message):
    with pytest.raises(ValueError, match=message):
        Profile(shapes)


def test_unavailable_reason_matches_this_machine():
    import torch

    reason = unavailable_reason()
    try:
        import tensorrt
        installed = hasattr(tensorrt, "Builder")
    except ImportError:
        installed = False
    assert (reason is None) == (installed and torch.cuda.is_available())
    if reason is not None:
        with pytest.raises(EngineError, match=re.escape(f"cannot build a TensorRT engine: {reason}")):
            build_engine("model.fp16.onnx", "model.fp16.engine", PROFILE)


def test_unavailable_reason_says_what_is_missing(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    assert "tensorrt package is not installed (pip install tensorrt" in unavailable_reason()
    monkeypatch.setitem(sys.modules, "tensorrt", types.ModuleType("tensorrt"))  # what tensorrt-stubs leaves
    assert "only its type stubs" in unavailable_reason()
    monkeypatch.setitem(sys.modules, "tensorrt", _fake_tensorrt())
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    assert "no CUDA GPU is visible" in unavailable_reason()


def _fake_tensorrt() -> types.ModuleType:
    """Just enough of TensorRT's builder API (its names are checked by test_tensorrt_api) to run build_engine here.

    The "ONNX file" is JSON naming the inputs (a list of names, each of shape -1 x 3 x -1 x -1, or a dict of
    shapes with -1 for dynamic sizes) and parser errors; the "plan" is JSON of what the builder was given.

    Its optimisation profiles check what TensorRT checks: ``set_shape`` raises RuntimeError (as TensorRT's
    Python binding does, whatever its docstring says) unless min <= opt <= max element-wise with one rank;
    ``add_optimization_profile`` returns -1 for a profile left inconsistent; and, as TensorRT can only do
    once it has the network, ``build_serialized_network`` returns None (after logging the error, here to
    ``trt.errors``) unless the first profile gives every dynamic input a shape of its rank that keeps its
    fixed sizes.
    """
    trt = types.ModuleType("tensorrt")
    trt.__version__, trt.builds, trt.errors = "10.99.0", 0, []
    trt.NetworkDefinitionCreationFlag = types.SimpleNamespace(STRONGLY_TYPED=1)
    trt.MemoryPoolType = types.SimpleNamespace(WORKSPACE="workspace")
    trt.BuilderFlag = types.SimpleNamespace(VERSION_COMPATIBLE="version_compatible",
                                            EXCLUDE_LEAN_RUNTIME="exclude_lean_runtime")
    trt.HardwareCompatibilityLevel = types.SimpleNamespace(AMPERE_PLUS="ampere_plus")
    trt.Dims = list

    class Logger:
        WARNING = 2

        def __init__(self, severity):
            pass

    class IProgressMonitor:
        pass

    class TimingCache(bytes):
        def serialize(self):
            return self + b"+"

    class Config:
        progress_monitor = hardware_compatibility_level = timing = None

        def __init__(self):
            self.flags, self.pools, self.profiles = [], {}, []

        def set_flag(self, flag):
            self.flags.append(flag)

        def set_memory_pool_limit(self, pool, size):
            self.pools[pool] = size

        def create_timing_cache(self, data):
            return TimingCache(data)

        def set_timing_cache(self, cache, ignore_mismatch):
            self.timing = cache
            return True

        def get_timing_cache(self):
            return self.timing

        def add_optimization_profile(self, profile):
            if not profile:
                return -1
            self.profiles.append(profile)
            return len(self.profiles) - 1

    class OptimizationProfile:
        SELECTORS = ("min", "opt", "max")

        def __init__(self):
            self.shapes: dict[str, dict[str, tuple]] = {}

        def _set_dimensions(self, name, selector, dims):
            """IOptimizationProfile::setDimensions: False on an inconsistency with what ``name`` already has."""
            dims = tuple(int(d) for d in dims)
            given = {**self.shapes.get(name, {}), selector: dims}
            if any(d < 0 for d in dims) or len({len(d) for d in given.values()}) > 1:
                return False
            ordered = [given[k] for k in self.SELECTORS if k in given]
            if any(a > b for low, high in zip(ordered, ordered[1:]) for a, b in zip(low, high)):
                return False
            self.shapes[name] = given
            return True

        def set_shape(self, input, min, opt, max):
            for selector, dims in zip(self.SELECTORS, (min, opt, max)):
                if not self._set_dimensions(input, selector, dims):
                    raise RuntimeError(f"Shape provided for {selector} is inconsistent with other shapes.")

        def __bool__(self):  # IOptimizationProfile::isValid: min, opt and max of every input it names
            return all(len(given) == 3 for given in self.shapes.values())

    class Network:
        def __init__(self):
            self.inputs: dict[str, tuple[int, ...]] = {}

        @property
        def num_inputs(self):
            return len(self.inputs)

        def get_input(self, index):
            name = list(self.inputs)[index]
            return types.SimpleNamespace(name=name, shape=self.inputs[name])

    class OnnxParser:
        def __init__(self, network, logger):
            self.network, self.errors = network, []

        def parse_from_file(self, path):
            data = json.loads(Path(path).read_text())
            inputs = data["inputs"]
            if isinstance(inputs, list):
                inputs = dict.fromkeys(inputs, (-1, 3, -1, -1))
            self.network.inputs = {name: tuple(shape) for name, shape in inputs.items()}
            self.errors = data.get("errors", [])
            return not self.errors

        @property
        def num_errors(self):
            return len(self.errors)

        def get_error(self, index):
            return self.errors[index]

    class Builder:
        def __init__(self, logger):
            pass

        def create_network(self, flags):
            return Network()

        def create_builder_config(self):
            return Config()

        def create_optimization_profile(self):
            return OptimizationProfile()

        def _profile_error(self, network, config):
            """What TensorRT reports when the first profile does not fit the network's inputs, or None."""
            dynamic = [name for name, shape in network.inputs.items() if -1 in shape]
            if dynamic and not config.profiles:
                return "Network has dynamic or shape inputs, but no optimization profile has been defined."
            for name in dynamic:
                shape, given = network.inputs[name], config.profiles[0].shapes.get(name)
                if given is None:
                    return f"{name}: dynamic input is missing dimensions in profile 0."
                if any(len(dims) != len(shape) for dims in given.values()):
                    return f"{name}: number of dimensions is {len(shape)} but profile 0 has {len(given['min'])}."
                if any(d != -1 and dims[i] != d for dims in given.values() for i, d in enumerate(shape)):
                    return f"{name}: profile 0 changes a fixed dimension of {shape}: {list(given.values())}."
            return None

        def build_serialized_network(self, network, config):
            if error := self._profile_error(network, config):
                trt.errors.append(f"IBuilder::buildSerializedNetwork: Error Code 4: API Usage Error ({error})")
                return None
            trt.builds += 1
            monitor = config.progress_monitor
            if monitor is not None:
                monitor.phase_start("Building engine", None, 2)
                monitor.phase_start("Timing graph nodes", "Building engine", 5)
                monitor.phase_start("Tactic", "Timing graph nodes", 9)
                assert monitor.step_complete("Tactic", 0) is True
                for phase in ("Tactic", "Timing graph nodes", "Building engine"):
                    monitor.phase_finish(phase)
            return json.dumps({"inputs": list(network.inputs), "flags": config.flags, "pools": config.pools,
                               "hardware": config.hardware_compatibility_level}).encode()

    trt.Logger, trt.IProgressMonitor, trt.OnnxParser, trt.Builder = Logger, IProgressMonitor, OnnxParser, Builder
    return trt


@pytest.fixture
def fake_gpu(monkeypatch):
    trt = _fake_tensorrt()
    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    monkeypatch.setattr("torch.cuda.is_available", lambda: True)
    monkeypatch.setattr("torch.cuda.get_device_capability", lambda device=None: (8, 6))
    monkeypatch.setattr("torch.cuda.get_device_name", lambda device=None: "NVIDIA RTX A6000")
    return trt


def test_build_engine_caches_plans_and_timings(fake_gpu, tmp_path):
    onnx_path = tmp_path / "model.fp16.onnx"
    onnx_path.write_text(json.dumps({"inputs": ["image"]}))
    timing, engines, lines = tmp_path / "timing.cache", tmp_path / "engines", []
    first = build_engine(onnx_path, tmp_path / "a.engine", PROFILE, timing_cache=timing, cache_dir=engines,
                         workspace_gb=1, hardware_compatible=True, log=lines.append)
    plan = json.loads((tmp_path / "a.engine").read_bytes())  # raw plan bytes, nothing prepended
    assert plan == {"inputs": ["image"], "flags": [], "pools": {"workspace": 1 << 30}, "hardware": "ampere_plus"}
    assert (first.reused, first.trt_version, first.compute_capability, first.device_name) == (
        False, "10.99.0", "8.6", "NVIDIA RTX A6000")
    assert first.size_bytes == (tmp_path / "a.engine").stat().st_size and first.profile == PROFILE.to_dict()
    assert (engines / f"{first.cache_key}.engine").read_bytes() == (tmp_path / "a.engine").read_bytes()
    assert timing.read_bytes() == b"+"
    progress = [line for line in lines if "step" in line]  # outer phases only, one line each
    assert progress == ["  Building engine (2 steps)", "    Timing graph nodes (5 steps)"]

    second = build_engine(onnx_path, tmp_path / "b.engine", PROFILE, timing_cache=timing, cache_dir=engines,
                          workspace_gb=1, hardware_compatible=True, log=lines.append)
    assert second.reused and second.cache_key == first.cache_key and fake_gpu.builds == 1
    assert (tmp_path / "b.engine").read_bytes() == (tmp_path / "a.engine").read_bytes()

    third = build_engine(onnx_path, tmp_path / "c.engine", PROFILE, timing_cache=timing, cache_dir=engines,
                         version_compatible=True, exclude_lean_runtime=True, progress=False, log=lines.append)
    assert not third.reused and third.cache_key != first.cache_key and fake_gpu.builds == 2
    assert json.loads((tmp_path / "c.engine").read_bytes())["flags"] == ["version_compatible", "exclude_lean_runtime"]
    assert timing.read_bytes() == b"++"  # the cache was read back and extended
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # no temporary files left


def test_build_engine_reports_parser_errors_and_profile_mismatches(fake_gpu, tmp_path):
    onnx_path = tmp_path / "model.onnx"
    onnx_path.write_text(json.dumps({"inputs": ["image"], "errors": ["node Conv_3: unsupported auto_pad"]}))
    with pytest.raises(EngineError, match="could not parse .*\n  node Conv_3: unsupported auto_pad"):
        build_engine(onnx_path, tmp_path / "m.engine", PROFILE, log=lambda line: None)
    onnx_path.write_text(json.dumps({"inputs": ["frame"]}))
    with pytest.raises(EngineError, match=r"shapes for \['image'\] but model.onnx has the inputs \['frame'\]"):
        build_engine(onnx_path, tmp_path / "m.engine", PROFILE, log=lambda line: None)
    with pytest.raises(EngineError, match="only applies to version-compatible"):
        build_engine(onnx_path, tmp_path / "m.engine", PROFILE, exclude_lean_runtime=True)
    assert not (tmp_path / "m.engine").exists()


def test_build_engine_reuses_plans_of_the_same_gpu_model_only(fake_gpu, tmp_path, monkeypatch):
    onnx_path = tmp_path / "model.fp16.onnx"
    onnx_path.write_text(json.dumps({"inputs": ["image"]}))
    lines: list[str] = []
    first = build_engine(onnx_path, tmp_path / "a.engine", PROFILE, cache_dir=tmp_path / "engines", log=lines.append)
    assert "for the NVIDIA RTX A6000 (compute capability 8.6)" in lines[0]
    monkeypatch.setattr("torch.cuda.get_device_name", lambda device=None: "NVIDIA A40")  # also 8.6
    second = build_engine(onnx_path, tmp_path / "b.engine", PROFILE, cache_dir=tmp_path / "engines", log=lines.append)
    assert not second.reused and second.cache_key != first.cache_key and fake_gpu.builds == 2
    assert (second.compute_capability, second.device_name) == ("8.6", "NVIDIA A40")


def test_build_engine_reports_a_profile_that_does_not_fit_the_network(fake_gpu, tmp_path):
    onnx_path = tmp_path / "model.onnx"
    onnx_path.write_text(json.dumps({"inputs": {"image": [-1, 3, -1, -1]}}))
    flat = Profile({"image": ((1, 3, 16), (1, 3, 64), (1, 3, 256))})  # consistent itself, but rank 3
    with pytest.raises(EngineError, match="TensorRT could not build an engine from .*model.onnx"):
        build_engine(onnx_path, tmp_path / "m.engine", flat, log=lambda line: None)
    assert "number of dimensions is 4 but profile 0 has 3" in fake_gpu.errors[-1]
    four = Profile({"image": ((1, 4, 16, 16), (1, 4, 64, 64), (1, 4, 256, 256))})  # 4 channels for 3
    with pytest.raises(EngineError, match="TensorRT could not build an engine"):
        build_engine(onnx_path, tmp_path / "m.engine", four, log=lambda line: None)
    assert "changes a fixed dimension" in fake_gpu.errors[-1]
    assert fake_gpu.builds == 0 and not (tmp_path / "m.engine").exists()
    build_engine(onnx_path, tmp_path / "m.engine", PROFILE, log=lambda line: None)  # the right profile builds
    assert fake_gpu.builds == 1 and len(fake_gpu.errors) == 2


def test_fake_builder_checks_profiles_as_tensorrt_does(fake_gpu):
    """The strictness of the fake builder, on its own: each check catches a profile TensorRT would refuse."""
    trt = fake_gpu
    builder = trt.Builder(trt.Logger(trt.Logger.WARNING))
    network, config = builder.create_network(1), builder.create_builder_config()
    network.inputs = {"image": (-1, 3, -1, -1), "light": (-1, 3), "mask": (1, 1, 8, 8)}
    bad = builder.create_optimization_profile()
    with pytest.raises(RuntimeError, match="Shape provided for opt is inconsistent with other shapes"):
        bad.set_shape("image", [1, 3, 16, 16], [1, 3, 8, 64], [1, 3, 256, 256])  # opt height below min
    with pytest.raises(RuntimeError, match="Shape provided for opt is inconsistent with other shapes"):
        bad.set_shape("light", [1, 3], [1, 3, 1], [1, 3])  # ranks differ
    assert config.add_optimization_profile(bad) == -1  # left with min shapes only
    missing = builder.create_optimization_profile()
    missing.set_shape("image", [1, 3, 16, 16], [1, 3, 64, 64], [1, 3, 256, 256])  # forgot light
    assert config.add_optimization_profile(missing) == 0
    assert builder.build_serialized_network(network, config) is None
    assert trt.errors[-1].endswith("(light: dynamic input is missing dimensions in profile 0.)")
    config = builder.create_builder_config()
    assert builder.build_serialized_network(network, config) is None
    assert "no optimization profile has been defined" in trt.errors[-1]
    complete = builder.create_optimization_profile()
    complete.set_shape("image", [1, 3, 16, 16], [1, 3, 64, 64], [1, 3, 256, 256])
    complete.set_shape("light", [1, 3], [1, 3], [4, 3])  # the static mask needs no shapes
    assert config.add_optimization_profile(complete) == 0
    assert builder.build_serialized_network(network, config) is not None and trt.builds == 1


# --- GPU with TensorRT ----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_onnx(tmp_path_factory) -> tuple[Path, Path]:
    """A small conv net as FP32 ONNX and as FP16 ONNX (FP32 inputs and outputs), with dynamic height and width."""
    from tests.tiny_onnx import tiny_conv_onnx

    paths = tiny_conv_onnx(tmp_path_factory.mktemp("onnx"))
    return paths["fp32"], paths["fp32io"]


@pytest.fixture
def tensorrt_gpu():
    """Skip unless TensorRT itself is installed: tensorrt-stubs alone leaves an importable, empty ``tensorrt``."""
    if reason := unavailable_reason():
        pytest.skip(f"needs_tensorrt: {reason}")


@pytest.mark.needs_tensorrt
def test_fp16_engine_builds_is_reused_and_matches_onnxruntime(tensorrt_gpu, tiny_onnx, tmp_path):
    import onnxruntime as ort
    import tensorrt as trt

    fp32, fp16 = tiny_onnx
    lines: list[str] = []
    kwargs = dict(timing_cache=tmp_path / "timing.cache", cache_dir=tmp_path / "engines", log=lines.append)
    first = build_engine(fp16, tmp_path / "a.engine", PROFILE, **kwargs)
    assert not first.reused and (tmp_path / "timing.cache").stat().st_size > 0
    assert any("step" in line for line in lines)  # the builder's phases were shown
    # The file is the bare plan: TensorRT's own runtime (and trtexec) loads it as it is.
    engine = trt.Runtime(trt.Logger(trt.Logger.WARNING)).deserialize_cuda_engine((tmp_path / "a.engine").read_bytes())
    assert engine is not None and engine.num_io_tensors == 2

    second = build_engine(fp16, tmp_path / "b.engine", PROFILE, **kwargs)
    assert second.reused and second.cache_key == first.cache_key and second.seconds < first.seconds
    assert (tmp_path / "b.engine").read_bytes() == (tmp_path / "a.engine").read_bytes()

    # Run through the runtime's TensorRT runner, as export's parity and users do.
    from runtime.core.errors import ModelError
    from runtime.core.sidecar import Sidecar, ShapeRange
    from runtime.runners.tensorrt import TensorRTRunner

    contract = {"inputs": [{"name": "image", "channels": 3}], "outputs": [{"name": "output", "channels": 3}]}
    sidecar = Sidecar(artefact="b.engine", kind="engine", name="tiny", family="lowlight", preset="test", config={},
                      contract=contract, task="enhance", precision="fp16",
                      profile={"image": ShapeRange(*PROFILE.shapes["image"])},
                      tensorrt={"version": second.trt_version, "compute_capability": second.compute_capability,
                                "cache_key": second.cache_key})
    reference = ort.InferenceSession(str(fp32), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    with TensorRTRunner(tmp_path / "b.engine", sidecar) as runner:
        for height, width in ((64, 64), (45, 200)):
            image = rng.random((1, 3, height, width), dtype=np.float32)
            got = runner.infer({"image": image})["output"]
            (expected,) = reference.run(None, {"image": image})
            assert got.dtype == np.float32 and got.shape == expected.shape
            np.testing.assert_allclose(got, expected, atol=5e-3, rtol=1e-2)
        with pytest.raises(ModelError, match="outside the engine's profile"):
            runner.infer({"image": np.zeros((1, 3, 300, 300), np.float32)})


@pytest.mark.needs_tensorrt
def test_timing_cache_is_read_back_on_a_rebuild(tensorrt_gpu, tiny_onnx, tmp_path):
    _, fp16 = tiny_onnx
    lines: list[str] = []
    for name in ("a", "b"):  # no engine cache: both build; the second reads the first's timings
        build = build_engine(fp16, tmp_path / f"{name}.engine", PROFILE, timing_cache=tmp_path / "timing.cache",
                             log=lines.append)
        assert not build.reused
    assert not any("does not match" in line for line in lines)
