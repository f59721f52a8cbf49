"""Overlapped GPU execution of uint8 video frames through any runner that computes on device buffers.

``CudaFrameExecutor`` keeps ``depth`` frames in flight. Each frame has a slot of its own (pinned host
buffers, device buffers for every model tensor, events), sized for the largest frame seen so far, and
goes through three streams ordered by events:

* upload stream: pinned uint8 frame (and extra inputs such as a light vector) -> device;
* compute stream: ``frame_to_tensor`` kernel -> the model (``runner.enqueue``) -> ``tensor_to_frame`` kernel;
* download stream: the uint8 result -> pinned host memory.

So the upload of frame k+1 and the download of frame k-1 overlap the inference of frame k. The stages
are timed with CUDA events (``timings``, seconds). The conversion kernels do what ``runtime.tasks``'
host conversion does, so frames match ``runner.infer`` with host conversion exactly.

Every runner whose ``executor_cuda()`` answers drives it the same way (``runtime.runners.base.Runner``:
``enqueue`` on device buffers in the compute stream's order): TensorRT engines, PyTorch on CUDA (FP16, CUDA
graphs) and ONNX Runtime's CUDA provider (I/O binding), and, on the CPU, any of them on the simulated CUDA
layer (``runtime.cuda.sim``) for dry runs. Where the conversion kernels cannot be compiled (no NVRTC), frames
are converted on the host and the float tensors travel instead, with one warning.

    with CudaFrameExecutor(runner, image_input="image", output="enhanced") as executor:
        for index, frame in enumerate(frames):
            for tag, out, _ in executor.submit(index, frame, {}):
                sink.write(out)
        for tag, out, _ in executor.flush():
            sink.write(out)
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from .core.errors import ModelError
from .cuda.base import Cuda, CudaError, DeviceBuffer, Event, HostBuffer, Stream
from .cuda.kernels import TENSOR_DTYPES, frame_to_tensor_reference, tensor_to_frame_reference
from .stats import LatencyHistogram

__all__ = ["CudaFrameExecutor", "Finished", "STAGES"]

log = logging.getLogger("runtime")

STAGES = ("upload", "preprocess", "infer", "postprocess", "download")
"""The stages ``CudaFrameExecutor.timings`` reports, in the order a frame goes through them."""

_EVENTS = ("upload_start", "upload_end", "compute_start", "preprocess_end", "infer_end", "postprocess_end",
           "download_start", "download_end")
_SPANS = {"upload": ("upload_start", "upload_end"), "preprocess": ("compute_start", "preprocess_end"),
          "infer": ("preprocess_end", "infer_end"), "postprocess": ("infer_end", "postprocess_end"),
          "download": ("download_start", "download_end")}
_FRAME, _RESULT = "frame:", "result:"  # the slot's buffers besides the model's tensors


@dataclass
class _Slot:
    """The buffers and events of one frame in flight; buffers grow with the frames."""

    device: dict[str, DeviceBuffer] = field(default_factory=dict)
    host: dict[str, HostBuffer] = field(default_factory=dict)
    events: dict[str, Event] = field(default_factory=dict)


@dataclass
class _Job:
    slot: int
    tag: object
    size: tuple[int, int]
    host_shapes: dict[str, tuple[int, ...]]


class Finished(NamedTuple):
    """A frame back from the executor."""

    tag: object
    """What ``submit`` was given with it."""
    frame: np.ndarray
    """The result, uint8 HxWx3 BGR."""
    outputs: dict[str, np.ndarray]
    """The frame's ``host_outputs`` (a light estimate, ...), copied back with it."""


def _kernel_dtype(dtype: np.dtype, what: str) -> str:
    for name, candidate in TENSOR_DTYPES.items():
        if np.dtype(dtype) == candidate:
            return name
    raise ModelError(f"{what} is {np.dtype(dtype)}; the GPU frame conversion takes float32 or float16 tensors")


def _image_hw(shape: tuple[int, ...], what: str) -> tuple[int, int]:
    if len(shape) != 4 or shape[1] != 3:
        raise ModelError(f"{what} has shape {tuple(shape)}; the GPU executor needs Nx3xHxW images")
    return int(shape[2]), int(shape[3])


def _fitted(buffers: dict, key: str, nbytes: int, make):
    """``buffers[key]``, replaced by ``make(nbytes)`` when missing or smaller than ``nbytes``."""
    buffer = buffers.get(key)
    if buffer is None or buffer.nbytes < nbytes:
        if buffer is not None:
            buffer.free()
            del buffers[key]
        buffers[key] = make(nbytes)
    return buffers[key]


def _nbytes(shape: tuple[int, ...], dtype: np.dtype) -> int:
    return int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize


class CudaFrameExecutor:
    """Runs uint8 HxWx3 BGR frames through an active runner on the GPU with ``depth`` frames in flight.

    Not thread-safe: call it from one thread. While frames are in flight the runner is busy on the
    executor's compute stream (a TensorRT runner's ``infer`` waits for it).

    Args:
        runner: a runner whose ``executor_cuda()`` answers (activated here if it is not yet active).
        image_input: the model input that takes the frame (1x3xHxW RGB in 0..1, FP32 or FP16).
        output: the model output that is the result frame (1x3xHxW RGB, FP32 or FP16).
        extra_inputs: the other model inputs, given per frame to ``submit`` (a light vector, ...).
        depth: frames in flight (at least 2): more hides more transfer time, at more latency and memory.
        srgb_out: encode the output from linear light to sRGB on the GPU.
        cuda: the CUDA layer; default: ``runner.executor_cuda()``.
        host_outputs: other outputs to copy back with each frame (small ones: a light estimate a task feeds to a
            later frame).

    Raises:
        ValueError: ``depth`` is below 2, the input names do not cover the model's inputs, or the runner
            computes on host arrays only.
        ModelError: the model's image input or output is not a 3-channel FP32/FP16 image.
    """

    def __init__(self, runner: Any, *, image_input: str, output: str, extra_inputs: tuple[str, ...] = (),
                 depth: int = 2, srgb_out: bool = False, cuda: Cuda | None = None,
                 host_outputs: tuple[str, ...] = ()) -> None:
        if depth < 2:
            raise ValueError(f"depth {depth}: the executor keeps at least 2 frames in flight")
        runner.activate()
        self.runner, self.depth, self.srgb_out = runner, int(depth), srgb_out
        self.image_input, self.output, self.extra_inputs = image_input, output, tuple(extra_inputs)
        found = cuda if cuda is not None else runner.executor_cuda()
        if found is None:
            raise ValueError(f"the {runner.backend} runner computes on host arrays here; the GPU executor needs one "
                             "on a GPU (or on the simulated CUDA layer)")
        self.cuda: Cuda = found
        inputs = {spec.name: spec for spec in runner.input_metadata()}
        outputs = {spec.name: spec for spec in runner.output_metadata()}
        if image_input not in inputs:
            raise ValueError(f"{image_input!r} is not an input of the model; its inputs are {sorted(inputs)}")
        if output not in outputs:
            raise ValueError(f"{output!r} is not an output of the model; its outputs are {sorted(outputs)}")
        named = {image_input, *self.extra_inputs}
        if unknown := sorted(named - set(inputs)):
            raise ValueError(f"{unknown} are not inputs of the model; its inputs are {sorted(inputs)}")
        if missing := sorted(set(inputs) - named):
            raise ValueError(f"the model also takes {missing}; name them in extra_inputs")
        self.host_outputs = tuple(host_outputs)
        if unknown := sorted(set(self.host_outputs) - (set(outputs) - {output})):
            raise ValueError(f"{unknown} are not other outputs of the model; its outputs are {sorted(outputs)}")
        self._in_dtype = _kernel_dtype(inputs[image_input].dtype, f"input {image_input!r}")
        self._out_dtype = _kernel_dtype(outputs[output].dtype, f"output {output!r}")
        self._dtypes = {name: np.dtype(spec.dtype) for name, spec in {**inputs, **outputs}.items()}
        low, _, high = (tuple(s) for s in runner.profile_shapes(image_input))
        if low[0] > 1:
            raise ModelError(f"input {image_input!r} takes batches of at least {low[0]}; the executor sends one frame")
        self._max_hw = _image_hw(high, f"input {image_input!r}")
        largest = {name: (1, *tuple(runner.profile_shapes(name)[2])[1:]) for name in inputs}
        _image_hw(runner.output_shapes(largest)[output], f"output {output!r}")
        self.timings: dict[str, LatencyHistogram] = {stage: LatencyHistogram() for stage in STAGES}
        """GPU seconds per finished frame and stage (``upload``, ``preprocess``, ``infer``, ``postprocess``,
        ``download``), measured with CUDA events, in constant memory: each stage is a histogram (exact count,
        sum, min and max) that reads like the list of its samples (``len``, iteration; see
        ``runtime.stats.LatencyHistogram``). With host conversion, preprocess and postprocess are empty."""
        self.host_conversion = False
        """Whether frames are converted on the host (the conversion kernels could not be loaded here)."""
        try:
            self.cuda.prepare_kernels()
        except CudaError as exc:
            self.host_conversion = True
            log.warning("the GPU frame conversion is unavailable (%s); converting frames on the CPU", exc)
        self._inflight: deque[_Job] = deque()
        self._ready: list[Finished] = []  # retired by a submit that then failed: handed back by the next call
        self._next = 0
        self._closed = False
        self._slots: list[_Slot] = []
        self._streams: list[Stream] = []
        try:
            for _ in range(3):
                self._streams.append(self.cuda.stream())
            self._upload, self._compute, self._download = self._streams
            for _ in range(self.depth):
                self._slots.append(_Slot(events={name: self.cuda.event(timing=True) for name in _EVENTS}))
        except BaseException:
            self._free()
            raise

    # -- frames ---------------------------------------------------------------------------------------------

    def submit(self, tag: object, image: np.ndarray, extras: dict[str, np.ndarray]) -> list[Finished]:
        """Queue one frame; return the finished frames (tag, frame, host outputs), oldest first.

        Blocks only when ``depth`` frames are already in flight, until the oldest is done.

        Args:
            tag: anything; handed back with the frame's result.
            image: uint8 HxWx3 BGR, already fitted to a size within the model's profile.
            extras: an array for each of ``extra_inputs`` (a light vector (1, 3) float32, ...).

        Returns:
            The frames finished so far, in submission order.

        Raises:
            ValueError: ``image`` is not uint8 HxWx3, or an extra input is missing.
            ModelError: the frame or an extra input is outside the model's profile. Frames that finished
                before the failure come back from the next ``submit`` or ``flush``.
        """
        if self._closed:
            raise RuntimeError("this CudaFrameExecutor is closed")
        image = np.asarray(image)
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"expected a uint8 HxWx3 BGR frame, got {image.dtype} {image.shape}")
        height, width = image.shape[:2]
        if height > self._max_hw[0] or width > self._max_hw[1]:
            raise ModelError(f"a {height}x{width} frame is larger than the model's profile allows "
                             f"({self._max_hw[0]}x{self._max_hw[1]}): fit it first, or rebuild with a larger "
                             "--max-shape")
        arrays = {}
        for name in self.extra_inputs:
            if name not in extras:
                raise ValueError(f"no array for the extra input {name!r}")
            arrays[name] = np.ascontiguousarray(extras[name], dtype=self._dtypes[name])
        done, self._ready = self._ready, []
        if len(self._inflight) >= self.depth:
            done.append(self._retire())
        index = self._next % self.depth
        try:
            size, host_shapes = self._queue(self._slots[index], np.ascontiguousarray(image), arrays)
        except BaseException:
            self._ready = done  # frames already finished are not lost with this one
            for stream in self._streams:  # nothing half-queued may touch the slot when it is used next
                stream.synchronize()
            raise
        self._next += 1
        self._inflight.append(_Job(index, tag, size, host_shapes))
        while self._inflight and self._slots[self._inflight[0].slot].events["download_end"].query():
            done.append(self._retire())
        return done

    def flush(self) -> list[Finished]:
        """Wait for every frame in flight; return them, oldest first."""
        done, self._ready = self._ready, []
        return done + [self._retire() for _ in range(len(self._inflight))]

    def _device(self, slot: _Slot, key: str, nbytes: int) -> DeviceBuffer:
        """The slot's device buffer ``key``, at least ``nbytes`` long (the slot is idle: it may be replaced)."""
        return _fitted(slot.device, key, nbytes, self.cuda.device_buffer)

    def _host(self, slot: _Slot, key: str, nbytes: int) -> HostBuffer:
        """The slot's pinned host buffer ``key``, at least ``nbytes`` long."""
        return _fitted(slot.host, key, nbytes, lambda size: self.cuda.host_buffer(max(size, 1), np.uint8))

    def _queue(self, slot: _Slot, image: np.ndarray,
               extras: dict[str, np.ndarray]) -> tuple[tuple[int, int], dict[str, tuple[int, ...]]]:
        """Queue upload, conversion, inference, conversion and download of one frame in ``slot``."""
        cuda, events, runner = self.cuda, slot.events, self.runner
        height, width = image.shape[:2]
        shapes = {self.image_input: (1, 3, height, width), **{name: array.shape for name, array in extras.items()}}
        out_shapes = {name: tuple(shape) for name, shape in runner.output_shapes(shapes).items()}
        out_h, out_w = _image_hw(out_shapes[self.output], f"output {self.output!r}")
        # The slot is free (its previous frame was retired), so its buffers can be resized and overwritten.
        tensors = {name: self._device(slot, name, _nbytes(shape, self._dtypes[name]))
                   for name, shape in {**shapes, **out_shapes}.items()}
        result_bytes = out_h * out_w * 3
        if self.host_conversion:
            upload = frame_to_tensor_reference(image, self._in_dtype)
            staged = {self.image_input: upload}
        else:
            upload = image
            staged = {_FRAME: image}
        staged.update(extras)
        pinned = {}
        for name, array in staged.items():
            pinned[name] = self._host(slot, name, array.nbytes)
            np.copyto(pinned[name].view(array.shape, array.dtype), array)

        events["upload_start"].record(self._upload)
        if not self.host_conversion:
            cuda.htod_async(self._device(slot, _FRAME, image.nbytes), pinned[_FRAME], self._upload,
                            nbytes=image.nbytes)
        for name, array in staged.items():
            if name != _FRAME:
                cuda.htod_async(tensors[name], pinned[name], self._upload, nbytes=array.nbytes)
        events["upload_end"].record(self._upload)

        compute = self._compute
        compute.wait(events["upload_end"])
        events["compute_start"].record(compute)
        if not self.host_conversion:
            cuda.frame_to_tensor(slot.device[_FRAME], tensors[self.image_input], height, width, compute,
                                 dtype=self._in_dtype)
        events["preprocess_end"].record(compute)
        produced = runner.enqueue(shapes, {name: buffer.ptr for name, buffer in tensors.items()}, compute)
        if tuple(produced[self.output]) != out_shapes[self.output]:
            raise ModelError(f"output {self.output!r} came out {tuple(produced[self.output])}, not the "
                             f"{out_shapes[self.output]} the runner announced")
        events["infer_end"].record(compute)
        if self.host_conversion:
            source, nbytes = tensors[self.output], _nbytes(out_shapes[self.output], self._dtypes[self.output])
        else:
            source, nbytes = self._device(slot, _RESULT, result_bytes), result_bytes
            cuda.tensor_to_frame(tensors[self.output], source, out_h, out_w, compute, dtype=self._out_dtype,
                                 srgb=self.srgb_out)
        events["postprocess_end"].record(compute)

        self._download.wait(events["postprocess_end"])
        events["download_start"].record(self._download)
        cuda.dtoh_async(self._host(slot, _RESULT, nbytes), source, self._download, nbytes=nbytes)
        host_shapes = {name: out_shapes[name] for name in self.host_outputs}
        for name, shape in host_shapes.items():
            size = _nbytes(shape, self._dtypes[name])
            cuda.dtoh_async(self._host(slot, name, size), tensors[name], self._download, nbytes=size)
        events["download_end"].record(self._download)
        return (out_h, out_w), host_shapes

    def _retire(self) -> Finished:
        """Wait for the oldest frame in flight; its result, with its stage times added to ``timings``."""
        job = self._inflight.popleft()
        slot = self._slots[job.slot]
        events = slot.events
        events["download_end"].synchronize()
        for stage, (start, end) in _SPANS.items():
            self.timings[stage].add(events[end].elapsed_ms(events[start]) / 1000.0)
        result = slot.host[_RESULT]
        outputs = {name: slot.host[name].view(shape, self._dtypes[name]).copy()
                   for name, shape in job.host_shapes.items()}
        if self.host_conversion:
            tensor = result.view((1, 3, *job.size), self._dtypes[self.output])
            return Finished(job.tag, tensor_to_frame_reference(tensor, srgb=self.srgb_out), outputs)
        return Finished(job.tag, result.view((*job.size, 3), np.uint8).copy(), outputs)

    # -- lifetime -------------------------------------------------------------------------------------------

    def close(self) -> None:
        """Wait for the GPU, then free every buffer, event and stream (frames still in flight are dropped)."""
        if self._closed:
            return
        self._closed = True
        try:
            for stream in self._streams:
                stream.synchronize()
        finally:
            self._free()

    def _free(self) -> None:
        for slot in self._slots:
            for host in slot.host.values():
                host.free()
            for device in slot.device.values():
                device.free()
            for event in slot.events.values():
                event.free()
        for stream in self._streams:
            stream.free()
        self._slots, self._streams = [], []
        self._inflight.clear()

    def __enter__(self) -> CudaFrameExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
