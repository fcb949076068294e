"""Shared helpers for tests that drive the command-line entry points."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


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
