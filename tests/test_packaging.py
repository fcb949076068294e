"""The wheel holds everything a run needs, installs into a fresh environment and trains there.

Slow: it builds the wheel, makes a virtual environment, installs torch and the wheel's
dependencies into it from the package index, and runs the smoke experiment from a folder outside
the repository, so that nothing is imported from the source tree.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from helpers_cli import REPO

pytestmark = pytest.mark.slow

# The torch build the README's quick start installs.
TORCH = "torch==2.13.0"


def _run(args: list[str], cwd: Path, timeout: float = 900, env: dict | None = None) -> subprocess.CompletedProcess:
    result = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)
    assert result.returncode == 0, f"{' '.join(args)}\n{result.stdout[-3000:]}\n{result.stderr[-5000:]}"
    return result


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if importlib.util.find_spec("build") is None:
        pytest.skip('the build frontend is not installed (pip install -e ".[dev]")')
    out = tmp_path_factory.mktemp("dist")
    _run([sys.executable, "-m", "build", "--wheel", "--outdir", str(out), str(REPO)], cwd=out)
    (path,) = out.glob("adamae_rl-*.whl")
    return path


def _version() -> str:
    """pyproject.toml's version (read as text: tomllib is Python 3.11+, the package supports 3.10)."""
    match = re.search(r'^version = "([^"]+)"', (REPO / "pyproject.toml").read_text(encoding="utf-8"), flags=re.M)
    assert match, "pyproject.toml has no version"
    return match.group(1)


def test_wheel_holds_the_config_trees_and_type_marker(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {p.relative_to(REPO).as_posix() for tree in ("configs", "configs_ablate")
               for p in (REPO / "adamae_rl" / tree).rglob("*.yaml")}
    assert shipped and shipped <= names, sorted(shipped - names)
    assert "adamae_rl/py.typed" in names
    assert not any(n.startswith(("tests/", "docs/", "examples/")) for n in names)
    assert wheel.name.startswith(f"adamae_rl-{_version()}-")


def test_wheel_installs_in_a_fresh_venv_and_runs_the_smoke_experiment(wheel: Path, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    try:
        _run([sys.executable, "-m", "venv", str(venv)], cwd=tmp_path)
    except AssertionError as err:
        if "ensurepip" in str(err):  # Debian's python3 without python3-venv
            pytest.skip("this Python cannot create virtual environments with pip (ensurepip is missing)")
        raise
    python = venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    env.update(OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    _run([*pip, TORCH], cwd=tmp_path, env=env)
    _run([*pip, str(wheel)], cwd=tmp_path, env=env)

    work = tmp_path / "work"  # outside the repository: only the installed package can be imported
    work.mkdir()
    probe = _run([str(python), "-c", "import adamae_rl; print(adamae_rl.__file__); print(adamae_rl.__version__)"],
                 cwd=work, env=env).stdout.split()
    assert Path(probe[0]).resolve().is_relative_to(venv.resolve())
    assert probe[1] == _version()

    _run([str(python), "-m", "adamae_rl.train", "experiment=smoke", "trainer.progress=false"], cwd=work, env=env)
    (summary_path,) = work.glob("runs/*/summary.json")
    summary = json.loads(summary_path.read_text())
    assert summary["steps"] == 12
    assert summary["final_loss_recon"] is not None
