"""The layers hold: the contract layer imports only the standard library and numpy, import-linter's
contracts (checked by ``lint-imports`` in ``make test``) name every runtime module, and the runtime runs
an exported model with torch, train and export unimportable."""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _contracts() -> list[dict]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]


def test_contract_layer_imports_only_the_standard_library_and_numpy():
    allowed = set(sys.stdlib_module_names) | {"numpy"}
    for path in sorted((ROOT / "runtime" / "core").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [] if node.level else [node.module or ""]
            else:
                continue
            for name in names:
                assert name.split(".")[0] in allowed, f"{path.name} imports {name}"


@pytest.mark.parametrize("contract", [c["name"] for c in _contracts() if "runtime.backends" in c["forbidden_modules"]])
def test_contracts_that_forbid_the_runtime_name_each_of_its_modules(contract):
    """A contract listing the runtime's modules must list a module added later too."""
    forbidden = next(c for c in _contracts() if c["name"] == contract)["forbidden_modules"]
    modules = {f"runtime.{p.stem if p.suffix == '.py' else p.name}" for p in (ROOT / "runtime").iterdir()
               if (p.suffix == ".py" and p.stem not in ("__init__", "__main__")) or (p / "__init__.py").is_file()}
    missing = sorted(modules - set(forbidden) - {"runtime.core"})
    assert not missing, f"pyproject.toml's contract {contract!r} does not forbid {missing}"


_BLOCKER = textwrap.dedent("""
    import importlib.abc, runpy, sys

    class Blocked(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("torch", "train", "export", "benchmarks", "lightning"):
                raise ImportError(f"blocked for this test: {name}")
            return None

    sys.meta_path.insert(0, Blocked())
    sys.argv = ["python -m runtime", *sys.argv[1:]]
    runpy.run_module("runtime", run_name="__main__", alter_sys=True)
""")


def test_the_runtime_enhances_a_clip_with_torch_train_and_export_unimportable(exported_lowlight, tmp_path):
    from runtime.democlip import make_demo_clip

    make_demo_clip(tmp_path / "clip.mp4", kind="lowlight", frames=6, size=(48, 64))
    script = tmp_path / "blocked.py"
    script.write_text(_BLOCKER)
    clip = ["--input", str(tmp_path / "clip.mp4"), "--quiet"]
    proc = subprocess.run([sys.executable, str(script), "enhance", "--model", str(exported_lowlight / "export"), *clip,
                           "--output", str(tmp_path / "out.mp4")], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "6 frames to" in proc.stdout and "on onnxruntime (cpu)" in proc.stdout
    assert (tmp_path / "out.mp4").stat().st_size > 0
    # The blocker really blocks: the same runner on the checkpoint needs torch and says so.
    proc = subprocess.run([sys.executable, str(script), "enhance", "--model", str(exported_lowlight / "best.ckpt"), *clip],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "blocked for this test" in proc.stderr
