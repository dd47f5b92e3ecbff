"""Crash-safe file writing: a file is either the old one or the complete new one, never half of one.

Files come out with the permissions an ordinary ``open(path, "w")`` would give
them: ``0o666`` less the process's umask (``tempfile.mkstemp`` alone would leave
every file ``0o600``, unreadable by colleagues, web servers or the next job under
another account).
"""
from __future__ import annotations

import os
import tempfile
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

_UMASK_LOCK = threading.Lock()


def current_umask() -> int:
    """The process's umask, e.g. ``0o022``.

    Read from ``/proc/self/status`` (Linux 4.7+) without touching it; elsewhere it is
    read the only portable way, by setting it and putting it back, under a lock so
    that no other thread of ours sees or creates files under the temporary value.
    """
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    with _UMASK_LOCK:
        old = os.umask(0o077)
        os.umask(old)
    return old


def default_file_mode() -> int:
    """The mode ``open(path, "w")`` gives a new file now: ``0o666 & ~umask``."""
    return 0o666 & ~current_umask()


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a hidden temporary path beside ``path``; rename it over ``path`` when the block succeeds.

    The temporary file is removed when the block raises (or is interrupted), so an
    interrupted run leaves neither a half-written ``path`` nor a stray temporary file.
    Before the rename the file gets :func:`default_file_mode` (the writer in the
    block may have replaced the temporary file, so this is done last).
    """
    path = Path(path)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.chmod(tmp, default_file_mode())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_bytes(path: str | os.PathLike, data: "bytes | memoryview", fsync: bool = False) -> None:
    """Write ``data`` (any bytes-like object, e.g. a uint8 array) to ``path`` atomically.

    The rename alone protects against a killed process; ``fsync=True`` also flushes
    the data to disk before the rename (against power loss), at the cost of a disk sync.
    """
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(data)
        if fsync:
            f.flush()
            os.fsync(f.fileno())


def write_text(path: str | os.PathLike, text: str, fsync: bool = False) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically (see :func:`write_bytes`)."""
    write_bytes(path, text.encode("utf-8"), fsync=fsync)
