"""Overlapped GPU execution of uint8 video frames through a TensorRT runner.

``CudaFrameExecutor`` keeps ``depth`` frames in flight. Each frame has a slot of its own (pinned host
buffers, device buffers for every engine tensor, events), allocated once for the profile's largest
frame, and goes through three streams ordered by events:

* upload stream: pinned frame (and extra inputs such as a light vector) -> device;
* compute stream: ``frame_to_tensor`` kernel -> TensorRT (``runner.enqueue``) -> ``tensor_to_frame`` kernel;
* download stream: the uint8 result -> pinned host memory.

So the upload of frame k+1 and the download of frame k-1 overlap the inference of frame k. The stages
are timed with CUDA events (``timings``, seconds). The conversion kernels do what ``runtime.tasks``'
host conversion does, so frames match ``runner.infer`` with host conversion exactly.

    with CudaFrameExecutor(runner, image_input="image", output="enhanced") as executor:
        for index, frame in enumerate(frames):
            for tag, out in executor.submit(index, frame, {}):
                sink.write(out)
        for tag, out in executor.flush():
            sink.write(out)
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .cuda.base import Cuda, DeviceBuffer, Event, HostBuffer, Stream
from .cuda.kernels import TENSOR_DTYPES
from .core.errors import ModelError
from .stats import LatencyHistogram

__all__ = ["CudaFrameExecutor", "STAGES"]

STAGES = ("upload", "preprocess", "infer", "postprocess", "download")
"""The stages ``CudaFrameExecutor.timings`` reports, in the order a frame goes through them."""

_EVENTS = ("upload_start", "upload_end", "compute_start", "preprocess_end", "infer_end", "postprocess_end",
           "download_start", "download_end")
_SPANS = {"upload": ("upload_start", "upload_end"), "preprocess": ("compute_start", "preprocess_end"),
          "infer": ("preprocess_end", "infer_end"), "postprocess": ("infer_end", "postprocess_end"),
          "download": ("download_start", "download_end")}


@dataclass
class _Slot:
    """The buffers and events of one frame in flight."""

    frame_host: HostBuffer
    frame_device: DeviceBuffer
    result_device: DeviceBuffer
    result_host: HostBuffer
    tensors: dict[str, DeviceBuffer] = field(default_factory=dict)
    """Every engine input and output, at its largest shape."""
    extras_host: dict[str, HostBuffer] = field(default_factory=dict)
    events: dict[str, Event] = field(default_factory=dict)


@dataclass
class _Job:
    slot: int
    tag: object
    size: tuple[int, int]


def _kernel_dtype(dtype: np.dtype, what: str) -> str:
    for name, candidate in TENSOR_DTYPES.items():
        if np.dtype(dtype) == candidate:
            return name
    raise ModelError(f"{what} is {np.dtype(dtype)}; the GPU frame conversion takes float32 or float16 tensors")


def _image_hw(shape: tuple[int, ...], what: str) -> tuple[int, int]:
    if len(shape) != 4 or shape[1] != 3:
        raise ModelError(f"{what} has shape {shape}; the GPU executor needs Nx3xHxW images")
    return int(shape[2]), int(shape[3])


class CudaFrameExecutor:
    """Runs uint8 HxWx3 BGR frames through an active ``TensorRTRunner`` with ``depth`` frames in flight.

    Not thread-safe: call it from one thread. While frames are in flight the runner's execution
    context is busy on the executor's compute stream (the runner's ``infer`` waits for it).

    Args:
        runner: a TensorRT runner (activated here if it is not yet active).
        image_input: the engine input that takes the frame (1x3xHxW RGB in 0..1, FP32 or FP16).
        output: the engine output that is the result frame (1x3xHxW RGB, FP32 or FP16).
        extra_inputs: the other engine inputs, given per frame to ``submit`` (a light vector, ...).
        depth: frames in flight (at least 2): more hides more transfer time, at more latency and memory.
        srgb_out: encode the output from linear light to sRGB on the GPU.
        cuda: the CUDA layer; default: the runner's.

    Raises:
        ValueError: ``depth`` is below 2, or the input names do not cover the engine's inputs.
        ModelError: the engine's image input or output is not a 3-channel FP32/FP16 image.
    """

    def __init__(self, runner: Any, *, image_input: str, output: str, extra_inputs: tuple[str, ...] = (),
                 depth: int = 2, srgb_out: bool = False, cuda: Cuda | None = None) -> None:
        if depth < 2:
            raise ValueError(f"depth {depth}: the executor keeps at least 2 frames in flight")
        runner.activate()
        self.runner, self.depth, self.srgb_out = runner, int(depth), srgb_out
        self.image_input, self.output, self.extra_inputs = image_input, output, tuple(extra_inputs)
        found = cuda if cuda is not None else runner.cuda
        if found is None:
            raise ValueError("the runner has no CUDA layer; pass cuda=")
        self.cuda: Cuda = found
        inputs = {spec.name: spec for spec in runner.input_metadata()}
        outputs = {spec.name: spec for spec in runner.output_metadata()}
        if image_input not in inputs:
            raise ValueError(f"{image_input!r} is not an input of the engine; its inputs are {sorted(inputs)}")
        if output not in outputs:
            raise ValueError(f"{output!r} is not an output of the engine; its outputs are {sorted(outputs)}")
        named = {image_input, *self.extra_inputs}
        if unknown := sorted(named - set(inputs)):
            raise ValueError(f"{unknown} are not inputs of the engine; its inputs are {sorted(inputs)}")
        if missing := sorted(set(inputs) - named):
            raise ValueError(f"the engine also takes {missing}; name them in extra_inputs")
        self._in_dtype = _kernel_dtype(inputs[image_input].dtype, f"input {image_input!r}")
        self._out_dtype = _kernel_dtype(outputs[output].dtype, f"output {output!r}")
        self._dtypes = {name: np.dtype(spec.dtype) for name, spec in {**inputs, **outputs}.items()}
        low = runner.profile_shapes(image_input)[0]
        if low[0] > 1:
            raise ModelError(f"input {image_input!r} takes batches of at least {low[0]}; the executor sends one frame")
        self._max_hw = _image_hw(runner.max_shape(image_input), f"input {image_input!r}")
        out_hw = _image_hw(runner.max_shape(output), f"output {output!r}")
        self.timings: dict[str, LatencyHistogram] = {stage: LatencyHistogram() for stage in STAGES}
        """GPU seconds per finished frame and stage (``upload``, ``preprocess``, ``infer``, ``postprocess``,
        ``download``), measured with CUDA events, in constant memory: each stage is a histogram (exact count,
        sum, min and max) that reads like the list of its samples (``len``, iteration; see
        ``runtime.stats.LatencyHistogram``)."""
        self._inflight: deque[_Job] = deque()
        self._next = 0
        self._closed = False
        self._slots: list[_Slot] = []
        self._streams: list[Stream] = []
        gpu = self.cuda
        try:
            for _ in range(3):
                self._streams.append(gpu.stream())
            self._upload, self._compute, self._download = self._streams
            (max_h, max_w), (out_h, out_w) = self._max_hw, out_hw
            for _ in range(self.depth):
                slot = _Slot(frame_host=gpu.host_buffer((max_h, max_w, 3), np.uint8),
                             frame_device=gpu.device_buffer(max_h * max_w * 3),
                             result_device=gpu.device_buffer(out_h * out_w * 3),
                             result_host=gpu.host_buffer((out_h, out_w, 3), np.uint8))
                self._slots.append(slot)
                for name in (*inputs, *outputs):
                    nbytes = int(np.prod(runner.max_shape(name), dtype=np.int64)) * self._dtypes[name].itemsize
                    slot.tensors[name] = gpu.device_buffer(nbytes)
                for name in self.extra_inputs:
                    slot.extras_host[name] = gpu.host_buffer(runner.max_shape(name), self._dtypes[name])
                slot.events = {name: gpu.event(timing=True) for name in _EVENTS}
        except BaseException:
            self._free()
            raise

    # -- frames ---------------------------------------------------------------------------------------------

    def submit(self, tag: object, image: np.ndarray, extras: dict[str, np.ndarray]) -> list[tuple[object, np.ndarray]]:
        """Queue one frame; return the finished (tag, frame) pairs, oldest first.

        Blocks only when ``depth`` frames are already in flight, until the oldest is done.

        Args:
            tag: anything; handed back with the frame's result.
            image: uint8 HxWx3 BGR, already fitted to a size within the engine's profile.
            extras: an array for each of ``extra_inputs`` (a light vector (1, 3) float32, ...).

        Returns:
            The frames finished so far, as (tag, uint8 HxWx3 BGR) pairs in submission order.

        Raises:
            ValueError: ``image`` is not uint8 HxWx3, or an extra input is missing.
            ModelError: the frame or an extra input is larger than the engine's profile allows.
        """
        if self._closed:
            raise RuntimeError("this CudaFrameExecutor is closed")
        image = np.asarray(image)
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"expected a uint8 HxWx3 BGR frame, got {image.dtype} {image.shape}")
        height, width = image.shape[:2]
        if height > self._max_hw[0] or width > self._max_hw[1]:
            raise ModelError(f"a {height}x{width} frame is larger than the engine's profile allows "
                             f"({self._max_hw[0]}x{self._max_hw[1]}): fit it first, or rebuild with a larger "
                             "--max-shape")
        arrays = {}
        for name in self.extra_inputs:
            if name not in extras:
                raise ValueError(f"no array for the extra input {name!r}")
            array = np.ascontiguousarray(extras[name], dtype=self._dtypes[name])
            if array.nbytes > self._slots[0].extras_host[name].nbytes:
                raise ModelError(f"input {name!r} of shape {array.shape} is larger than the engine's profile allows "
                                 f"({self.runner.max_shape(name)})")
            arrays[name] = array
        done = []
        if len(self._inflight) >= self.depth:
            done.append(self._retire())
        index = self._next % self.depth
        try:
            size = self._queue(self._slots[index], np.ascontiguousarray(image), arrays)
        except BaseException:
            for stream in self._streams:  # nothing half-queued may touch the slot when it is used next
                stream.synchronize()
            raise
        self._next += 1
        self._inflight.append(_Job(index, tag, size))
        while self._inflight and self._slots[self._inflight[0].slot].events["download_end"].query():
            done.append(self._retire())
        return done

    def flush(self) -> list[tuple[object, np.ndarray]]:
        """Wait for every frame in flight; return them as (tag, frame) pairs, oldest first."""
        return [self._retire() for _ in range(len(self._inflight))]

    def _queue(self, slot: _Slot, image: np.ndarray, extras: dict[str, np.ndarray]) -> tuple[int, int]:
        """Queue upload, conversion, inference, conversion and download of one frame in ``slot``."""
        cuda, events = self.cuda, slot.events
        height, width = image.shape[:2]
        # The slot is free (its previous frame was retired), so its pinned buffers can be overwritten.
        np.copyto(slot.frame_host.view(image.shape, np.uint8), image)
        for name, array in extras.items():
            np.copyto(slot.extras_host[name].view(array.shape, array.dtype), array)

        events["upload_start"].record(self._upload)
        cuda.htod_async(slot.frame_device, slot.frame_host, self._upload, nbytes=image.nbytes)
        for name, array in extras.items():
            cuda.htod_async(slot.tensors[name], slot.extras_host[name], self._upload, nbytes=array.nbytes)
        events["upload_end"].record(self._upload)

        compute = self._compute
        compute.wait(events["upload_end"])
        events["compute_start"].record(compute)
        cuda.frame_to_tensor(slot.frame_device, slot.tensors[self.image_input], height, width, compute,
                             dtype=self._in_dtype)
        events["preprocess_end"].record(compute)
        shapes = {self.image_input: (1, 3, height, width), **{name: array.shape for name, array in extras.items()}}
        outputs = self.runner.enqueue(shapes, {name: buffer.ptr for name, buffer in slot.tensors.items()}, compute)
        events["infer_end"].record(compute)
        out_h, out_w = _image_hw(tuple(outputs[self.output]), f"output {self.output!r}")
        cuda.tensor_to_frame(slot.tensors[self.output], slot.result_device, out_h, out_w, compute,
                             dtype=self._out_dtype, srgb=self.srgb_out)
        events["postprocess_end"].record(compute)

        self._download.wait(events["postprocess_end"])
        events["download_start"].record(self._download)
        cuda.dtoh_async(slot.result_host, slot.result_device, self._download, nbytes=out_h * out_w * 3)
        events["download_end"].record(self._download)
        return out_h, out_w

    def _retire(self) -> tuple[object, np.ndarray]:
        """Wait for the oldest frame in flight; its (tag, frame), with its stage times added to ``timings``."""
        job = self._inflight.popleft()
        slot = self._slots[job.slot]
        events = slot.events
        events["download_end"].synchronize()
        for stage, (start, end) in _SPANS.items():
            self.timings[stage].add(events[end].elapsed_ms(events[start]) / 1000.0)
        return job.tag, slot.result_host.view((*job.size, 3), np.uint8).copy()

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
            for host in (slot.frame_host, slot.result_host, *slot.extras_host.values()):
                host.free()
            for device in (slot.frame_device, slot.result_device, *slot.tensors.values()):
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
