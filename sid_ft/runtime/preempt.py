"""Stopping a training run the way clusters stop jobs: SIGTERM, SIGUSR1.

SLURM ends a job at its time limit or on preemption with SIGTERM (and, with
``sbatch --signal=USR1@120``, sends SIGUSR1 120 s before); Kubernetes evicts a
pod with SIGTERM and kills it ``terminationGracePeriodSeconds`` later (30 s by
default).  While :func:`stop_on_signals` is active those signals only set a flag;
the training loop reads it between steps, finishes the step it is in, saves a
checkpoint, writes a record to ``metrics.jsonl`` and returns, and the script
exits with :data:`EXIT_PREEMPTED`.  Running the same command again resumes.

Python runs signal handlers in the main thread between bytecodes, so a signal
that arrives during ``session.run`` is seen when the step returns; nothing is
cut in half.  A second signal changes nothing (the first one is already being
acted on); SIGKILL, which follows at the end of a grace period, still leaves the
previous checkpoint loadable (crash-safe saves, :mod:`sid_ft.nets.checkpoint`).
"""
from __future__ import annotations

import signal
import threading
from contextlib import contextmanager
from typing import Iterator, Sequence

EXIT_PREEMPTED = 75
"""Exit code of a run stopped by SIGTERM/SIGUSR1 after saving: ``EX_TEMPFAIL`` of sysexits.h ("try again later").

Not used by Python (1, 2), the shell (126, 127, 128+N for a signal N: SIGTERM gives 143), or
sid_ft's other exits (1 error, 2 usage, 130 Ctrl-C), so a requeue script can test it alone.
"""

STOP_SIGNALS = (signal.SIGTERM, signal.SIGUSR1)

_active: list["StopRequest"] = []  # the StopRequest of the innermost stop_on_signals block


class Stopped(Exception):
    """Raised by :func:`check` at a safe point of a long preparation (decoding, feature caching)."""


class StopRequest:
    """A flag set by a signal handler and read by the training loop.

    ``signal_name`` is ``'SIGTERM'``, ``'SIGUSR1'``... once a signal has arrived, else None.
    """

    def __init__(self) -> None:
        self.signal_name: str | None = None

    @property
    def requested(self) -> bool:
        return self.signal_name is not None

    def _handler(self, signum: int, frame: object) -> None:
        if self.signal_name is None:
            self.signal_name = signal.Signals(signum).name


@contextmanager
def stop_on_signals(signals: Sequence[int] = STOP_SIGNALS) -> Iterator[StopRequest]:
    """Within the block, ``signals`` set the yielded :class:`StopRequest` instead of ending the process.

    The previous handlers come back when the block ends.  Outside the main thread
    (where Python cannot install handlers) the flag is never set and signals keep
    their previous effect.
    """
    if threading.current_thread() is not threading.main_thread():
        yield StopRequest()
        return
    current = [getattr(signal.getsignal(s), "__self__", None) for s in signals]
    if isinstance(current[0], StopRequest) and all(c is current[0] for c in current):
        yield current[0]  # nested (the script's block around the library's): one flag for both
        return
    stop = StopRequest()
    previous = {s: signal.signal(s, stop._handler) for s in signals}
    _active.append(stop)
    try:
        yield stop
    finally:
        _active.remove(stop)
        for s, handler in previous.items():
            signal.signal(s, handler)


def check() -> None:
    """Raise :class:`Stopped` if a stop signal has arrived: for loops that prepare a run (each file decoded or
    cached is complete and kept, so the next run continues from there), where waiting for the first training
    step could outlast a grace period."""
    if _active and _active[-1].requested:
        raise Stopped(_active[-1].signal_name)


def stop_record(step: int, stop: StopRequest, checkpoint: str | None) -> dict:
    """The ``metrics.jsonl`` record of a run stopped by a signal: why, where, and what to do."""
    return {"step": step, "stopped": stop.signal_name, "checkpoint": checkpoint, "exit_code": EXIT_PREEMPTED,
            "resume": "run the same command again"}
