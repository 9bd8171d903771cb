"""Atomic file writes: a failed run never leaves a half-written output behind."""
from __future__ import annotations

import errno
import os
import secrets
from pathlib import Path

from .errors import OutputError


def atomic_write_bytes(path: str | Path, data: bytes, *, mode: int = 0o600) -> Path:
    """Write ``data`` to a temporary file beside ``path``, flush it to disk, then rename
    it into place and flush the directory; on any failure the previous file is untouched
    and no temporary stays.

    The file gets ``mode`` less the process umask, as ``open()`` would create it: the
    default keeps it private (the sim's state may hold Secrets); ``mode=0o666`` gives
    what any other file the user creates gets (0644 under umask 022)."""
    p = Path(path)
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = _create_temporary(p, mode)
    except OSError as e:
        raise OutputError(describe_os_error(p, e)) from e
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, p)
        fsync_directory(p.parent)  # the rename itself is on disk only once its directory is
    except BaseException as e:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(e, OSError):
            raise OutputError(f"{p}: cannot write ({e.strerror or e})") from e
        raise
    return p


def fsync_directory(directory: str | Path) -> None:
    """Flush a directory's entries (a new or renamed file in it) to disk."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def describe_os_error(path: str | Path, e: OSError) -> str:
    """``"<path>: cannot write (<why>)"``; when a parent of ``path`` is a regular file (mkdir
    says "File exists", open "Not a directory"), it names that parent."""
    p = Path(path)
    if isinstance(e, (FileExistsError, NotADirectoryError)):
        for parent in p.parents:
            if parent.exists() or parent.is_symlink():
                if not parent.is_dir():
                    return f"{p}: cannot write (parent {parent} is not a directory)"
                break
    return f"{p}: cannot write ({e.strerror or e})"


def atomic_write_text(path: str | Path, text: str, *, mode: int = 0o600) -> Path:
    """``atomic_write_bytes`` of ``text`` in UTF-8."""
    return atomic_write_bytes(path, text.encode("utf-8"), mode=mode)


def _create_temporary(p: Path, mode: int) -> tuple[int, str]:
    """An exclusively created temporary beside ``p``, with ``mode`` less the umask
    (``tempfile.mkstemp`` always makes 0600)."""
    for _ in range(100):
        tmp = str(p.parent / f".{p.name}.{secrets.token_hex(6)}.tmp")
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), mode), tmp
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "no free temporary name", str(p.parent))
