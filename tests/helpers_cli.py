"""Shared helpers for tests that drive the command-line entry points."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run_cli(module: str, *args: str, cwd: Path, timeout: float = 600, extra_env: dict | None = None) -> subprocess.CompletedProcess:
    """Run ``python -m module args...`` in ``cwd`` and capture its output."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **(extra_env or {})}
    return subprocess.run(
        [sys.executable, "-m", module, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
