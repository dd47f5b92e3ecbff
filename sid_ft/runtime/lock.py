"""One training run per train dir: a lock file that says who holds it.

``TRAIN_DIR/train.lock`` is a small JSON file (host, pid, start time, boot id,
command).  It is created atomically *with its content*: the JSON goes to a file
of a unique name first, which is then hard-linked to ``train.lock``; ``link(2)``
fails when the name exists, on local file systems and on NFS alike (open(2)'s
``O_EXCL`` needs NFSv3 and Linux 2.6 or later; the link method works on every
version), so two runs that start at the same moment cannot both win, and a
reader never sees a half-written lock.  On a file system without hard links
(some FUSE or SMB mounts) it falls back to ``O_CREAT | O_EXCL``.

A lock whose holder is gone is *stale*:

* same host, same boot, and no process with that pid: taken over with a message;
* same host, another boot id (the machine restarted): taken over with a message;
* another host: sid_ft cannot tell whether that run is alive (a node of the
  cluster may still be training), so it stops and names the holder; the user
  says ``--force-unlock`` once they know it is gone.

The lock is removed when the run ends (normally, with an error, on Ctrl-C or
SIGTERM); after ``kill -9`` or a crashed node it stays, and the rules above apply.
Re-entrant within a process: the script takes it before importing TensorFlow
(so that a second run stops within a second), and :func:`sid_ft.training.loop.train`
takes it again when called as a library.
"""
from __future__ import annotations

import json
import os
import socket
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from sid_ft.errors import SidFtError

LOCK_NAME = "train.lock"

_held: dict[str, int] = {}  # resolved lock path -> nesting depth, for this process
_held_guard = threading.Lock()


def _boot_id() -> str | None:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip() or None
    except OSError:
        return None


@dataclass
class LockHolder:
    """Who holds a train dir, as written in its lock file."""

    host: str
    pid: int
    started: str  # ISO 8601, UTC
    boot_id: str | None = None
    command: str = ""

    def describe(self) -> str:
        text = f"host {self.host}, pid {self.pid}, started {self.started}"
        return text + (f" ({self.command})" if self.command else "")

    @classmethod
    def me(cls) -> "LockHolder":
        return cls(host=socket.gethostname(), pid=os.getpid(),
                   started=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), boot_id=_boot_id(),
                   command=" ".join(sys.argv)[:500])

    @classmethod
    def parse(cls, text: str) -> "LockHolder":
        d = json.loads(text)
        return cls(host=str(d["host"]), pid=int(d["pid"]), started=str(d.get("started", "?")),
                   boot_id=d.get("boot_id"), command=str(d.get("command", "")))

    def to_json(self) -> str:
        return json.dumps(self.__dict__, indent=1) + "\n"


def pid_alive(pid: int) -> bool:
    """Whether a process with ``pid`` exists on this host (also one of another user)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stale_reason(holder: LockHolder) -> str | None:
    """Why ``holder`` certainly no longer runs (None when it may still run)."""
    if holder.host != socket.gethostname():
        return None
    mine = _boot_id()
    if holder.boot_id and mine and holder.boot_id != mine:
        return "this host has restarted since"
    if not pid_alive(holder.pid):
        return f"no process {holder.pid} runs on this host"
    return None


class TrainDirLock:
    """Hold ``TRAIN_DIR/train.lock`` for the duration of a ``with`` block (see the module docstring).

    ``force``: take the lock whoever holds it (``--force-unlock``), with a message.
    ``report``: where messages about taken-over locks go.
    """

    def __init__(self, train_dir: str | os.PathLike, force: bool = False,
                 report: Callable[[str], None] = print):
        self.train_dir = Path(train_dir)
        self.path = self.train_dir / LOCK_NAME
        self.force = force
        self.report = report
        self._key = ""

    # -- taking and giving back

    def acquire(self) -> "TrainDirLock":
        self.train_dir.mkdir(parents=True, exist_ok=True)
        self._key = str(self.path.resolve())
        with _held_guard:
            if self._key in _held:
                _held[self._key] += 1
                return self
        me = LockHolder.me()
        for _ in range(3):
            if self._try_create(me):
                with _held_guard:
                    _held[self._key] = 1
                return self
            text, holder = self._read()
            if text is None:
                continue  # released between our attempt and the read: try again
            if holder is None:
                # unreadable or empty: not written by sid_ft's link method, or emptied by hand
                if not self.force:
                    raise SidFtError(self.path, "this train dir is locked by a lock file that cannot be read "
                                                "(not sid_ft's format); if no run uses the folder, rerun with "
                                                "--force-unlock")
                why = "--force-unlock"
            elif holder.host == me.host and holder.pid == me.pid and holder.boot_id == me.boot_id:
                why = "left by this same process"
            else:
                why = "--force-unlock" if self.force else stale_reason(holder)
                if why is None:
                    raise SidFtError(self.path, f"another run is using this train dir: {holder.describe()}. "
                                                "Wait for it, use another --train-dir, or, if that run is gone "
                                                "(e.g. its node crashed), rerun with --force-unlock")
            who = holder.describe() if holder else "unknown holder"
            self._break(text)
            self.report(f"took over the lock {self.path} of {who}: {why}")
        raise SidFtError(self.path, "could not take the train dir's lock: other runs keep taking it")

    def release(self) -> None:
        with _held_guard:
            depth = _held.get(self._key, 0)
            if depth > 1:
                _held[self._key] = depth - 1
                return
            _held.pop(self._key, None)
        if depth == 0:
            return
        _, holder = self._read()
        if holder is not None and holder.pid == os.getpid() and holder.host == socket.gethostname():
            try:
                self.path.unlink()
            except FileNotFoundError:
                pass

    def __enter__(self) -> "TrainDirLock":
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()

    # -- the file

    def _try_create(self, me: LockHolder) -> bool:
        unique = self.path.with_name(f".{LOCK_NAME}.{me.host}.{me.pid}.{threading.get_ident()}")
        fd = os.open(unique, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
        try:
            os.write(fd, me.to_json().encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(unique, self.path)
            return True
        except FileExistsError:
            return False
        except OSError:
            # NFS may report an error for a link that was made (lost reply): the link count tells
            if os.stat(unique).st_nlink == 2:
                return True
        finally:
            unique.unlink()
        return self._create_exclusive(me)  # a file system without hard links (some FUSE/SMB mounts)

    def _create_exclusive(self, me: LockHolder) -> bool:
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            return False
        try:
            os.write(fd, me.to_json().encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        return True

    def _read(self) -> tuple[str | None, LockHolder | None]:
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return None, None
        except OSError as exc:
            raise SidFtError(self.path, f"cannot read the train dir's lock: {exc.strerror or exc}") from None
        try:
            return text, LockHolder.parse(text)
        except (ValueError, KeyError, TypeError):
            return text, None

    def _break(self, seen: str | None) -> None:
        """Remove the lock file we judged stale, unless another run replaced it meanwhile."""
        aside = self.path.with_name(f".{LOCK_NAME}.stale.{socket.gethostname()}.{os.getpid()}")
        try:
            os.rename(self.path, aside)
        except FileNotFoundError:
            return  # someone else removed it
        try:
            if seen is not None and aside.read_text() != seen:
                # a new run took the lock between our read and the rename: give it back
                try:
                    os.link(aside, self.path)
                except FileExistsError:
                    pass
        finally:
            aside.unlink()
