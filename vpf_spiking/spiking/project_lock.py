"""One process at a time in a compiled standalone project: an exclusive ``flock`` on ``<project>.lock``.

A standalone project is one folder per network structure, shared by every process, and its
binary writes its results into that folder; two processes running it at once would read each
other's results.  The lock is taken at a project's first build and kept until the network is
released; a second process waits for it, saying so.  It belongs to the open file, so a killed
process leaves no stale lock.  Without ``fcntl`` (not POSIX) there is no lock.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX
    fcntl = None


class ProjectLock:
    """Hold the lock of the project folder ``directory`` (waits while another process holds it)."""

    def __init__(self, directory):
        self.fd = None
        if fcntl is None:
            return
        directory = Path(directory)
        directory.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(directory.parent / f"{directory.name}.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"waiting for another process that is using the compiled project {directory} ...",
                  file=sys.stderr, flush=True)
            fcntl.flock(fd, fcntl.LOCK_EX)
        self.fd = fd

    def release(self):
        if self.fd is not None:
            os.close(self.fd)  # closing the descriptor releases the flock
            self.fd = None
