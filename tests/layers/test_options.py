"""Every numeric option of every command is checked when it is parsed: a value that is not finite or is out of
its range (nan, inf, -inf, 1e10, -1e10, a huge integer) is refused with exit code 2 and one line naming the
option, before any work is done and without a traceback.

The parsers are found, not listed: every module of runtime/, export/, benchmarks/ and train/ that adds
options (its ``build*parser`` functions, or the parser its ``main`` builds), the sub-commands of each, and
every option whose type is one of ``runtime.core.cli``'s number parsers (or another parser marked
``numeric``, such as ``image_size``)."""

from __future__ import annotations

import argparse
import functools
import importlib
import inspect
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from runtime.core.cli import ArgumentParser, image_size

ROOT = Path(__file__).resolve().parents[2]
BAD = ("nan", "inf", "-inf", "1e10", "-1e10", "99999999999")
EDGE = ("0", "-1")


def _cli_modules() -> list[str]:
    """Modules that add command-line options (by their source; importing them is left to the tests)."""
    found = []
    for package in ("runtime", "export", "benchmarks", "train"):
        for path in sorted((ROOT / package).rglob("*.py")):
            if "add_argument(" in path.read_text():
                found.append(".".join(path.relative_to(ROOT).with_suffix("").parts))
    return found


class _Built(Exception):
    def __init__(self, parser: argparse.ArgumentParser) -> None:
        super().__init__("parser built")
        self.parser = parser


def _parser_of_main(main: Callable) -> argparse.ArgumentParser:
    """The parser ``main`` builds, caught at its ``parse_args`` (nothing of the command runs)."""
    def catch(self, *args, **kwargs):
        raise _Built(self)

    saved = argparse.ArgumentParser.parse_args
    argparse.ArgumentParser.parse_args = catch
    try:
        main([])
    except _Built as built:
        return built.parser
    finally:
        argparse.ArgumentParser.parse_args = saved
    raise AssertionError(f"{main.__module__}.main parsed no arguments")


@functools.cache
def _parsers(module_name: str) -> list[tuple[str, argparse.ArgumentParser]]:
    """(name, parser) of each command a module defines: its build*parser functions, else its main's parser."""
    module = importlib.import_module(module_name)
    builders = [(name, fn) for name, fn in vars(module).items()
                if name.startswith("build") and name.endswith("parser") and inspect.isfunction(fn)
                and fn.__module__ == module_name and not any(
                    p.default is inspect.Parameter.empty for p in inspect.signature(fn).parameters.values())]
    if builders:
        return [(f"{module_name}.{name}", fn()) for name, fn in builders]
    if hasattr(module, "main"):
        return [(f"{module_name}.main", _parser_of_main(module.main))]
    return []  # a helper that adds options to other modules' parsers (runtime.tasks, train.trainer)


def _placeholders(parser: argparse.ArgumentParser) -> list[str]:
    """The least argv the parser accepts: a dummy for every positional and required option."""
    argv = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            continue
        count = {None: 1, "?": 0, "*": 0, "+": 1}.get(action.nargs, action.nargs)
        if not action.option_strings:
            argv += ["x"] * count
        elif action.required:
            argv += [action.option_strings[0], *["x"] * count]
    for group in parser._mutually_exclusive_groups:
        if group.required:
            argv += [group._group_actions[0].option_strings[0], "x"]
    return argv


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _leaves(parser: argparse.ArgumentParser, chain: list) -> Iterator[list]:
    """Each runnable command under ``parser`` as a chain of (name, parser) from the root, depth first."""
    subs = _subcommands(parser)
    if not subs:
        yield chain
    for name, sub in subs.items():
        yield from _leaves(sub, [*chain, (name, sub)])


def _is_numeric(action: argparse.Action) -> bool:
    return bool(action.option_strings) and (action.type is image_size or getattr(action.type, "numeric", False))


@functools.cache
def _numeric_options(module_name: str) -> tuple:
    """(command, root parser, argv builder, action) of every numeric option of the module's commands; the
    builder puts the option's words at its own level (a parent's options go before the sub-command)."""
    found, seen = [], set()
    for name, root in _parsers(module_name):
        assert isinstance(root, ArgumentParser), f"{name}: use runtime.core.cli.ArgumentParser (one-line errors)"
        for chain in _leaves(root, [(name, root)]):
            levels = [([] if depth == 0 else [word]) + _placeholders(parser)
                      for depth, (word, parser) in enumerate(chain)]
            root.parse_args([w for level in levels for w in level])  # parses alone, so failures are the option's
            for depth, (_, parser) in enumerate(chain):
                for action in parser._actions:
                    if _is_numeric(action) and id(action) not in seen:
                        seen.add(id(action))

                        def argv(words, levels=levels, depth=depth):
                            return [w for i, level in enumerate(levels) for w in level + (words if i == depth else [])]

                        found.append((" ".join(word for word, _ in chain), root, argv, action))
    return tuple(found)


def _with(action: argparse.Action, value: str) -> list[str]:
    option = next((o for o in action.option_strings if o.startswith("--")), action.option_strings[0])
    if isinstance(action.nargs, int):
        return [option, *[value] * action.nargs]
    return [f"{option}={value}"]


def _error_line(capsys) -> str:
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    return lines[0]


CLI_MODULES = _cli_modules()


def test_every_command_is_walked():
    from train.families import get_family, list_families

    wanted = {"runtime.cli", "export.cli", "benchmarks.cli", "benchmarks.pipeline_cpu", "benchmarks.onnx_cpu",
              "benchmarks.model_cost", *(get_family(f).command + ".cli" for f in list_families())}
    assert wanted <= set(CLI_MODULES)


@pytest.mark.parametrize("module_name", CLI_MODULES)
def test_numeric_options_refuse_non_finite_and_out_of_range_values(module_name, capsys):
    options = _numeric_options(module_name)
    for command, root, argv_with, action in options:
        for value in BAD:
            argv = argv_with(_with(action, value))
            with pytest.raises(SystemExit) as stop:
                root.parse_args(argv)
            line = _error_line(capsys)
            assert stop.value.code == 2, (command, argv)
            assert any(option in line for option in action.option_strings), (command, argv, line)
            assert "error:" in line and "Traceback" not in line, (command, argv, line)
    # Modules that only add options to others' parsers (runtime.tasks, train.trainer) build none of their own.
    assert options or not _parsers(module_name), f"{module_name}: no numeric options found"


@pytest.mark.parametrize("module_name", CLI_MODULES)
def test_numeric_options_take_zero_and_minus_one_or_refuse_them_in_one_line(module_name, capsys):
    for command, root, argv_with, action in _numeric_options(module_name):
        for value in EDGE:
            argv = argv_with(_with(action, value))
            try:
                root.parse_args(argv)
            except SystemExit as stop:
                line = _error_line(capsys)
                assert stop.code == 2, (command, argv)
                assert any(option in line for option in action.option_strings), (command, argv, line)
            else:
                capsys.readouterr()


@pytest.mark.parametrize("module_name", CLI_MODULES)
def test_numeric_defaults_are_within_their_ranges(module_name):
    for command, _, _, action in _numeric_options(module_name):
        if action.default is None or not (action.type is image_size or hasattr(action.type, "kind")):
            continue
        if isinstance(action.default, str):
            texts = [action.default]
        elif action.type is image_size:
            sizes = action.default if isinstance(action.default, list) else [action.default]
            texts = [f"{h}x{w}" for h, w in sizes]
        else:
            values = action.default if isinstance(action.default, (list, tuple)) else [action.default]
            texts = [str(v) for v in values]
        for text in texts:
            action.type(text)  # raises ArgumentTypeError when the default is out of range


@pytest.mark.parametrize("argv, option", [
    (["runtime", "enhance", "--model", "x", "--input", "y", "--fps", "nan"], "--fps"),
    (["runtime", "enhance", "--model", "x", "--input", "y", "--timeout", "1e10"], "--timeout"),
    (["export", "ckpt", "--workspace", "inf"], "--workspace"),
    (["benchmarks", "--iters", "99999999999"], "--iters"),
    (["train.lowlight", "train", "--lr", "1e10"], "--lr"),
    (["train.ibr", "render", "--model", "x", "--output", "y.mp4", "--fps=-inf"], "--fps"),
])
def test_commands_refuse_a_bad_number_in_one_line(argv, option, tmp_path):
    proc = subprocess.run([sys.executable, "-m", *argv], capture_output=True, text=True, timeout=300, check=False,
                          cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)})
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2, proc.stderr
    assert len(lines) == 1 and option in lines[0] and "error:" in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr
