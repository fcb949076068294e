"""Every tool runs from the checkout as ``python -m tools.NAME`` and answers ``--help`` with an example."""

from __future__ import annotations

import pytest
from helpers_cli import REPO, run_cli

TOOLS = sorted(
    f"tools.{path.stem}" for path in (REPO / "tools").glob("*.py")
    if 'if __name__ == "__main__"' in path.read_text(encoding="utf-8")
)


def test_the_tools_are_found() -> None:
    assert {"tools.heldout_curve", "tools.bench_compare"} <= set(TOOLS)


@pytest.mark.slow
@pytest.mark.parametrize("module", TOOLS)
def test_help(module: str) -> None:
    result = run_cli(module, "--help", cwd=REPO, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Traceback" not in result.stdout + result.stderr
    assert f"python -m {module}" in result.stdout, f"{module} --help shows no example"
