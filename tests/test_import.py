"""Importing the package leaves the process as it found it."""

from __future__ import annotations

import subprocess
import sys

import pytest

CHECK = """
import multiprocessing as mp
{setup}
before = mp.get_start_method(allow_none=True)
import adamae_rl
after = mp.get_start_method(allow_none=True)
assert before == after, (before, after)
print(after)
"""


@pytest.mark.parametrize("setup, expected", [("", "None"), ("mp.set_start_method('forkserver')", "forkserver")])
def test_import_keeps_the_multiprocessing_start_method(setup, expected):
    """TorchRL's import sets "spawn" globally; importing adamae_rl puts the caller's setting back."""
    result = subprocess.run([sys.executable, "-c", CHECK.format(setup=setup)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == expected
