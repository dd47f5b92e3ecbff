"""The project's one exception type for problems the user can fix."""
from __future__ import annotations

import os


class SidFtError(Exception):
    """A problem the user can fix: a bad file, a missing checkpoint, a wrong ratio.

    ``path`` names the file or folder concerned (may be None for a problem with
    no single file), ``reason`` says what is wrong with it.  ``str(err)`` is one
    line, ``"<path>: <reason>"``, which the scripts print as is.
    """

    def __init__(self, path: str | os.PathLike | None, reason: str):
        self.path = None if path is None else os.fspath(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}" if self.path is not None else reason)
