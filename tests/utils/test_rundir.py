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


def test_run_dir_never_takes_foreign_run_files(tmp_path: Path) -> None:
    from adamae_rl.errors import OutputError
    from adamae_rl.utils.rundir import claim_run_dir

    (tmp_path / "config.yaml").write_text("my: own settings\n")
    with pytest.raises(OutputError, match=r"config.yaml exists and was not written by train; choose another run_dir=... or move the file away"):
        claim_run_dir(tmp_path)
    assert (tmp_path / "config.yaml").read_text() == "my: own settings\n"
    legacy = tmp_path / "old_run"  # a run from before the record: adopted, so it resumes
    legacy.mkdir()
    (legacy / "config.yaml").write_text("trainer: {}\nmodel: {}\npolicy: {}\n")
    (legacy / "checkpoints").mkdir()
    (legacy / "checkpoints" / "last.pt").write_bytes(b"")
    claim_run_dir(legacy)
    claim_run_dir(legacy)
    other = tmp_path / "other"
    (other / "checkpoints").mkdir(parents=True)
    (other / "checkpoints" / "mine.pt").write_bytes(b"")
    with pytest.raises(OutputError, match="checkpoints exists and was not written by train"):
        claim_run_dir(other)
