"""Run-folder checks for the training commands (atomic writes live in ``runtime.core.io``)."""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path

from runtime.core.errors import UserError

__all__ = ["check_run_folder", "clear_run_folder"]


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
