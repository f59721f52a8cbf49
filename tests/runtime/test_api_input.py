"""The Python API checks its input: Pipeline.process converts or refuses frames, runner.infer checks its feeds."""

from __future__ import annotations

import re

import numpy as np
import pytest

from runtime import Pipeline, load
from runtime.core.color import as_bgr8
from runtime.core.errors import ModelError, UserError
from runtime.core.sidecar import Sidecar, make_profile
from runtime.runners.base import Runner
from runtime.tasks import EnhanceTask, fit_frame

pytest.importorskip("onnxruntime")

EXPECTED = "expected a uint8 (or uint16) BGR frame of shape HxWx3"


@pytest.fixture(scope="module")
def runner(exported_lowlight):
    """The ONNX Runtime runner of a tiny low-light model (profile 32x32 .. 128x128)."""
    with load(exported_lowlight / "export" / "model.onnx", threads=1) as active:
        yield active


@pytest.fixture
def pipeline(runner):
    return Pipeline(runner, EnhanceTask())


def _frame(h: int = 40, w: int = 56, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


# -- frames -------------------------------------------------------------------------------------------------------


def test_a_uint8_bgr_frame_passes_unchanged_and_comes_back_at_its_size(pipeline):
    frame = _frame()
    assert as_bgr8(frame) is frame
    view = frame[:, ::-1]
    assert as_bgr8(view) is view
    out = pipeline.process(frame)
    assert out.dtype == np.uint8 and out.shape == frame.shape


def test_grey_frames_give_the_result_of_their_bgr_version(pipeline):
    grey = _frame()[..., 1].copy()
    expected = pipeline.process(np.dstack([grey] * 3))
    np.testing.assert_array_equal(pipeline.process(grey), expected)
    np.testing.assert_array_equal(pipeline.process(grey[..., None]), expected)


def test_bgra_frames_drop_their_alpha(pipeline):
    frame = _frame()
    alpha = np.random.default_rng(1).integers(0, 256, frame.shape[:2], dtype=np.uint8)
    np.testing.assert_array_equal(pipeline.process(np.dstack([frame, alpha])), pipeline.process(frame))


def test_uint16_frames_are_scaled_to_8_bits(pipeline):
    frame = _frame()
    np.testing.assert_array_equal(pipeline.process(frame.astype(np.uint16) * 257), pipeline.process(frame))
    grey16 = frame[..., 0].astype(np.uint16) * 257
    np.testing.assert_array_equal(pipeline.process(grey16), pipeline.process(np.dstack([frame[..., 0]] * 3)))
    levels = np.array([[0, 128, 129, 385, 65535]], np.uint16)
    assert as_bgr8(levels)[0, :, 0].tolist() == [0, 0, 1, 1, 255]  # round(value / 257)


def test_a_float_frame_is_refused_with_what_is_expected(pipeline):
    frame = np.zeros((720, 1280, 3), np.float32)
    with pytest.raises(ValueError) as info:
        pipeline.process(frame)
    message = str(info.value)
    assert "float32" in message and "uint8" in message and "(720, 1280, 3)" in message
    assert message == (f"{EXPECTED} (grey HxW and BGRA HxWx4 are converted); got float32 (720, 1280, 3): scale "
                       "float images to 0..255 and convert with frame.astype(np.uint8)")
    with pytest.raises(ValueError, match="got float64"):
        pipeline.process(frame[:40, :40].astype(np.float64))


@pytest.mark.parametrize("frame", [np.zeros((40, 40, 3), bool), np.zeros((40, 40, 3), np.int64),
                                   np.zeros((40, 40, 3), np.complex64), np.zeros((40, 40, 3), np.int8),
                                   np.zeros((40, 40, 3), object)],
                         ids=["bool", "int64", "complex64", "int8", "object"])
def test_other_dtypes_are_refused(pipeline, frame):
    with pytest.raises(ValueError, match=f"{re.escape(EXPECTED)}.*; got {frame.dtype} \\(40, 40, 3\\)"):
        pipeline.process(frame)


@pytest.mark.parametrize("frame", [np.zeros((0, 0, 3), np.uint8), np.zeros((0, 40), np.uint8),
                                   np.zeros((40, 0, 3), np.uint16), np.zeros((40, 40, 2), np.uint8),
                                   np.zeros((40, 40, 5), np.uint8), np.zeros((1, 40, 40, 3), np.uint8),
                                   np.zeros(40, np.uint8), np.zeros((), np.uint8)],
                         ids=["0x0", "0xW-grey", "Hx0-16bit", "HxWx2", "HxWx5", "4-D", "1-D", "0-D"])
def test_empty_frames_and_other_shapes_are_refused(pipeline, frame):
    with pytest.raises(ValueError, match=f"{re.escape(EXPECTED)}.*; got {re.escape(f'{frame.dtype} {frame.shape}')}"):
        pipeline.process(frame)


@pytest.mark.parametrize("frame", [None, [[[0, 0, 0]]], "frame.png"], ids=["None", "list", "str"])
def test_a_frame_that_is_not_an_array_is_refused(pipeline, frame):
    with pytest.raises(ValueError, match=f"{re.escape(EXPECTED)}.*; got {type(frame).__name__}"):
        pipeline.process(frame)


@pytest.mark.parametrize("size", [(1, 1), (2, 2), (2, 3), (1, 300), (300, 1)])
def test_tiny_and_thin_frames_work_at_their_own_size(pipeline, size):
    frame = _frame(*size)
    out = pipeline.process(frame)
    assert out.dtype == np.uint8 and out.shape == frame.shape
    assert pipeline.process(frame[..., 0]).shape == frame.shape  # grey too


def test_fit_of_an_empty_size_is_a_user_error():
    for size in ((0, 0), (0, 5), (5, 0)):
        with pytest.raises(UserError, match=f"a {size[0]}x{size[1]} frame is empty"):
            fit_frame(size, (32, 32), (128, 128))
    fit = fit_frame((1, 1), (32, 32), (128, 128))
    assert (fit.scaled, fit.padded) == ((1, 1), (32, 32))
    tiny = _frame(1, 1)
    assert fit.apply(tiny).shape == (32, 32, 3)
    np.testing.assert_array_equal(fit.restore(fit.apply(tiny)), tiny)


def test_non_contiguous_frames_work(pipeline):
    frame = _frame(48, 64)
    for view in (frame[:, ::-1], frame[::-1], frame[::2, ::2], frame[..., ::-1], frame[4:40, 8:60]):
        assert not view.flags.c_contiguous
        np.testing.assert_array_equal(pipeline.process(view), pipeline.process(np.ascontiguousarray(view)))
    bgra = np.dstack([frame, frame[..., :1]])[:, ::-1]
    np.testing.assert_array_equal(pipeline.process(bgra), pipeline.process(np.ascontiguousarray(frame[:, ::-1])))


# -- runner.infer ----------------------------------------------------------------------------------------------------


def _image(*shape: int, dtype=np.float32) -> np.ndarray:
    return np.full(shape, 0.5, dtype)


def test_infer_takes_float_arrays_of_the_contract(runner):
    out = runner.infer({"image": _image(1, 3, 48, 64)})
    assert out[runner.contract["outputs"][0]["name"]].shape == (1, 3, 48, 64)
    for dtype in (np.float16, np.float64):  # converted by the runner
        assert runner.infer({"image": _image(1, 3, 32, 32, dtype=dtype)})


@pytest.mark.parametrize("feeds, pattern", [
    ({}, r"no array for input 'image'; model.onnx takes image$"),
    ({"picture": _image(1, 3, 32, 32)}, r"no array for input 'image'; model.onnx takes image$"),
    ({"image": _image(1, 3, 32, 32), "light": _image(1, 3)}, r"model.onnx has no input 'light'; it takes image$"),
    ({"image": _image(3, 32, 32)}, r"input 'image' of model.onnx takes float32 of shape N x 3 x H x W; got float32 "
                                   r"\(3, 32, 32\)$"),
    ({"image": _image(32, 32, 3)}, r"input 'image' .* got float32 \(32, 32, 3\) \(runtime.core.color.frame_to_tensor "
                                   r"turns a uint8 HxWx3 BGR frame into 1x3xHxW\)"),
    ({"image": _image(1, 1, 3, 32, 32)}, r"input 'image' .*; got float32 \(1, 1, 3, 32, 32\)$"),
    ({"image": _image(1, 4, 32, 32)}, r"input 'image' of model.onnx takes float32 of shape N x 3 x H x W; got float32 "
                                      r"\(1, 4, 32, 32\)$"),
    ({"image": _image(0, 3, 32, 32)}, r"input 'image' .*; got float32 \(0, 3, 32, 32\) \(an empty array\)"),
    ({"image": _image(1, 3, 0, 32)}, r"input 'image' .*; got float32 \(1, 3, 0, 32\) \(an empty array\)"),
    ({"image": _image(1, 3, 32, 32, dtype=np.uint8)}, (r"input 'image' of model.onnx takes float32 of shape N x 3 x H x W "
                                                       r"with values in 0..1 \(float16 and float64 are converted\); "
                                                       r"got uint8 \(1, 3, 32, 32\): pass array.astype\(np.float32\) "
                                                       r"scaled to 0..1$")),
    ({"image": _image(1, 3, 32, 32, dtype=np.int64)}, r"input 'image' .*; got int64"),
    ({"image": np.zeros((1, 3, 32, 32), bool)}, r"input 'image' .*; got bool"),
    ({"image": [[[[0.5]]]]}, r"input 'image' of model.onnx takes a numpy float32 array .*; got list$"),
], ids=["empty", "misnamed", "extra", "rank-3", "HxWx3", "rank-5", "channels", "batch-0", "height-0", "uint8", "int64",
        "bool", "list"])
def test_infer_refuses_feeds_outside_the_contract(runner, feeds, pattern):
    with pytest.raises(ModelError, match=pattern) as info:
        runner.infer(feeds)
    assert isinstance(info.value, ValueError)


def test_infer_needs_a_dict(runner):
    with pytest.raises(ValueError, match="model.onnx takes a dict of arrays named image; got ndarray"):
        runner.infer(_image(1, 3, 32, 32))


class _Recorder(Runner):
    """A runner with an image and a light input that records the feeds it is given."""

    backend = "test"

    def __init__(self) -> None:
        contract = {"inputs": [{"name": "image", "channels": 3, "range": [0.0, 1.0]},
                               {"name": "light", "shape": ["N", 3], "range": [-1.0, 1.0]}],
                    "outputs": [{"name": "relit", "channels": 3}]}
        super().__init__(Sidecar(artefact="relight.onnx", kind="onnx", name="recorder", family="relight",
                                 preset="test", config={}, contract=contract, task="relight",
                                 profile=make_profile(contract, (16, 16), (32, 32), (64, 64), 4)))
        self.calls = 0

    def activate_impl(self):
        pass

    def infer_impl(self, feeds):
        self.calls += 1
        return {"relit": feeds["image"]}

    def deactivate_impl(self):
        pass

    def io_metadata(self):
        return [], []


def test_vector_inputs_are_checked_too():
    with _Recorder() as runner:
        runner.infer({"image": _image(2, 3, 16, 16), "light": _image(2, 3)})
        for light, got in ((_image(3), r"\(3,\)"), (_image(1, 27), r"\(1, 27\)"), (_image(1, 1, 3), r"\(1, 1, 3\)")):
            with pytest.raises(ModelError, match=f"input 'light' of relight.onnx takes float32 of shape N x 3; got "
                                                 f"float32 {got}$"):
                runner.infer({"image": _image(1, 3, 16, 16), "light": light})
        with pytest.raises(ModelError, match=r"input 'light' .* with values in -1..1 .*; got int32 \(1, 3\)"):
            runner.infer({"image": _image(1, 3, 16, 16), "light": np.zeros((1, 3), np.int32)})
        with pytest.raises(ModelError, match="no array for input 'light'; relight.onnx takes image, light$"):
            runner.infer({"image": _image(1, 3, 16, 16)})
        assert runner.calls == 1  # refused feeds never reach the backend

