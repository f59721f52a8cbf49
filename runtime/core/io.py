"""Atomic file writes: a temporary name in the same folder, then a rename (standard library and numpy only).

Temporary names are recognisable: ``.<name>.edgelight-<pid>-<random>.tmp[<suffix>]`` beside the final
path. A run killed outright (SIGKILL, power loss) leaves one behind; the next run writing the same path
removes those whose process is gone (``remove_stale_temps``). A failed write raises ``OSError`` naming the
final path, not the temporary one, and leaves no temporary behind. ``publish`` renames a finished
temporary into place and, without ``overwrite``, refuses to replace a file or folder that appeared in
the meantime (an atomic no-replace rename), so two runs never silently overwrite each other.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from .errors import UserError

__all__ = ["atomic_path", "atomic_dir", "write_json", "write_text", "read_float_image", "FILE_MODE",
           "DIR_MODE", "temp_file", "temp_dir", "remove_stale_temps", "publish", "exchange", "rename_noreplace",
           "OutputExistsError", "free_bytes"]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# mkstemp and mkdtemp create private (0600 / 0700) entries; finished ones get the usual permissions.
FILE_MODE = 0o666 & ~_umask()
DIR_MODE = 0o777 & ~_umask()


_TAG = "edgelight-"


class OutputExistsError(UserError):
    """The final path appeared while this run was writing it (another run, another program)."""


def _prefix(path: Path) -> str:
    return f".{path.name}.{_TAG}{os.getpid()}-"


def temp_file(path: str | os.PathLike, suffix: str = "") -> Path:
    """A new, empty, recognisable temporary file beside ``path`` (``suffix`` after ``.tmp``, for tools that
    choose the format by suffix). Stale temporaries of ``path`` from dead processes are removed first."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(path)
    fd, tmp = tempfile.mkstemp(prefix=_prefix(path), suffix=f".tmp{suffix}", dir=path.parent)
    os.close(fd)
    return Path(tmp)


def temp_dir(path: str | os.PathLike) -> Path:
    """A new, empty, recognisable temporary folder beside ``path`` (stale ones of dead processes removed)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(path)
    return Path(tempfile.mkdtemp(prefix=_prefix(path), suffix=".tmp", dir=path.parent))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def remove_stale_temps(path: str | os.PathLike) -> list[Path]:
    """Remove the temporaries of ``path`` left by processes that are gone (killed, power loss); return them."""
    path = Path(path)
    removed = []
    if not path.parent.is_dir():
        return removed
    head = f".{path.name}.{_TAG}"
    for entry in path.parent.iterdir():
        if not entry.name.startswith(head) or ".tmp" not in entry.name:
            continue
        pid = entry.name[len(head):].split("-", 1)[0]
        if not pid.isdigit() or _alive(int(pid)):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
        removed.append(entry)
    return removed


def _renameat2(src: Path, dst: Path, flags: int) -> bool:
    """Linux renameat2(2); False where the system or file system does not have it."""
    import ctypes
    import errno

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        call = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd = -100
    if call(at_fdcwd, os.fsencode(src), at_fdcwd, os.fsencode(dst), flags) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, getattr(errno, "ENOTSUP", errno.EINVAL),
                getattr(errno, "EOPNOTSUPP", errno.EINVAL)):
        return False
    raise OSError(code, os.strerror(code), str(dst))


def rename_noreplace(src: str | os.PathLike, dst: str | os.PathLike) -> None:
    """Rename ``src`` to ``dst`` atomically unless ``dst`` exists (FileExistsError then; ``src`` is kept)."""
    src, dst = Path(src), Path(dst)
    if _renameat2(src, dst, 1):  # RENAME_NOREPLACE
        return
    if src.is_dir():  # no atomic no-replace rename for folders here: check, then rename
        if dst.exists():
            raise FileExistsError(17, "File exists", str(dst))
        os.rename(src, dst)
        return
    os.link(src, dst)  # fails with FileExistsError when dst exists: atomic
    os.unlink(src)


def exchange(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """Swap two paths atomically (Linux renameat2 RENAME_EXCHANGE); False where that is not available."""
    return _renameat2(Path(a), Path(b), 2)


def publish(tmp: str | os.PathLike, path: str | os.PathLike, *, overwrite: bool) -> Path:
    """Rename a finished temporary file or folder to ``path``.

    With ``overwrite`` an existing file is replaced atomically (a folder is swapped in and the old one
    removed). Without it the rename refuses to replace anything: when ``path`` appeared while this run was
    writing (another run to the same output), the temporary is removed and OutputExistsError says so.
    """
    tmp, path = Path(tmp), Path(path)
    os.chmod(tmp, DIR_MODE if tmp.is_dir() else FILE_MODE)
    try:
        if not overwrite:
            rename_noreplace(tmp, path)
        elif tmp.is_dir() and path.is_dir():
            if not exchange(tmp, path):
                old = temp_dir(path)
                os.rename(path, old / path.name)
                os.rename(tmp, path)
                tmp = old
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except FileExistsError:
        _discard(tmp)
        raise OutputExistsError(f"{path} appeared while this run was writing it (another run to the same output?); "
                                "it was left as it is and this run's output was discarded; pass --overwrite to "
                                "replace it") from None
    except BaseException:
        _discard(tmp)
        raise
    return path


def _discard(tmp: Path) -> None:
    if tmp.is_dir() and not tmp.is_symlink():
        shutil.rmtree(tmp, ignore_errors=True)
    else:
        tmp.unlink(missing_ok=True)


def free_bytes(path: str | os.PathLike) -> int | None:
    """Bytes free to this user on the file system holding ``path`` (or its nearest existing parent)."""
    path = Path(path)
    for candidate in (path, *path.parents):
        if candidate.exists():
            stats = os.statvfs(candidate)
            return stats.f_bavail * stats.f_frsize
    return None


def _named(exc: OSError, path: Path) -> OSError:
    """``exc`` about ``path`` (the final name), not the temporary one the write was going to."""
    return OSError(exc.errno, exc.strerror or str(exc), str(path))


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it to ``path``, else delete it.

    A failed write (a full disk) raises ``OSError`` naming ``path`` and leaves no temporary behind.
    """
    path = Path(path)
    tmp = temp_file(path)
    try:
        yield tmp
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        if exc.filename not in (None, str(tmp)):  # about another file (a source that could not be read)
            raise
        raise _named(exc, path) from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary folder beside ``path``; on success it becomes ``path`` (which must not exist)."""
    path = Path(path)
    tmp = temp_dir(path)
    try:
        yield tmp
        publish(tmp, path, overwrite=False)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if exc.filename is not None and not str(exc.filename).startswith(str(tmp)):
            raise
        raise _named(exc, path) from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path``, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def write_json(path: str | os.PathLike, data: dict) -> Path:
    """Write ``data`` as indented JSON, atomically (NumPy scalars, tuples, sets and paths included)."""
    return write_text(path, json.dumps(data, indent=2, sort_keys=False, default=_json_default) + "\n")


def _json_default(value):
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, (set, tuple)):
        return list(value)
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    raise TypeError(f"cannot write {type(value).__name__} as JSON")



def read_float_image(path: str | os.PathLike, what: str, hint: str) -> np.ndarray:
    """A finite float32 (H, W, 3) array from a ``.npy`` file; UserError naming the problem otherwise.

    Args:
        what: what the file holds (``average image``), and ``hint``: how to get one, for the message when
            it is missing.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"no {what} at {path}: {hint}")
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot read {path}: {str(exc).splitlines()[0]}") from None
    if not isinstance(array, np.ndarray):
        raise UserError(f"{path}: expected a .npy array, got an archive of {len(array.files)} arrays")
    if array.ndim != 3 or array.shape[2] != 3 or array.dtype.kind != "f" or not np.isfinite(array).all():
        raise UserError(f"{path}: expected a finite float (H, W, 3) array, got {array.dtype} {array.shape}")
    return array.astype(np.float32)
