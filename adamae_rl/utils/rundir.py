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


# What a training run writes into its directory. Not claimed: Hydra's train.log (appended to, not
# rewritten) and the lock file, which a live run holding the directory owns (RunDirLock names it).
RUN_FILES = ("config.yaml", "overrides.yaml", "summary.json", "metrics.jsonl")
RUN_FOLDERS = ("checkpoints", "tb")


def claim_run_dir(run_dir: str | Path) -> None:
    """Make ``run_dir``'s run files the trainer's, refusing a folder that holds others' files of
    those names (a ``config.yaml`` of your own, say).

    A run directory with no record of the trainer's files whose ``config.yaml`` is a training
    config is adopted, so that it resumes.

    Raises:
        OutputError: naming the first foreign file.
    """
    from adamae_rl.utils.files import OutputDir

    out = OutputDir(run_dir, "train", advice="choose another run_dir=... or move the file away")
    if not out.record.exists() and _is_run_config(Path(run_dir) / "config.yaml"):
        out.force = True  # an earlier run of this toolkit: its files are the trainer's
    out.claim(*RUN_FILES)
    for folder in RUN_FOLDERS:
        out.claim_folder(folder)


def _is_run_config(path: Path) -> bool:
    try:
        import yaml

        cfg = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, yaml.YAMLError):
        return False
    return isinstance(cfg, dict) and {"trainer", "model", "policy"} <= set(cfg)
