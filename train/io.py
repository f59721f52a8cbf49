"""Atomic file writes (a temporary name in the same folder, then a rename) and run-folder checks."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

__all__ = ["atomic_path", "atomic_dir", "write_json", "check_run_folder", "clear_run_folder", "FILE_MODE", "DIR_MODE"]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# mkstemp and mkdtemp create private (0600 / 0700) entries; finished ones get the usual permissions.
FILE_MODE = 0o666 & ~_umask()
DIR_MODE = 0o777 & ~_umask()


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it to ``path``, else delete it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary folder beside ``path``; on success it replaces ``path`` (which must not exist)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        yield tmp
        os.chmod(tmp, DIR_MODE)
        os.rename(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_json(path: str | os.PathLike, data: dict) -> Path:
    """Write ``data`` as indented JSON, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=False, default=_json_default) + "\n")
    return Path(path)


def _json_default(value):
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, (set, tuple)):
        return list(value)
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def save_with(path: str | os.PathLike, writer: Callable[[Path], None]) -> Path:
    """Call ``writer(tmp_path)`` and atomically move the result to ``path``."""
    with atomic_path(path) as tmp:
        writer(tmp)
    return Path(path)


def check_run_folder(out: Path, run_files: Sequence[str], *, overwrite: bool, resume: bool | None = None,
                     option: str = "--out") -> None:
    """Refuse to clobber a previous run in ``out``.

    Args:
        run_files: the names a run writes; any of them present means a run is there.
        overwrite: the user asked to replace that run.
        resume: the user asked to continue it (needs ``last.ckpt``); None when the command cannot resume.
        option: the option that names the folder, for the messages.

    Raises:
        UserError: one line saying what is in the way and which option gets past it.
    """
    from .errors import UserError

    if resume:
        if not (out / "last.ckpt").is_file():
            raise UserError(f"--resume: no last.ckpt in {out}")
        return
    if out.exists() and not out.is_dir():
        raise UserError(f"{option} {out} is a file")
    existing = [name for name in run_files if (out / name).exists()]
    if existing and not overwrite:
        ways = "--overwrite" if resume is None else "--overwrite, --resume"
        raise UserError(f"{out} already holds a run ({', '.join(existing)}); pass {ways} or another {option}")


def clear_run_folder(out: Path, run_files: Sequence[str], folders: Sequence[str] = ()) -> None:
    """Delete a previous run's files (and ``folders``) from ``out`` before a new run writes there."""
    for name in run_files:
        (out / name).unlink(missing_ok=True)
    for name in folders:
        shutil.rmtree(out / name, ignore_errors=True)
