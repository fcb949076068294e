"""The custom-policy tutorial's example: the file the tutorial shows, trained through the CLI."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from helpers_cli import REPO, run_cli

EXAMPLE = REPO / "examples" / "custom_policy.py"


def test_tutorial_shows_the_example_file() -> None:
    # The page includes the file itself when the site is built, so what it shows is what runs here.
    page = (REPO / "docs" / "tutorials" / "custom-policy.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", page, flags=re.S)
    assert '--8<-- "examples/custom_policy.py"\n' in blocks


@pytest.mark.slow
def test_custom_policy_trains_through_the_cli(tmp_path: Path) -> None:
    (tmp_path / "custom_policy.py").write_text(EXAMPLE.read_text(encoding="utf-8"), encoding="utf-8")
    result = run_cli("adamae_rl.train", "experiment=smoke", "imports=[custom_policy]", "policy=texture", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(next(tmp_path.glob("runs/texture-*/summary.json")).read_text())
    assert summary["policy"] == "texture"
    assert summary["steps"] == 12
    assert summary["effective_mask_ratio"] == pytest.approx(0.75)
