"""Options and session fixtures of the pytest-benchmark suite (``pytest benchmarks --benchmark-only``).

The suite lives outside ``testpaths``, so ``python -m pytest`` (the CI command) never collects it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

DEFAULT_MODELS = ("lowlight_edge", "unet_edge")
DEFAULT_RESOLUTIONS = ("360p",)


def _csv(text: str) -> list[str]:
    """The non-empty items of a comma-separated option."""
    return [item.strip() for item in text.split(",") if item.strip()]


def pytest_addoption(parser):
    group = parser.getgroup("edgelight benchmarks")
    group.addoption("--bench-models", default=",".join(DEFAULT_MODELS), metavar="NAMES",
                    help="comma-separated registry names or checkpoint paths to benchmark "
                         f"(default: {','.join(DEFAULT_MODELS)})")
    group.addoption("--bench-resolutions", default=",".join(DEFAULT_RESOLUTIONS), metavar="SIZES",
                    help="comma-separated 360p / 720p / 1080p or HxW (default: %(default)s)")
    group.addoption("--bench-threads", type=int, default=None, metavar="N",
                    help="CPU threads for PyTorch and ONNX Runtime (default: each library's own setting)")
    group.addoption("--bench-cache", type=Path, default=None, metavar="DIR",
                    help="where exported models are kept between runs (default: pytest's cache folder)")


def pytest_configure(config):
    from benchmarks.models import parse_resolution

    models = _csv(config.getoption("--bench-models"))
    resolutions = _csv(config.getoption("--bench-resolutions"))
    if not models:
        raise pytest.UsageError("--bench-models: name at least one model")
    if not resolutions:
        raise pytest.UsageError("--bench-resolutions: name at least one resolution")
    for text in resolutions:
        try:
            parse_resolution(text)
        except ValueError as exc:
            raise pytest.UsageError(f"--bench-resolutions: {exc}") from None
    try:
        from train.models import list_models
    except ImportError:  # without the train extra every model skips with the reason
        pass
    else:
        unknown = [m for m in models if m not in list_models() and not Path(m).exists()]
        if unknown:
            raise pytest.UsageError(f"--bench-models: {', '.join(unknown)} is neither a registered model nor a "
                                    f"checkpoint or run folder; registered: {', '.join(list_models())}")
    threads = config.getoption("--bench-threads")
    if threads is not None and threads < 1:
        raise pytest.UsageError("--bench-threads must be at least 1")


@pytest.fixture(scope="session")
def bench_cache(request, tmp_path_factory) -> Path:
    """The folder exports are cached in: ``--bench-cache``, pytest's cache, or a temporary folder."""
    folder = request.config.getoption("--bench-cache")
    if folder is not None:
        return folder
    cache = getattr(request.config, "cache", None)  # absent under -p no:cacheprovider
    return cache.mkdir("edgelight-bench") if cache is not None else tmp_path_factory.mktemp("edgelight-bench")


@pytest.fixture(scope="session")
def prepared(bench_cache):
    """``prepared(spec)``: the model exported to FP32 and FP16 ONNX once per session (and cached on disk).

    A model that cannot be exported because a package is missing skips its tests with the reason.
    """
    from benchmarks.models import prepare

    done: dict[str, object] = {}

    def get(spec: str):
        if spec not in done:
            try:
                done[spec] = prepare(spec, bench_cache)
            except ImportError as exc:
                done[spec] = f"cannot export {spec}: {exc}"
        if isinstance(done[spec], str):
            pytest.skip(done[spec])
        return done[spec]

    return get


@pytest.fixture(scope="session")
def bench_threads(request) -> int | None:
    return request.config.getoption("--bench-threads")
