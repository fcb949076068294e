"""``python -m adamae_rl.ablate``: cells as subprocesses, outputs, skipping finished cells, resuming."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from helpers_cli import run_cli

from adamae_rl.ablate import compose_config, split_argv
from adamae_rl.ablation.runner import cell_name, eval_command, expand_grid, train_command

GRID = """\
name: two
title: Two cells
base: [mask_ratio=0.75]
cells:
  - {case: random, overrides: [policy=random]}
  - {case: adaptive, overrides: [policy=adaptive]}
"""
# Smoke-sized cells: 4 steps of 4 clips on 32 px, 8-frame clips; a probe on 32 + 16 clips.
SMOKE = ["budget.max_steps=4", "budget.batch_size=4", "budget.eval_batches=1", "budget.ckpt_every=2",
         "eval.train_clips=32", "eval.val_clips=16", "progress=false", "--", "experiment=smoke"]


def test_default_grid_is_the_mask_type_table() -> None:
    cfg = compose_config([])
    cells = expand_grid(cfg["grid"], cfg["seeds"])
    assert [(c.case, c.overrides) for c in cells] == [
        ("tube", ["policy=tube", "mask_ratio=0.75"]), ("tube", ["policy=tube", "mask_ratio=0.90"]),
        ("random", ["policy=random", "mask_ratio=0.75"]), ("random", ["policy=random", "mask_ratio=0.90"]),
        ("frame", ["policy=frame", "mask_ratio=0.875"]), ("adaptive", ["policy=adaptive", "mask_ratio=0.95"]),
    ]
    assert cfg["out"] == "ablations/mask_type"


@pytest.mark.parametrize("grid", ["ratios", "sampler", "decoder", "objective"])
def test_other_grids_compose(grid: str) -> None:
    cfg = compose_config([f"grid={grid}", "seeds=[0,1]"])
    cells = expand_grid(cfg["grid"], cfg["seeds"])
    assert len(cells) == 2 * len(cfg["grid"]["cells"]) and len({c.name for c in cells}) == len(cells)


def test_unknown_budget_background_lists_the_known_ones() -> None:
    with pytest.raises(ValueError, match=r"^budget.background must be one of smooth, fine or null; got 'plain'$"):
        compose_config(["budget.background=plain"])
    assert compose_config(["budget.background=null"])["budget"]["background"] is None


def test_commands_carry_the_budget(tmp_path: Path) -> None:
    cfg = compose_config(["seeds=[3]"], ["trainer.device=cpu"])
    cell = expand_grid(cfg["grid"], cfg["seeds"])[0]
    cmd = train_command(cell, cfg["budget"], cfg["train_overrides"], tmp_path / cell.name)
    assert cmd[1:3] == ["-m", "adamae_rl.train"]
    for arg in ("policy=tube", "trainer.max_steps=400", "trainer.batch_size=16", "optim.blr=0.048", "trainer.seed=3",
                "trainer.precision=fp32",
                "trainer.resume=auto", "trainer.device=cpu", f"run_dir={tmp_path / cell.name}"):
        assert arg in cmd
    assert "data.background=fine" in cmd  # the benchmark's background (ablate.yaml budget.background)
    # Overrides that choose the background or other data keep theirs; a null budget leaves the training config's.
    for overrides, expected in ((["data.background=smooth"], []), (["data=video", "data.train_list=l.txt"], []),
                                (["data=synthetic"], ["data.background=fine"])):
        mine = train_command(cell, cfg["budget"], overrides, tmp_path)
        assert [a for a in mine if a.startswith("data.background")] == (overrides[:1] if "background" in overrides[0] else expected)
    assert not any(a.startswith("data.background") for a in train_command(cell, {**cfg["budget"], "background": None}, [], tmp_path))
    assert "--random-init" in eval_command(tmp_path, cfg["eval"], random_init=True)
    assert split_argv(["a=1", "--", "b=2"]) == (["a=1"], ["b=2"])
    assert cell_name(["policy=tube", "mask_ratio=0.75"], 0) == "policy-tube_mask_ratio-0.75_s0"


@pytest.mark.slow
def test_ablation_runs_skips_and_reruns_only_missing_cells(tmp_path: Path) -> None:
    grid, out = tmp_path / "grid.yaml", tmp_path / "abl"
    grid.write_text(GRID)
    args = [f"grid_file={grid}", f"out={out}", *SMOKE]

    first = run_cli("adamae_rl.ablate", *args, cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    for name in ("ablation.md", "ablation.csv", "ablation_diff.csv", "ablation.tex", "ablation.png", "ablation.pdf"):
        assert (out / name).is_file(), name
    table = (out / "ablation.md").read_text()
    # one seed: the difference from the baseline (the random row) has no interval
    assert "### Difference from the baseline: random" in table and "(1 seed: CI undefined)" in table
    assert "\\toprule" in (out / "ablation.tex").read_text()
    assert "| case | mask ratio | top-1 (%) | top-5 (%) | peak memory (MiB, CPU peak RSS) |" in table
    assert "| random | 0.750 |" in table and "| adaptive | 0.750 |" in table and "random init (no pre-training)" in table
    assert "Budget per cell: pre-training 4 steps × batch 4" in table
    rows = list(csv.DictReader((out / "ablation.csv").open()))
    assert [r["case"] for r in rows] == ["random", "adaptive"]
    for row in rows:
        assert 0 <= float(row["top1"]) <= float(row["top5"]) <= 1 and float(row["peak_memory_mib"]) > 0

    cells = {r["case"]: out / "cells" / r["cell"] for r in rows}
    stamps = {case: (d / "summary.json").stat().st_mtime_ns for case, d in cells.items()}
    evals = {case: (d / "eval.json").stat().st_mtime_ns for case, d in cells.items()}

    # A rerun finds both cells finished: no trainer, no evaluation.
    second = run_cli("adamae_rl.ablate", *args, cwd=tmp_path)
    assert second.returncode == 0, second.stderr[-3000:]
    assert second.stderr.count("finished before (summary.json + eval.json present), skipped") == 2
    assert "starting training" not in second.stderr and "evaluating" not in second.stderr
    for case, d in cells.items():
        assert (d / "summary.json").stat().st_mtime_ns == stamps[case]
        assert (d / "eval.json").stat().st_mtime_ns == evals[case]

    # A cell killed before it finished: only that one runs again (resuming from its checkpoint).
    (cells["adaptive"] / "summary.json").unlink()
    (cells["adaptive"] / "eval.json").unlink()
    third = run_cli("adamae_rl.ablate", *args, cwd=tmp_path)
    assert third.returncode == 0, third.stderr[-3000:]
    assert third.stderr.count("skipped") == 1
    assert f"cell {cells['adaptive'].name}: resuming training" in third.stderr
    assert (cells["random"] / "summary.json").stat().st_mtime_ns == stamps["random"]
    assert (cells["adaptive"] / "summary.json").is_file() and (cells["adaptive"] / "eval.json").is_file()
    assert json.loads((cells["adaptive"] / "cell.json").read_text())["resumed"] is True
    assert "† resumed after an interruption" in (out / "ablation.md").read_text()


def test_bad_grid_is_one_readable_line(tmp_path: Path) -> None:
    from adamae_rl import ablate

    grid = tmp_path / "empty.yaml"
    grid.write_text("name: empty\ncells: []\n")
    with pytest.raises(SystemExit) as stop:
        ablate.main([f"grid_file={grid}", f"out={tmp_path / 'o'}"])
    assert stop.value.code == 2


def test_an_evaluation_pooled_otherwise_is_not_reused(tmp_path: Path) -> None:
    from adamae_rl.ablation.runner import evaluated, requested_probe_pool

    eval_cfg = {"protocol": "probe", "train_clips": 8, "val_clips": 8, "steps": 1, "extra": ["--probe-pool", "grid"]}
    assert requested_probe_pool(eval_cfg) == "grid"
    assert requested_probe_pool({**eval_cfg, "extra": ["--probe-pool=time"]}) == "time"
    assert requested_probe_pool({**eval_cfg, "extra": []}) == "mean"  # the probe's own default
    report = {"pretrained": {"probe": {"settings": {"pool": "time"}}}, "train_clips": 8, "val_clips": 8, "random_init": {}}
    (tmp_path / "eval.json").write_text(json.dumps(report))
    assert not evaluated(tmp_path, eval_cfg, random_init=True)
    report["pretrained"]["probe"]["settings"]["pool"] = "grid"
    (tmp_path / "eval.json").write_text(json.dumps(report))
    assert evaluated(tmp_path, eval_cfg, random_init=True)


def test_out_never_clobbers_foreign_files(tmp_path: Path) -> None:
    from adamae_rl.ablate import claim_outputs
    from adamae_rl.errors import OutputError

    (tmp_path / "ablation.md").write_text("my notes")
    cfg = compose_config([f"out={tmp_path}"])
    with pytest.raises(OutputError, match="ablation.md exists and was not written by ablate; pass force=true"):
        claim_outputs(cfg)
    claim_outputs({**cfg, "force": True})
    claim_outputs(cfg)  # recorded now: a rerun needs no force
    grid = tmp_path / "g" / "grid.yaml"
    grid.parent.mkdir()
    grid.write_text(GRID)
    with pytest.raises(OutputError, match="holds the input"):
        claim_outputs({**cfg, "out": str(grid.parent), "grid_file": str(grid)})


def test_cell_overrides_must_be_a_list() -> None:
    from adamae_rl.errors import ConfigError

    grid = {"name": "g", "cells": [{"case": "a", "overrides": "policy=random"}]}
    with pytest.raises(ConfigError, match="grid cell 0 \\(a\\): overrides must be a list of KEY=VALUE strings"):
        expand_grid(grid, [0])  # a string used to become one override per character


def test_a_baseline_that_names_no_row_fails_before_any_training() -> None:
    from adamae_rl.errors import ConfigError

    assert compose_config([])["report"]["baseline"] == "auto"
    assert compose_config(['report.baseline="random r=0.9"'])["report"]["baseline"] == "random r=0.9"
    with pytest.raises(ConfigError, match="report.baseline='nope' names no grid row; give auto, none or one of"):
        compose_config(["report.baseline=nope"])
