"""Third-party plug-ins of every kind, published through entry points, used from the command line."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from helpers_cli import run_cli

PLUGINS = Path(__file__).parent / "plugins"  # a module plus its dist-info with entry_points.txt
WITH_PLUGINS = {"PYTHONPATH": os.pathsep.join(filter(None, [str(PLUGINS), os.environ.get("PYTHONPATH")]))}


@pytest.mark.slow
def test_entry_point_model_objective_and_data_source_from_the_command_line(tmp_path: Path) -> None:
    result = run_cli(
        "adamae_rl.train", "experiment=smoke", "model=narrow_tiny", "objective=scaled_adamae", "+objective.scale=3.0",
        "data=noise", "+data.num_clips=32", "trainer.max_steps=4", "run_dir=run",
        cwd=tmp_path, extra_env=WITH_PLUGINS,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert (summary["model"], summary["objective"], summary["data"]) == ("narrow_tiny", "scaled_adamae", "noise")
    metrics = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert any(m.get("train/scale") == 3.0 for m in metrics)  # the plug-in objective ran, with its option
    log = (tmp_path / "run" / "train.log").read_text()
    assert "model=narrow_tiny" in log and "data=noise" in log

    # A plug-in's options are checked against its own signature, before any work.
    bad = run_cli("adamae_rl.train", "experiment=smoke", "data=noise", "+data.num_clip=32", "run_dir=bad",
                  cwd=tmp_path, extra_env=WITH_PLUGINS)
    assert bad.returncode == 2 and "data.num_clip: unknown option" in bad.stderr and "num_clips" in bad.stderr
    assert not (tmp_path / "bad").exists()


def test_unknown_plugin_names_list_the_known_ones(tmp_path: Path) -> None:
    from helpers_cli import smoke_config

    from adamae_rl.schema import ConfigError, validate_config

    cfg = smoke_config()
    cfg["model"]["preset"] = "nope"
    with pytest.raises(ConfigError, match=r"model.preset: unknown model preset 'nope'; known model presets: tiny, vit_b"):
        validate_config(cfg)
