"""Crash-safe file writing: a file is either the old one or the complete new one, never half of one."""
from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a hidden temporary path beside ``path``; rename it over ``path`` when the block succeeds.

    The temporary file is removed when the block raises (or is interrupted), so an
    interrupted run leaves neither a half-written ``path`` nor a stray temporary file.
    """
    path = Path(path)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
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
