"""Static checks of our TensorRT code, which CI cannot run: no name TensorRT 11 removed, and mypy against the stubs.

TensorRT 11 removed weak typing, but the ``tensorrt-stubs`` (10.13) still list those names, so the
first check rejects them by name. The second type-checks every call against the 10.13 stubs, after a
small text repair of the stubs' few syntax errors (parameters named ``in``; a parameter without a
default after ones with defaults).
"""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NAMED = ("export/engine.py", "runtime/runners/tensorrt.py")
"""Our TensorRT modules; any other module of these packages that imports tensorrt is checked as well."""
PACKAGES = ("export", "runtime", "benchmarks")

REMOVED_FLAGS = {"FP16", "BF16", "INT8"}  # banned as members of BuilderFlag
REMOVED_NAMES = {"int8_calibrator", "platform_has_fast_fp16", "platform_has_fast_int8",
                 "OBEY_PRECISION_CONSTRAINTS", "PREFER_PRECISION_CONSTRAINTS"}


def _imports_tensorrt(tree: ast.AST) -> bool:
    for node in ast.walk(tree):
        if isinstance(node, ast.Import) and any(a.name.split(".")[0] == "tensorrt" for a in node.names):
            return True
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "tensorrt":
            return True
    return False


def tensorrt_sources() -> list[Path]:
    """The named TensorRT modules that exist, and every other module here that imports tensorrt."""
    found = {ROOT / name for name in NAMED if (ROOT / name).is_file()}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            if _imports_tensorrt(ast.parse(path.read_text(), str(path))):
                found.add(path)
    return sorted(found)


def removed_api_uses(source: str, filename: str = "<source>") -> list[str]:
    """``"file:line: name"`` for each use of a TensorRT API that TensorRT 11 removed."""
    def named(node: ast.AST) -> str | None:
        return node.attr if isinstance(node, ast.Attribute) else node.id if isinstance(node, ast.Name) else None

    hits = []
    for node in ast.walk(ast.parse(source, filename)):
        name = named(node)
        if isinstance(node, ast.Attribute) and name in REMOVED_FLAGS and named(node.value) == "BuilderFlag":
            hits.append((node.lineno, f"BuilderFlag.{name}"))
        elif name in REMOVED_NAMES:
            hits.append((node.lineno, name))
        elif isinstance(node, ast.Call) and named(node.func) in {"getattr", "setattr", "hasattr"} and node.args[1:]:
            target, attr = named(node.args[0]), node.args[1]
            if isinstance(attr, ast.Constant) and (attr.value in REMOVED_NAMES
                                                   or (attr.value in REMOVED_FLAGS and target == "BuilderFlag")):
                hits.append((node.lineno, str(attr.value)))
    return [f"{filename}:{line}: {name}" for line, name in sorted(hits)]


def test_tensorrt_sources_include_the_engine_builder():
    assert ROOT / "export/engine.py" in tensorrt_sources()


def test_no_api_removed_in_tensorrt_11():
    hits = [hit for path in tensorrt_sources()
            for hit in removed_api_uses(path.read_text(), str(path.relative_to(ROOT)))]
    assert not hits, "TensorRT 11 removed these (use a strongly typed network and an FP16 ONNX):\n" + "\n".join(hits)


def test_removed_api_check_flags_planted_uses():
    planted = """
import tensorrt as trt
config.set_flag(trt.BuilderFlag.FP16)
config.set_flag(BuilderFlag.INT8)
config.int8_calibrator = calibrator
if builder.platform_has_fast_fp16:
    config.set_flag(getattr(trt.BuilderFlag, "BF16"))
config.set_flag(trt.BuilderFlag.OBEY_PRECISION_CONSTRAINTS)
"""
    names = [hit.rsplit(": ", 1)[1] for hit in removed_api_uses(planted)]
    assert names == ["BuilderFlag.FP16", "BuilderFlag.INT8", "int8_calibrator", "platform_has_fast_fp16", "BF16",
                     "OBEY_PRECISION_CONSTRAINTS"]
    allowed = "x = (trt.DataType.HALF, trt.float16, np.float16, trt.BuilderFlag.VERSION_COMPATIBLE, dtype.FP16)\n"
    assert removed_api_uses(allowed) == []


# --- mypy against tensorrt-stubs -------------------------------------------------------------------------------

_PARAM_IN = re.compile(r"(?<=[(,] )in(?=: )|(?<=\()in(?=: )")


def _parses(line: str) -> bool:
    try:
        ast.parse(line.strip() + " ...")
    except SyntaxError:
        return False
    return True


def _split_params(params: str) -> list[str]:
    parts, depth, start = [], 0, 0
    for i, char in enumerate(params):
        depth += (char in "([{") - (char in ")]}")
        if char == "," and depth == 0:
            parts.append(params[start:i])
            start = i + 1
    return parts + [params[start:]]


def repair_stub_line(line: str) -> str:
    """Make one generated ``def`` line valid Python: rename ``in`` parameters, give late parameters a default."""
    if not line.lstrip().startswith("def ") or _parses(line):
        return line
    line = _PARAM_IN.sub("in_", line)
    head, _, rest = line.partition("(")
    params, _, tail = rest.rpartition(")")
    parts, defaults = _split_params(params), False
    for i, part in enumerate(parts):
        if part.strip().startswith("*"):
            defaults = False
        elif "=" in part:
            defaults = True
        elif defaults and part.strip():
            parts[i] = f"{part} = ..."
    return f"{head}({','.join(parts)}){tail}"


def _stub_files() -> dict[str, Path]:
    try:
        dist = importlib.metadata.distribution("tensorrt-stubs")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("tensorrt-stubs is not installed (make installs it; or pip install --no-deps tensorrt-stubs)")
    return {str(f): Path(str(dist.locate_file(f))) for f in dist.files or () if str(f).endswith(".pyi")}


@pytest.fixture(scope="module")
def mypy_config(tmp_path_factory) -> Path:
    """A mypy config whose search path holds the repaired stubs (packages ``tensorrt`` and ``tensorrt_bindings``)."""
    pytest.importorskip("mypy.api", reason="mypy is not installed (it is in the test extra: pip install mypy)")
    root = tmp_path_factory.mktemp("mypy")
    for relative, source in _stub_files().items():
        text = "\n".join(repair_stub_line(line) for line in source.read_text().splitlines()) + "\n"
        ast.parse(text, relative)  # the repair left no syntax error
        (root / "stubs" / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / "stubs" / relative).write_text(text)
    assert (root / "stubs/tensorrt/__init__.pyi").is_file(), "tensorrt-stubs has no tensorrt/__init__.pyi"
    config = root / "mypy.ini"
    # Only TensorRT is type-checked for real: everything else (torch, numpy, onnx, our packages) is Any, which
    # keeps a run to seconds. The stubs themselves are followed silently (their own untidiness is not ours).
    config.write_text(f"""\
[mypy]
python_version = {sys.version_info.major}.{sys.version_info.minor}
mypy_path = {root / "stubs"}
cache_dir = {root / "cache"}
no_site_packages = True
ignore_missing_imports = True
follow_imports = skip
check_untyped_defs = True
warn_unused_ignores = True
show_error_codes = True

[mypy-tensorrt,tensorrt.*,tensorrt_bindings,tensorrt_bindings.*]
follow_imports = silent
follow_imports_for_stubs = True
""")
    return config


def _mypy(config: Path, *paths: Path) -> tuple[int, str]:
    from mypy import api

    stdout, stderr, status = api.run(["--config-file", str(config), *map(str, paths)])
    return status, stdout + stderr


def test_tensorrt_code_type_checks_against_the_stubs(mypy_config):
    status, report = _mypy(mypy_config, *tensorrt_sources())
    assert status == 0, report


def test_mypy_with_the_stubs_flags_misspelled_and_mistyped_calls(mypy_config, tmp_path):
    planted = tmp_path / "planted.py"
    planted.write_text("""\
import tensorrt as trt


def build() -> None:
    builder = trt.Builder(trt.Logger(trt.Logger.WARNING))
    network = builder.create_netwrk(0)
    config = builder.create_builder_config()
    config.set_memory_pool_limit("workspace", 1 << 30)
""")
    status, report = _mypy(mypy_config, planted)
    assert status == 1
    assert 'has no attribute "create_netwrk"' in report, report
    assert "set_memory_pool_limit" in report and "arg-type" in report, report
