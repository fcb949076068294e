"""Every command answers ``--help`` with its options and an example, and exits 0."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers_cli import REPO, run_cli

PACKAGE = REPO / "adamae_rl"


def commands() -> list[str]:
    """Every module of the package that runs as ``python -m``."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if 'if __name__ == "__main__"' in path.read_text(encoding="utf-8"):
            found.append(".".join(path.relative_to(REPO).with_suffix("").parts))
    return found


def test_the_known_commands_are_found() -> None:
    assert {"adamae_rl.train", "adamae_rl.finetune", "adamae_rl.visualize", "adamae_rl.ablate"} <= set(commands())


@pytest.mark.slow
@pytest.mark.parametrize("module", commands())
def test_help(module: str, tmp_path: Path) -> None:
    result = run_cli(module, "--help", cwd=tmp_path, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    text = result.stdout
    assert "Traceback" not in text + result.stderr
    assert "python -m adamae_rl" in text, f"{module} --help shows no example"
    assert "--" in text or "=" in text, f"{module} --help lists no option"
    assert not list(tmp_path.iterdir()), f"{module} --help wrote files"
