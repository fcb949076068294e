"""One run per run directory: an advisory lock that a killed process never leaves stuck.

The lock is ``fcntl.flock`` on ``RUN_DIR/.lock``: the kernel drops it when the holding process
exits, however it exits (even ``kill -9``), so no stale lock can block the next run. The file
holds the holder's pid, only to name it in the error.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from adamae_rl.errors import UserError

log = logging.getLogger("adamae_rl.rundir")

LOCK_NAME = ".lock"


class RunDirBusyError(UserError, RuntimeError):
    """Another live process holds the run directory."""


class RunDirLock:
    """Exclusive lock on a run directory, held from :meth:`acquire` until :meth:`release`.

    Args:
        run_dir: the directory (created if missing).
    """

    def __init__(self, run_dir: str | Path) -> None:
        self.run_dir = Path(run_dir)
        self._handle = None

    def acquire(self) -> RunDirLock:
        try:
            import fcntl
        except ImportError:  # not POSIX: no lock, but say so once
            log.warning("no file locking on this platform: nothing stops two runs sharing %s", self.run_dir)
            return self
        self.run_dir.mkdir(parents=True, exist_ok=True)
        handle = open(self.run_dir / LOCK_NAME, "a+", encoding="utf-8")
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            handle.close()
            raise RunDirBusyError(
                f"another run (pid {holder}) is using {self.run_dir}; wait for it to finish or choose another run_dir=..."
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        self._handle = handle
        return self

    def release(self) -> None:
        if self._handle is not None:
            self._handle.close()  # closing the descriptor drops the flock
            self._handle = None

    def __enter__(self) -> RunDirLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
