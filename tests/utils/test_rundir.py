"""One run per run directory."""

from __future__ import annotations

from pathlib import Path

import pytest

from adamae_rl.utils.rundir import RunDirBusyError, RunDirLock


def test_lock_is_exclusive_and_released(tmp_path: Path) -> None:
    with RunDirLock(tmp_path / "run"):
        with pytest.raises(RunDirBusyError, match=r"another run \(pid \d+\) is using .*run"):
            RunDirLock(tmp_path / "run").acquire()
    RunDirLock(tmp_path / "run").acquire().release()  # free again once released
