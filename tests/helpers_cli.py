"""Shared helpers for tests that drive the entry points: CLI subprocesses and smoke runs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def smoke_config(*overrides: str) -> dict:
    """The shipped training config with the smoke preset (32 px, 8 frames, 12 steps) plus overrides."""
    from hydra import compose, initialize_config_dir

    from adamae_rl.config import plain
    from adamae_rl.train import CONFIG_DIR

    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return plain(compose("config", overrides=["experiment=smoke", *overrides]))


def smoke_run(run_dir: Path, *overrides: str) -> Path:
    """Train a smoke run in-process into ``run_dir``; returns ``run_dir``."""
    from adamae_rl.train import run

    run(smoke_config(*overrides), run_dir)
    return run_dir


def cli_env(extra_env: dict | None = None) -> dict:
    """Environment for a CLI subprocess (see ``run_cli``)."""
    # One intra-op thread: these runs are tiny, and spinning OpenMP threads on a busy 2-core
    # machine made them many times slower.
    return {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1", **(extra_env or {})}


def run_cli(module: str, *args: str, cwd: Path, timeout: float = 600, extra_env: dict | None = None) -> subprocess.CompletedProcess:
    """Run ``python -m module args...`` in ``cwd`` and capture its output."""
    return subprocess.run(
        [sys.executable, "-m", module, *args], cwd=cwd, env=cli_env(extra_env), capture_output=True, text=True, timeout=timeout
    )
