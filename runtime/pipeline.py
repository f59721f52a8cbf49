"""The video pipeline: source -> fit and preprocess -> runner -> postprocess -> sink, with stage statistics.

Decoding runs in the source's thread and encoding in a writer thread, so on the CPU decode,
inference and encode of different frames overlap. With a runner on a GPU (TensorRT, PyTorch, ONNX Runtime's
CUDA provider) the ``CudaFrameExecutor`` keeps at least two frames in flight on separate upload, compute and download
streams ordered by events, and converts uint8 frames to tensors on the GPU.

    from runtime import Pipeline, load
    from runtime.tasks import EnhanceTask
    from runtime.video import open_sink, open_source

    with load("exports/lowlight/model.onnx") as runner:
        source = open_source("clip.mp4")
        stats = Pipeline(runner, EnhanceTask(), source, open_sink("out.mp4", fps=source.fps)).run()

Apps that own their capture loop call ``Pipeline(runner, task).process(frame)`` per frame.

A live source (camera, stream) is run for latency: at most one frame waits in front of inference (the
source keeps only the newest), at most one waits for the encoder, and the GPU executor hands a frame on as
soon as it is done when no newer frame is waiting to overlap with it. Each frame's capture-to-output time
(from ``Frame.timestamp`` to the moment the sink has written it) is the ``latency`` stage; the summary gives
its percentiles as ``latency_ms``, the frames the source dropped as ``dropped`` and the longest wait in
front of inference as ``waiting_max``.
"""

from __future__ import annotations

import logging
import queue
import threading
import time

import numpy as np

from .core.cli import exit_code
from .core.errors import UserError
from .core.color import as_bgr8
from .runners.base import Runner
from .stats import Progress, Stats
from .tasks import Task

__all__ = ["Pipeline"]

log = logging.getLogger("runtime")
_END = object()


class Pipeline:
    """Runs ``task`` with ``runner`` on every frame of ``source`` and writes the results to ``sink``.

    Args:
        runner: any runner (activated here if it is not already).
        task: what to do with the model (checked against the runner's sidecar first).
        source: a ``runtime.video.Source``; None for tasks that make their own frames (``ibr``).
        sink: a ``runtime.video.Sink``; None to discard the output (still timed).
        max_frames: stop after this many frames (live sources run until stopped otherwise).
        progress: show a progress bar for sources of known length.
        gpu: ``auto`` uses the overlapped GPU executor when the runner's backend has the ``cuda_executor``
            capability and the runner computes on a GPU (``executor_cuda()``: TensorRT engines, PyTorch and
            ONNX Runtime on CUDA, or any of them on the simulated CUDA layer); ``off`` never does.
        depth: frames in flight on the GPU executor (at least 2).
    """

    def __init__(self, runner: Runner, task: Task, source=None, sink=None, *, max_frames: int | None = None,
                 progress: bool = False, gpu: str = "auto", depth: int = 2) -> None:
        task.check(runner)
        self.runner, self.task, self.source, self.sink = runner, task, source, sink
        self.max_frames, self.progress, self.gpu, self.depth = max_frames, progress, gpu, depth
        self.stats = Stats()
        self.error: str | None = None
        """Why the run stopped before the end of its source (damage, disconnect, interrupted), or None."""
        self.interrupted = False
        """The run was stopped by Ctrl-C, SIGTERM or SIGHUP (a clean stop: the frames so far are written)."""
        self.stop_signal: int | None = None
        """The signal that stopped the run (``signal.SIGINT`` for Ctrl-C), or None."""

    # -- one frame at a time -------------------------------------------------------------------------

    def process(self, frame: np.ndarray | None, index: int = 0) -> np.ndarray:
        """One uint8 HxWx3 BGR frame in, its enhanced or relit version (uint8 HxWx3 BGR, same size) out.

        Grey (HxW, HxWx1), BGRA (HxWx4, alpha dropped) and uint16 frames (``round(value / 257)``) are
        converted (``runtime.core.color.as_bgr8``); float and other dtypes, empty frames and other
        shapes raise ValueError saying what is expected. A frame the model's shape range cannot take
        raises UserError (a ValueError). ``frame`` is None for tasks without an input video (``ibr``).
        The runner is activated on the first call.
        """
        self.runner.activate()
        outputs, fit, fitted, _ = self._infer(frame, index)
        return self._post(outputs, fit, fitted)

    def _infer(self, frame: np.ndarray | None, index: int):
        """Fit and preprocess one frame and run the model: (outputs, fit, fitted frame, stage times)."""
        t0 = time.perf_counter()
        fit = fitted = None
        if frame is not None or self.task.video_input:
            frame = as_bgr8(frame)  # uint8 HxWx3 BGR: the frames of a source pass unchanged
            fit = self.task.fit(self.runner, frame.shape[:2])
            fitted = fit.apply(frame)
        feeds = self.task.feeds(fitted, index)
        t1 = time.perf_counter()
        outputs = self.runner.infer(feeds)
        return outputs, fit, fitted, {"preprocess": t1 - t0, "infer": time.perf_counter() - t1}

    def _post(self, outputs: dict[str, np.ndarray], fit, fitted) -> np.ndarray:
        out = self.task.postprocess(outputs, fitted)
        return fit.restore(out) if fit is not None else out

    # -- a whole source ------------------------------------------------------------------------------

    def _executor(self):
        """The overlapped GPU executor, when it applies (a backend that can be driven by it, and an image task)."""
        from .backends import capabilities

        if self.gpu == "off" or self.source is None or "cuda_executor" not in capabilities(self.runner.backend):
            return None
        try:
            cuda = self.runner.executor_cuda()
        except UserError as exc:  # on a GPU without a CUDA Python library: the host path still works
            log.warning("frames go through the host, not the overlapped GPU executor: %s", exc)
            return None
        if cuda is None:
            return None
        from .cuda_executor import CudaFrameExecutor

        extras = tuple(self.task.extras(0))
        # Vector outputs (a light estimate) come back with each frame for the task to carry to later frames.
        vectors = tuple(s["name"] for s in self.runner.contract["outputs"] if "shape" in s)
        return CudaFrameExecutor(self.runner, image_input=self.task.image_input, output=self.task.output,
                                 extra_inputs=extras, depth=max(2, self.depth), cuda=cuda, host_outputs=vectors)

    def run(self) -> dict:
        """Process every frame; return the statistics (``Stats.summary()``)."""
        self.runner.activate()
        stats = self.stats
        live = self.source is not None and bool(self.source.live)
        # A live frame that waits for the encoder ages: one may wait (the next waits in inference, and the source
        # drops the ones behind it), so a slow output cannot build a queue of old frames. Files queue a few.
        writes: queue.Queue = queue.Queue(maxsize=1 if live else 8)
        writer = threading.Thread(target=self._write, args=(writes,), name="edgelight-encode", daemon=True)
        total = self._total()
        bar = Progress(total, desc=self.task.name) if self.progress and total else None
        executor = self._executor()
        if self.source is not None:
            self.source.start()
        stats.start()
        writer.start()
        index = 0
        try:
            while self.max_frames is None or index < self.max_frames:
                if self._write_error is not None:
                    break  # the output failed: stop reading (a live source would never end)
                if self.sink is not None:
                    self.sink.pump()
                    if self.sink.stop_requested:
                        break
                frame, stamp = self._next(index)
                if frame is _END:
                    break
                if executor is None:
                    outputs, fit, fitted, times = self._infer(frame, index)
                    for stage, seconds in times.items():
                        stats.add(stage, seconds)
                    # Postprocessing runs in the encode thread, off the inference path.
                    writes.put((lambda o=outputs, f=fit, x=fitted: self._post(o, f, x), stamp))
                else:
                    done = self._submit(executor, frame, index, stamp)
                    if live and not getattr(self.source, "waiting", 0):
                        # No newer frame to overlap with: wait for this one now rather than when the next
                        # frame arrives (a frame interval later).
                        done += executor.flush()
                    self._hand_on(done, writes)
                index += 1
                if bar is not None:
                    bar.update(1)
            if executor is not None:
                self._hand_on(executor.flush(), writes)
        except KeyboardInterrupt as exc:  # Ctrl-C, SIGTERM or SIGHUP (runtime.core.cli.Interrupted)
            self.error = "interrupted"
            self.interrupted = True
            self.stop_signal = exit_code(exc) - 128
        finally:
            writes.put(_END)
            writer.join()
            stats.stop()
            if executor is not None:
                for stage, histogram in executor.timings.items():
                    stats.merge(f"gpu_{stage}", histogram)
                executor.close()
            if self.source is not None:
                self.source.stop()
                stats.dropped = self.source.dropped
                stats.waiting_max = getattr(self.source, "waiting_max", 0)
                if self.source.error and not self.error:
                    self.error = self.source.error
            if bar is not None:
                bar.close()
        if self._write_error is not None:
            raise self._write_error
        return stats.summary()

    def _total(self) -> int | None:
        if self.source is None:
            total = self.task.frames()
        else:
            total = None if self.source.live else self.source.frame_count
        if total is not None and self.max_frames is not None:
            total = min(total, self.max_frames)
        return total

    def _next(self, index: int):
        """(frame, capture time) of the next frame, or (_END, None)."""
        if self.source is None:
            return (None, time.monotonic()) if index < self.task.frames() else (_END, None)
        t0 = time.perf_counter()
        frame = self.source.read(timeout=None)
        self.stats.add("wait_decode", time.perf_counter() - t0)
        if frame is None:
            return _END, None
        return frame.image, frame.timestamp

    def _submit(self, executor, frame: np.ndarray, index: int, stamp: float):
        t0 = time.perf_counter()
        fit = self.task.fit(self.runner, frame.shape[:2])
        fitted = fit.apply(frame)
        done = executor.submit((stamp, fit, fitted), fitted, self.task.extras(index))
        self.stats.add("submit", time.perf_counter() - t0)
        return done

    def _hand_on(self, finished: list, writes: queue.Queue) -> None:
        """Frames back from the GPU executor: their vector outputs to the task (for later frames), the frames to
        the encode thread."""
        for tag, out, outputs in finished:
            self.task.observe(outputs)
            writes.put((lambda t=tag, o=out: self._finish(t, o), tag[0]))

    def _finish(self, tag, out: np.ndarray) -> np.ndarray:
        """A frame back from the GPU executor: the task's last step, then the original size."""
        _, fit, fitted = tag
        return fit.restore(self.task.finish(out, fitted))

    _write_error: BaseException | None = None

    def _write(self, writes: queue.Queue) -> None:
        """The encode thread: postprocess and write frames in order, time them, measure each frame's latency
        (capture time to written)."""
        while True:
            item = writes.get()
            if item is _END:
                return
            if self._write_error is not None:
                continue  # drain, so the producer never blocks
            job, stamp = item
            try:
                t0 = time.perf_counter()
                out = job()
                t1 = time.perf_counter()
                if self.sink is not None:
                    self.sink.write(out)
            except BaseException as exc:  # surfaced by run() once the producer has stopped
                self._write_error = exc
                continue
            self.stats.add("postprocess", t1 - t0)
            self.stats.add("encode", time.perf_counter() - t1)
            self.stats.add("latency", time.monotonic() - stamp)
            self.stats.frame_done()
