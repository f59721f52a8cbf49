"""The PyTorch runner's CUDA graphs (one per input shape, at most GRAPH_LIMIT, released with their memory) and its
runs on device buffers, on a GPU."""

from __future__ import annotations

import numpy as np
import pytest

from runtime.runners.base import ShapeCache
from runtime.runners.torch import GRAPH_LIMIT, TorchRunner


def test_shape_cache_releases_the_least_recently_used_entry_beyond_its_limit():
    released: list[str] = []
    cache: ShapeCache[str] = ShapeCache(2, released.append)
    cache.put((1,), "a")
    cache.put((2,), "b")
    assert cache.get((1,)) == "a"  # now the most recently used
    cache.put((3,), "c")
    assert released == ["b"] and (2,) not in cache and len(cache) == 2
    cache.clear()
    assert sorted(released) == ["a", "b", "c"] and len(cache) == 0
    with pytest.raises(ValueError, match="at least one"):
        ShapeCache(0, released.append)


class _Graph:
    def __init__(self) -> None:
        self.was_reset = False

    def reset(self) -> None:
        self.was_reset = True


def test_graphs_and_their_memory_are_released_beyond_the_limit_and_on_deactivate(lowlight_checkpoint):
    """A video whose size keeps changing must not keep one graph (and its memory pool) per size it ever saw."""
    runner = TorchRunner(lowlight_checkpoint, device="cpu").activate()
    graphs = [_Graph() for _ in range(GRAPH_LIMIT + 2)]
    for index, graph in enumerate(graphs):
        runner._graphs.put(((1, 3, 16 + index, 16),), (graph, [object()], [object()]))
    assert [g.was_reset for g in graphs] == [True, True] + [False] * GRAPH_LIMIT
    runner.deactivate()
    assert all(g.was_reset for g in graphs) and len(runner._graphs) == 0


# --- on a GPU ---------------------------------------------------------------------------------------------------


def _frames(count: int) -> list[np.ndarray]:
    rng = np.random.default_rng(5)
    sizes = [(64, 96), (128, 128), (64, 96), (72, 40), (64, 96), (128, 128)]
    return [rng.integers(0, 256, (*sizes[i % len(sizes)], 3), dtype=np.uint8) for i in range(count)]


@pytest.mark.needs_cuda
@pytest.mark.parametrize("options", [{}, {"fp16": True}, {"fp16": True, "cuda_graphs": True}],
                         ids=["fp32", "fp16", "fp16-graphs"])
def test_the_executor_gives_the_frames_of_infer_on_a_gpu(lowlight_checkpoint, options):
    """PyTorch on the executor's streams (uint8 up, conversion kernels, the model on the compute stream as an external
    stream, uint8 down) gives what ``infer`` with host conversion gives, frame for frame, as sizes change."""
    from runtime.cuda import available_libs
    from runtime.cuda_executor import CudaFrameExecutor
    from runtime.tasks import frame_to_tensor, tensor_to_frame

    if not available_libs():
        pytest.skip("no CUDA Python library (pip install cuda-python)")
    frames = _frames(12)
    with TorchRunner(lowlight_checkpoint, device="cuda", **options) as runner:
        expected = [tensor_to_frame(runner.infer({"image": frame_to_tensor(f)})["enhanced"]) for f in frames]
        with CudaFrameExecutor(runner, image_input="image", output="enhanced", depth=3) as executor:
            assert not executor.host_conversion
            done = []
            for index, frame in enumerate(frames):
                done += executor.submit(index, frame, {})
            done += executor.flush()
            assert all(len(v) == 12 and min(v) >= 0 for v in executor.timings.values())
    assert [f.tag for f in done] == list(range(12))
    for (_, got, _), want in zip(done, expected):
        difference = np.abs(got.astype(int) - want.astype(int))
        assert difference.max() <= 1 and (difference == 0).mean() > 0.999


@pytest.mark.needs_cuda
def test_cuda_graphs_per_shape_are_bounded_on_a_gpu(lowlight_checkpoint):
    """Sizes that keep changing recapture graphs, but the released ones give their memory back to be reused: the
    second pass over the sizes holds no more memory than the first."""
    import torch

    shapes = [(64 + 8 * i, 96) for i in range(GRAPH_LIMIT + 3)]
    reserved = []
    with TorchRunner(lowlight_checkpoint, device="cuda", fp16=True, cuda_graphs=True) as runner:
        for _ in range(2):
            for height, width in shapes:
                image = np.random.default_rng(height).random((1, 3, height, width), dtype=np.float32)
                assert runner.infer({"image": image})["enhanced"].shape == (1, 3, height, width)
                assert len(runner._graphs) <= GRAPH_LIMIT
            torch.cuda.synchronize()
            reserved.append(torch.cuda.memory_reserved())
    assert reserved[1] <= reserved[0] * 1.1 + (8 << 20), reserved
