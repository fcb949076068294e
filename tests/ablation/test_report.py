"""The ablation table: rows grouped over seeds, mean ± standard error, memory kind in the header, chance
level with its standard error, notes."""

from __future__ import annotations

from adamae_rl.ablation.runner import expand_grid
from adamae_rl.ablation.report import markdown_table


def _row(cell, top1: float, resumed: bool = False, status: str = "done") -> dict:
    return {
        "case": cell.case, "cell": cell.name, "seed": cell.seed, "status": status, "effective_mask_ratio": 0.75,
        "top1": top1, "top5": 0.9, "random_init_top1": None, "random_init_top5": None, "peak_memory_mib": 800.0,
        "memory_kind": "CPU peak RSS", "step_time_ms": 300.0, "fg_enrichment": 1.5, "resumed": resumed,
        "num_classes": 8, "val_clips": 256, "final_loss_recon": 0.02,
    }


def test_table_averages_seeds_and_flags_resumed_and_unfinished_cells() -> None:
    grid = {"name": "g", "cells": [{"case": "a", "overrides": ["policy=random"]}, {"case": "b", "overrides": ["policy=tube"]}]}
    cells = expand_grid(grid, [0, 1])
    assert [c.row for c in cells] == [0, 0, 1, 1]
    rows = [_row(cells[0], 0.2), _row(cells[1], 0.4, resumed=True), _row(cells[2], 0.5), _row(cells[3], 0.5, status="failed")]
    rows[0]["random_init_top1"], rows[0]["random_init_top5"] = 0.1, 0.6
    table = markdown_table(cells, rows, "T", "budget line")
    assert ("| case | mask ratio | top-1 (%) | top-5 (%) | peak memory (MiB, CPU peak RSS) | step time (ms) | fg enrichment |"
            " held-out loss |") in table
    # top-1 0.2 and 0.4 over two seeds: mean 30.0, standard error sd / sqrt(2) = 14.14 / 1.414 = 10.0
    assert "| a † | 0.750 | 30.0 ± 10.0 | 90.0 ± 0.0 | 800 ± 0 | 300 ± 0 | 1.50 ± 0.00 | 0.0200 ± 0.0000 |" in table
    assert "| b (incomplete: s1 failed) | 0.750 |" in table
    assert "| random init (no pre-training) | – | 10.0 | 60.0 | – | – | – | – |" in table
    # chance 1/8 on 256 clips: sqrt(0.125 * 0.875 / 256) = 2.07 points; mean of all top-1 figures 0.34 -> 2.96
    assert ("Chance: 12.5% (8 classes). Clip-sampling standard error of one top-1 on 256 validation clips: "
            "2.1 points at chance, 3.0 at 34.0%.") in table
    assert table.rstrip().endswith("† resumed after an interruption: its peak memory is that of the resumed process only.")
    assert "budget line" in table


def test_budget_line_names_the_probe_pooling_and_label_set() -> None:
    from adamae_rl.ablation.report import budget_line

    cells = expand_grid({"name": "g", "cells": [{"case": "a", "overrides": []}]}, [0, 1, 2])
    cfg = {"budget": {"max_steps": 200, "batch_size": 16}, "seeds": [0, 1, 2], "out": "/nonexistent",
           "eval": {"protocol": "probe", "steps": 100, "batch_size": 16, "train_clips": 512, "val_clips": 512}}
    rows = [{"probe_pool": "time", "label": "direction", "num_classes": 8}]
    line = budget_line(cfg, cells, rows, 60.0)
    assert "over all tokens, per-temporal-slice mean (spatial mean of each slice, concatenated)" in line
    assert "(labels: direction, 8 classes)" in line and "(mean ± standard error over seeds)" in line
    rows[0]["probe_pool"] = "mean"
    assert "over all tokens, mean;" in budget_line(cfg, cells, rows, 60.0)
