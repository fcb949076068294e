"""The ablation table: rows grouped over seeds, mean ± standard error, memory kind in the header, chance
level with its standard error, notes."""

from __future__ import annotations

import pytest

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


# --------------------------------------------------------------------------------------------------
# Short names, the baseline, paired differences, LaTeX and the plot
# --------------------------------------------------------------------------------------------------
MASK_TYPE = {"name": "mask_type", "cells": [
    {"case": "tube", "overrides": ["policy=tube", "mask_ratio=0.75"]},
    {"case": "tube", "overrides": ["policy=tube", "mask_ratio=0.90"]},
    {"case": "random", "overrides": ["policy=random", "mask_ratio=0.75"]},
    {"case": "random", "overrides": ["policy=random", "mask_ratio=0.90"]},
    {"case": "adaptive", "overrides": ["policy=adaptive", "mask_ratio=0.95"]},
    {"case": "loss_predictor (show hard)", "short": "lp show_hard",
     "overrides": ["policy=loss_predictor", "+policy.direction=show_hard"]},
]}


def _rows(cells, top1: dict[tuple[int, int], float]) -> list[dict]:
    """Rows with the given top-1 per (grid row, seed) and fixed other figures."""
    return [{**_row(c, top1[(c.row, c.seed)]), "final_loss_recon_reference": 0.03 + 0.001 * c.row,
             "fg_enrichment": 1.0 + 0.1 * c.row} for c in cells]


def test_short_names_tell_rows_with_the_same_case_apart() -> None:
    from adamae_rl.ablation.report import short_names

    names = short_names(expand_grid(MASK_TYPE, [0, 1]))
    assert names == {0: "tube r=0.75", 1: "tube r=0.9", 2: "random r=0.75", 3: "random r=0.9", 4: "adaptive",
                     5: "lp show_hard"}
    same = expand_grid({"name": "g", "cells": [{"case": "a", "overrides": ["policy.width=32"]},
                                               {"case": "a", "overrides": ["policy.width=32", "policy.depth=2"]}]}, [0])
    assert short_names(same) == {0: "a", 1: "a depth=2"}


def test_baseline_is_the_random_row_by_default_and_can_be_named() -> None:
    from adamae_rl.ablation.report import resolve_baseline
    from adamae_rl.errors import ConfigError

    cells = expand_grid(MASK_TYPE, [0])
    assert resolve_baseline(cells, "auto") == 2  # the first row with policy=random
    assert resolve_baseline(cells, "random r=0.9") == 3
    assert resolve_baseline(cells, "random  r=0.9") == 3  # spacing as typed on a command line
    assert resolve_baseline(cells, "adaptive") == 4  # a case label that names one row
    assert resolve_baseline(cells, "none") is None and resolve_baseline(cells, None) is None
    assert resolve_baseline(expand_grid({"name": "g", "cells": [{"case": "x", "overrides": ["policy=tube"]}]}, [0]),
                            "auto") == 0
    with pytest.raises(ConfigError, match="'tube' names 2 rows; give one of their short names: 'tube r=0.75'"):
        resolve_baseline(cells, "tube")
    with pytest.raises(ConfigError, match="'frame' names no grid row"):
        resolve_baseline(cells, "frame")


def test_difference_section_pairs_seeds_and_gives_the_t_interval() -> None:
    from adamae_rl.ablation.report import difference_section

    cells = expand_grid(MASK_TYPE, [0, 1, 2])
    top1 = {(r, s): 0.5 for r in range(6) for s in range(3)}
    # tube r=0.75 beats the baseline (random r=0.75) by 2, 4 and 3 points on seeds 0, 1, 2
    for seed, (base, tube) in enumerate([(0.50, 0.52), (0.60, 0.64), (0.40, 0.43)]):
        top1[(2, seed)], top1[(0, seed)] = base, tube
    rows = _rows(cells, top1)
    text = difference_section(cells, rows, 2)
    assert "### Difference from the baseline: random r=0.75" in text
    # differences 2, 4, 3: mean 3, sd 1, t(0.975, 2) = 4.303 -> half-width 4.303 / sqrt(3) = 2.48
    assert "| tube r=0.75 | +3.0 ± 2.5 | -0.20 ± 0.00 | -0.0020 ± 0.0000 | 3 |" in text
    assert "| random r=0.75 | baseline | baseline | baseline | – |" in text
    assert "| lp show_hard | loss_predictor (show hard) | policy=loss_predictor +policy.direction=show_hard |" in text


def test_one_seed_says_the_interval_is_undefined(tmp_path) -> None:
    import csv

    from adamae_rl.ablation.report import difference_section, write_difference_csv

    cells = expand_grid(MASK_TYPE, [0])
    rows = _rows(cells, {(r, 0): 0.5 + 0.01 * r for r in range(6)})
    text = difference_section(cells, rows, 2)
    assert "| tube r=0.75 | -2.0 (1 seed: CI undefined) |" in text and "± 0.0" not in text
    path = write_difference_csv(cells, rows, 2, tmp_path / "d.csv")
    lines = list(csv.DictReader(path.open()))
    tube = next(r for r in lines if r["short"] == "tube r=0.75" and r["metric"] == "top1")
    assert float(tube["mean_diff"]) == pytest.approx(-2.0) and tube["ci_low"] == "" and tube["n"] == "1"
    assert tube["baseline"] == "random r=0.75" and tube["overrides"] == "policy=tube mask_ratio=0.75"
    assert tube["label"] == "top-1 (points)"
    assert len(lines) == 6 * 3  # rows x compared figures


def test_latex_table_is_booktabs_with_escaped_names() -> None:
    from adamae_rl.ablation.report import latex_table

    cells = expand_grid(MASK_TYPE, [0, 1])
    rows = _rows(cells, {(r, s): 0.5 + 0.01 * r + 0.02 * s for r in range(6) for s in range(2)})
    rows[0]["random_init_top1"] = 0.3
    tex = latex_table(cells, rows, "Mask sampling & more", 2, "tab:ablation-mask_type")
    assert "\\usepackage{booktabs}" in tex and "\\toprule" in tex and "\\midrule" in tex and "\\bottomrule" in tex
    assert "\\caption{Mask sampling \\& more. Mean $\\pm$ standard error" in tex
    assert "\\begin{tabular}{lrrrrr}" in tex
    body = tex.split("\\midrule")[1]
    assert body.count("\\\\") == 6  # one line per grid row
    # the same +-2 seed offsets in both cells: the paired difference has no spread
    assert "tube r=0.75 & 0.750 & $51.0 \\pm 1.0$ & $-2.0 \\pm 0.0$ &" in tex
    assert "random r=0.75 & 0.750 & $53.0 \\pm 1.0$ & baseline &" in tex
    assert "random init (no pre-training) & -- & $30.0$ &" in tex
    assert "loss\\_predictor" not in tex and "lp show\\_hard" in tex  # short name, escaped
    assert "\\label{tab:ablation-mask_type}" in tex


def _boxes_overlap(a, b) -> bool:
    return a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1


@pytest.mark.parametrize("grid_rows", [6, 14])
def test_plot_labels_do_not_overlap(tmp_path, grid_rows: int) -> None:
    import matplotlib.pyplot as plt

    from adamae_rl.ablation import report

    grid = {"name": "g", "cells": [{"case": f"a long case label number {i} (with a comment)",
                                    "overrides": [f"policy.width={i}"]} for i in range(grid_rows)]}
    cells = expand_grid(grid, [0, 1])
    rows = _rows(cells, {(r, s): 0.4 + 0.01 * r + 0.02 * s for r in range(grid_rows) for s in range(2)})
    path = report.write_plot(cells, rows, tmp_path / "p.svg", "title", baseline=0)
    assert "<svg" in path.read_text(encoding="utf-8")[:1000]
    assert report.write_plot(cells, rows, tmp_path / "p.pdf", "t", 0).read_bytes()[:5] == b"%PDF-"
    fig = report.plot_figure(cells, rows, "title", baseline=0)
    fig.canvas.draw()  # lays the figure out
    renderer = fig.canvas.get_renderer()
    axes = fig.axes
    assert len(axes) == 3  # top-1, difference from the baseline, fg enrichment
    labels = [t for t in axes[0].get_yticklabels() if t.get_text()]
    assert len(labels) == grid_rows
    boxes = [t.get_window_extent(renderer) for t in labels]
    assert not any(_boxes_overlap(a, b) for i, a in enumerate(boxes) for b in boxes[i + 1:])
    panels = [ax.get_window_extent(renderer) for ax in axes]
    assert not any(_boxes_overlap(box, panel) for box in boxes for panel in panels)
    figure_box = fig.bbox
    assert all(box.x0 >= figure_box.x0 - 1 and box.y0 >= figure_box.y0 - 1 for box in boxes)
    # error bars are the 95% t intervals: top-1 of 40+r and 42+r points over two seeds has a standard
    # error of 1 point, so t(0.975, 1) = 12.706 on either side
    from matplotlib.container import ErrorbarContainer

    bars = next(c for c in axes[0].containers if isinstance(c, ErrorbarContainer))
    segments = bars.lines[2][0].get_segments()
    assert len(segments) == grid_rows
    assert all(abs(seg[1][0] - seg[0][0]) == pytest.approx(2 * 12.7062, abs=1e-3) for seg in segments)
    plt.close(fig)
