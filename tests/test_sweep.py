"""``train -m ... run_dir=X``: every job in X/<its overrides>; the same command resumes each job."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers_cli import run_cli

from adamae_rl.errors import ConfigError
from adamae_rl.train import sweep_dir_override

SWEEP = ["-m", "experiment=smoke", "policy=random,tube", "trainer.max_steps=2", "trainer.progress=false",
         "trainer.tensorboard=false"]
JOBS = ("experiment=smoke,policy=random,trainer.max_steps=2", "experiment=smoke,policy=tube,trainer.max_steps=2")


def test_run_dir_becomes_the_sweep_dir() -> None:
    assert sweep_dir_override(["-m", "policy=a,b", "run_dir=X"]) == ["-m", "policy=a,b", "run_dir=X", "hydra.sweep.dir=X"]
    assert sweep_dir_override(["policy=a", "run_dir=X"]) == ["policy=a", "run_dir=X"]  # a single run: as given
    with pytest.raises(ConfigError, match="run_dir cannot be swept"):
        sweep_dir_override(["-m", "run_dir=a,b"])


@pytest.mark.slow
def test_sweep_honours_run_dir_and_resumes(tmp_path: Path) -> None:
    result = run_cli("adamae_rl.train", *SWEEP, "run_dir=X", cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert not (tmp_path / "multirun").exists()
    for job in JOBS:
        assert json.loads((tmp_path / "X" / job / "summary.json").read_text())["steps"] == 2
    # As if the sweep had been killed before its second job: the same command resumes.
    first = tmp_path / "X" / JOBS[0] / "checkpoints" / "last.pt"
    stamp = first.stat().st_mtime_ns
    for path in (tmp_path / "X" / JOBS[1]).rglob("*"):
        if path.is_file():
            path.unlink()
    again = run_cli("adamae_rl.train", *SWEEP, "run_dir=X", "trainer.device=cpu", cwd=tmp_path, timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    logs = again.stdout + again.stderr
    assert "already holds a finished run (2/2 steps)" in logs  # the finished job resumed, not redone
    assert first.stat().st_mtime_ns == stamp
    assert json.loads((tmp_path / "X" / JOBS[1] / "summary.json").read_text())["steps"] == 2
