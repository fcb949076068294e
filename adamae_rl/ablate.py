"""``python -m adamae_rl.ablate``: a grid of pre-training runs, evaluated and tabulated.

Examples::

    python -m adamae_rl.ablate                                   # mask types, as the paper's table
    python -m adamae_rl.ablate grid=ratios seeds=[0,1]           # adaptive sampler at 0.80 ... 0.98
    python -m adamae_rl.ablate grid=sampler out=ablations/sampler budget.max_steps=400
    python -m adamae_rl.ablate grid_file=my_grid.yaml            # a grid of your own
    python -m adamae_rl.ablate eval.protocol=finetune -- trainer.device=cuda model.decoder_depth=1

Configs: ``adamae_rl/configs_ablate/ablate.yaml`` (budget, evaluation, seeds, output) and
``grid/`` (``mask_type``, ``ratios``, ``sampler``, ``decoder``, ``objective``). Each cell is a
subprocess ``python -m adamae_rl.train ... run_dir=OUT/cells/<cell>`` followed by
``python -m adamae_rl.finetune OUT/cells/<cell>``; logs go to ``OUT/logs``. At the end:
``OUT/ablation.md`` (table + budget line, each row's paired difference from the baseline row, the
short names' overrides), ``OUT/ablation.csv`` (one line per cell and seed), ``OUT/ablation_diff.csv``
(one line per row and compared figure: mean difference, 95% interval, paired seeds),
``OUT/ablation.tex`` (the table for a paper, booktabs) and ``OUT/ablation.png`` / ``.pdf``.

``report.baseline`` picks the row every other row is compared with: ``auto`` (default: the first
row with ``policy=random``, else the first row), ``none``, a short name (``'report.baseline="random
r=0.9"'``) or a case label that names one row. Runs are paired by seed; the interval is a t
interval with n - 1 degrees of freedom over the paired seeds (undefined with one seed). Short
names are the case label plus the overrides that tell rows with the same label apart
(``random r=0.9``); a grid cell may give its own with ``short: NAME``. Arguments after ``--`` are training overrides added to every cell (the
same as ``'train_overrides=["trainer.device=cuda"]'``). Finished cells are skipped, so the same command continues an interrupted
ablation; SIGINT/SIGTERM stop the running cell at a checkpoint.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from adamae_rl.config import plain
from adamae_rl.cli import run_command, setup_logging, strip_debug_flag
from adamae_rl.ablation.runner import expand_grid, run_ablation
from adamae_rl.ablation.report import (budget_line, cell_row, difference_section, latex_table, markdown_table,
                                       resolve_baseline, write_csv, write_difference_csv, write_plot)
from adamae_rl.data.synthetic import BACKGROUNDS
from adamae_rl.errors import ConfigError, InputFileError
from adamae_rl.utils.files import OutputDir, atomic_write_text, read_bounded

log = logging.getLogger("adamae_rl.ablate")

CONFIG_DIR = Path(__file__).parent / "configs_ablate"
OUTPUT_FILES = ("ablation.md", "ablation.csv", "ablation_diff.csv", "ablation.tex", "ablation.png", "ablation.pdf")


def split_argv(argv: list[str]) -> tuple[list[str], list[str]]:
    """Ablation overrides before ``--``, training overrides for every cell after it."""
    if "--" in argv:
        i = argv.index("--")
        return argv[:i], argv[i + 1 :]
    return argv, []


def compose_config(overrides: list[str], train_overrides: list[str] | None = None) -> dict:
    """``ablate.yaml`` with command-line overrides; ``grid_file=PATH`` replaces the grid group;
    ``train_overrides`` are appended to the config's ``train_overrides``."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    try:
        with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
            cfg = compose("ablate", overrides=overrides)
    except (HydraException, OmegaConfBaseException) as err:  # a bad override: one readable line
        raise ConfigError(" ".join(str(err).split())) from None
    if cfg.get("grid_file"):
        OmegaConf.set_struct(cfg, False)
        cfg.grid = load_grid_file(Path(cfg.grid_file))
    out = plain(cfg)
    out["train_overrides"] = list(out.get("train_overrides") or []) + list(train_overrides or [])
    background = out["budget"].get("background")
    if background is not None and background not in BACKGROUNDS:
        raise ConfigError(f"budget.background must be one of {', '.join(BACKGROUNDS)} or null; got {background!r}")
    # a baseline that names no row fails now, not after hours of training
    resolve_baseline(expand_grid(out["grid"], out["seeds"]), baseline_choice(out))
    return out


def baseline_choice(cfg: dict) -> str | None:
    """``report.baseline`` (``auto`` when the config has no report section)."""
    return (cfg.get("report") or {}).get("baseline", "auto")


def load_grid_file(path: Path) -> dict:
    """A grid of the user's own: a YAML mapping with ``name``, ``cells`` and optional ``base``/``title``."""
    import yaml

    text = read_bounded(path, "grid_file")
    try:
        grid = yaml.safe_load(text.decode("utf-8"))
    except UnicodeDecodeError:
        raise InputFileError(f"grid_file {path} is not UTF-8 text") from None
    except yaml.YAMLError as err:
        where = getattr(err, "problem_mark", None)
        at = f" at line {where.line + 1}, column {where.column + 1}" if where is not None else ""
        raise InputFileError(f"grid_file {path} is not valid YAML{at}: {getattr(err, 'problem', None) or err}") from None
    if not isinstance(grid, dict):
        raise InputFileError(
            f"grid_file {path} must hold a mapping with 'name' and 'cells' (see adamae_rl/configs_ablate/grid/), "
            f"got a {type(grid).__name__}"
        )
    missing = [k for k in ("name", "cells") if k not in grid]
    if missing:
        raise InputFileError(f"grid_file {path} lacks {', '.join(missing)}; a grid holds name, title, base and cells")
    if not isinstance(grid["cells"], list) or not all(isinstance(c, dict) for c in grid["cells"]):
        raise InputFileError(f"grid_file {path}: 'cells' must be a list of mappings with 'case' and 'overrides'")
    return grid


def usage() -> str:
    """``--help``: what the command does, its settings with their defaults, and the grids."""
    grids = sorted(p.stem for p in (CONFIG_DIR / "grid").glob("*.yaml"))
    settings = (CONFIG_DIR / "ablate.yaml").read_text(encoding="utf-8")
    return (
        f"usage: python -m adamae_rl.ablate [KEY=VALUE ...] [-- TRAINING_OVERRIDES ...]\n\n{__doc__.strip()}\n\n"
        f"Grids (grid=NAME): {', '.join(grids)}\n\nSettings (adamae_rl/configs_ablate/ablate.yaml):\n\n{settings}"
    )


def claim_outputs(cfg: dict) -> OutputDir:
    """``out`` as this command's folder: its files and the cells' and logs' folders, refused
    where someone else's files are (unless ``force=true``); never the grid file's folder."""
    out = OutputDir(cfg["out"], "ablate", force=bool(cfg.get("force")),
                    inputs=[cfg["grid_file"]] if cfg.get("grid_file") else [],
                    advice="pass force=true to overwrite it, or choose another out=...")
    out.claim(*OUTPUT_FILES)
    for folder in ("cells", "logs"):
        out.claim_folder(folder)
    return out


def write_outputs(cfg: dict, cells, records, wall_s: float) -> list[Path]:
    """The files of ``OUTPUT_FILES`` in ``cfg['out']``."""
    out = Path(cfg["out"])
    rows = [cell_row(cell, record, out) for cell, record in zip(cells, records)]
    title = f"{cfg['grid'].get('title', cfg['grid']['name'])} (grid {cfg['grid']['name']})"
    baseline = resolve_baseline(cells, baseline_choice(cfg))
    table = markdown_table(cells, rows, title, budget_line(cfg, cells, rows, wall_s))
    atomic_write_text(out / "ablation.md", table + "\n" + difference_section(cells, rows, baseline))
    label = "tab:ablation-" + "".join(ch if ch.isalnum() else "-" for ch in str(cfg["grid"]["name"]))
    atomic_write_text(out / "ablation.tex", latex_table(cells, rows, title, baseline, label))
    return [
        out / "ablation.md", write_csv(rows, out / "ablation.csv"),
        write_difference_csv(cells, rows, baseline, out / "ablation_diff.csv"), out / "ablation.tex",
        *(write_plot(cells, rows, out / f"ablation.{ext}", title, baseline) for ext in ("png", "pdf")),
    ]


def main(argv: list[str] | None = None) -> None:
    setup_logging()
    overrides, train_overrides = split_argv(strip_debug_flag(sys.argv[1:] if argv is None else argv))
    if any(a in ("-h", "--help") for a in overrides):
        print(usage())
        return
    cfg = run_command(lambda: compose_config(overrides, train_overrides), setup=False)
    run_command(lambda: claim_outputs(cfg), setup=False)
    cells, records, wall_s = run_command(lambda: run_ablation(cfg), setup=False)
    paths = write_outputs(cfg, cells, records, wall_s)
    print((Path(cfg["out"]) / "ablation.md").read_text(encoding="utf-8"))
    for path in paths:
        print(f"wrote {path}")
    failed = [r for r in records if r.status == "failed"]
    if failed:
        print(f"error: {len(failed)} cell(s) failed: " + "; ".join(r.failure or "" for r in failed), file=sys.stderr)
        raise SystemExit(1)


if __name__ == "__main__":
    main()
