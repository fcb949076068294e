"""Run a grid of pre-training cells (each a subprocess), evaluate each, and collect their figures.

A cell is one ``python -m adamae_rl.train`` run in ``OUT/cells/<cell>`` followed by one
``python -m adamae_rl.finetune`` on it. Each runs in its own process, so a cell's peak memory is
its own process's (``summary.json``: ``peak_rss_mib`` on CPU, ``peak_cuda_mib`` on GPU) and no
cell's allocations leak into the next. A cell counts as finished when its ``summary.json`` reached
the budget's step count and its ``eval.json`` matches the requested evaluation; finished cells are
skipped, so an interrupted ablation continues where it stopped, and an interrupted cell resumes
from its own last checkpoint (``trainer.resume=auto``).
"""

from __future__ import annotations

import json
import logging
import re
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from adamae_rl.ablation.guard import die_with_parent
from adamae_rl.errors import ConfigError

log = logging.getLogger("adamae_rl.ablate")

PROTOCOL_SETS = {"probe": ("probe",), "finetune": ("finetune",), "both": ("probe", "finetune")}


@dataclass
class Cell:
    """One run of the grid.

    Attributes:
        case: the row label (cells with the same overrides and different seeds share a row).
        overrides: training overrides (grid base + the cell's own).
        seed: ``trainer.seed``.
        name: directory name under ``OUT/cells``.
        row: index of the grid row (the same for every seed).
        short: the grid's ``short`` label of the row, if it gives one (tables and plots then use
            it instead of the derived short name, see :func:`adamae_rl.ablation.report.short_names`).
    """

    case: str
    overrides: list[str]
    seed: int
    name: str
    row: int
    short: str | None = None


def cell_name(overrides: Sequence[str], seed: int) -> str:
    """A readable, file-system-safe directory name: ``policy-tube_mask_ratio-0.75_s0``."""
    text = "_".join(o.replace("=", "-") for o in overrides) or "default"
    return re.sub(r"[^A-Za-z0-9._-]+", "-", f"{text}_s{seed}")


def expand_grid(grid: dict, seeds: Sequence[int]) -> list[Cell]:
    """Cells of ``grid`` (``base`` + ``cells: [{case, overrides, short?}]``) for every seed, row by row."""
    rows = grid.get("cells") or []
    if not rows:
        raise ConfigError(f"grid {grid.get('name')!r} has no cells")
    if not seeds:
        raise ConfigError("seeds must list at least one seed")
    base = list(grid.get("base") or [])
    cells = []
    for row, spec in enumerate(rows):
        if "case" not in spec:
            raise ConfigError(f"grid cell {row} needs a 'case' label; got {spec}")
        given = spec.get("overrides") or []
        if not isinstance(given, list) or not all(isinstance(o, (str, int, float, bool)) for o in given):
            raise ConfigError(
                f"grid cell {row} ({spec['case']}): overrides must be a list of KEY=VALUE strings, got {given!r}"
            )
        overrides = base + [str(o) for o in given]
        short = None if spec.get("short") is None else str(spec["short"])
        for seed in seeds:
            cells.append(Cell(str(spec["case"]), overrides, int(seed), cell_name(overrides, int(seed)), row, short))
    names = [c.name for c in cells]
    if len(set(names)) != len(names):
        raise ConfigError(f"two grid cells have the same overrides: {sorted(n for n in names if names.count(n) > 1)}")
    return cells


# --------------------------------------------------------------------------------------------------
# Commands and status
# --------------------------------------------------------------------------------------------------
def train_command(cell: Cell, budget: dict, train_overrides: Sequence[str], run_dir: Path) -> list[str]:
    """``python -m adamae_rl.train`` for one cell, with the ablation's budget."""
    steps = int(budget["max_steps"])
    blr = [] if budget.get("blr") is None else [f"optim.blr={float(budget['blr'])}"]
    precision = [] if budget.get("precision") is None else [f"trainer.precision={budget['precision']}"]
    background = _background_override(budget.get("background"), [*cell.overrides, *train_overrides])
    return [
        sys.executable, "-m", "adamae_rl.train", *cell.overrides, *blr, *precision, *background, *train_overrides,
        f"trainer.max_steps={steps}", f"trainer.batch_size={int(budget['batch_size'])}",
        f"trainer.eval_batches={int(budget['eval_batches'])}", f"trainer.eval_every={steps}",
        f"trainer.ckpt_every={int(budget['ckpt_every'])}", f"trainer.seed={cell.seed}",
        "trainer.progress=false", "trainer.tensorboard=false", "trainer.resume=auto", f"run_dir={run_dir}",
    ]


def _background_override(background: str | None, overrides: Sequence[str]) -> list[str]:
    """``data.background=...`` for the built-in synthetic clips, unless the overrides choose
    other data or a background themselves (theirs wins), or the budget leaves it (None)."""
    if background is None:
        return []
    for override in overrides:
        key, _, value = str(override).lstrip("+~").partition("=")
        if key == "data.background" or (key == "data" and value != "synthetic"):
            return []
    return [f"data.background={background}"]


def eval_command(run_dir: Path, eval_cfg: dict, random_init: bool) -> list[str]:
    """``python -m adamae_rl.finetune`` for one cell."""
    return [
        sys.executable, "-m", "adamae_rl.finetune", str(run_dir), "--protocol", str(eval_cfg["protocol"]),
        "--train-clips", str(eval_cfg["train_clips"]), "--val-clips", str(eval_cfg["val_clips"]),
        "--steps", str(eval_cfg["steps"]), "--batch-size", str(eval_cfg["batch_size"]), "--no-progress",
        *(["--random-init"] if random_init else []), *[str(x) for x in eval_cfg.get("extra") or []],
    ]


def read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def trained(run_dir: Path, budget: dict) -> bool:
    """The cell's summary exists and covers the whole budget."""
    summary = read_json(run_dir / "summary.json")
    return summary is not None and int(summary.get("steps", -1)) == int(budget["max_steps"])


def evaluated(run_dir: Path, eval_cfg: dict, random_init: bool) -> bool:
    """The cell's eval.json exists and was made with the requested protocol, clips and budget."""
    report = read_json(run_dir / "eval.json")
    if report is None:
        return False
    protocols = PROTOCOL_SETS[str(eval_cfg["protocol"])]
    pre = report.get("pretrained", {})
    same = (
        tuple(sorted(pre)) == tuple(sorted(protocols))
        and report.get("train_clips") == int(eval_cfg["train_clips"])
        and report.get("val_clips") == int(eval_cfg["val_clips"])
        and (not random_init or "random_init" in report)
    )
    if same and "finetune" in pre:
        same = pre["finetune"]["settings"]["steps"] == int(eval_cfg["steps"])
    if same and "probe" in pre:  # an evaluation pooled differently is not this one
        same = pre["probe"].get("settings", {}).get("pool") == requested_probe_pool(eval_cfg)
    return same


def requested_probe_pool(eval_cfg: dict) -> str:
    """The probe pooling the cells are evaluated with: ``--probe-pool`` in ``eval.extra``, else the default."""
    extra = [str(x) for x in eval_cfg.get("extra") or []]
    for i, arg in enumerate(extra):
        if arg == "--probe-pool" and i + 1 < len(extra):
            return extra[i + 1]
        if arg.startswith("--probe-pool="):
            return arg.split("=", 1)[1]
    from adamae_rl.evaluation.probe import ProbeSettings  # here: the runner itself does not need torch

    return ProbeSettings().pool


# --------------------------------------------------------------------------------------------------
# Child processes
# --------------------------------------------------------------------------------------------------
GUARD = Path(__file__).with_name("guard.py")


def launch(command: list[str], out: Any) -> subprocess.Popen:
    """Start ``command`` behind the guard (``guard.py``): whatever signals this process's death
    produces, the command receives one SIGTERM; output to the open file ``out``."""
    return subprocess.Popen([sys.executable, str(GUARD), *command], stdout=out, stderr=subprocess.STDOUT,
                            start_new_session=True, preexec_fn=die_with_parent)


class Children:
    """Runs one child process at a time; SIGINT/SIGTERM to the ablation forward one SIGTERM to it.

    The trainer answers SIGTERM by finishing its step and saving a checkpoint, so stopping an
    ablation loses at most one step. Children run in their own session: a Ctrl-C in the terminal
    reaches only the ablation, which forwards it once (a second signal would kill the trainer
    before it saves). Every child runs behind ``guard.py``, so a ``kill -9`` of the ablation also
    ends in exactly one SIGTERM to it.
    """

    def __init__(self) -> None:
        self.current: subprocess.Popen | None = None
        self.stop_signal: int | None = None
        self._previous: dict = {}

    def __enter__(self) -> Children:
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def _handle(self, signum: int, frame: Any) -> None:
        self.stop_signal = signum
        if self.current is not None and self.current.poll() is None:
            self.current.send_signal(signal.SIGTERM)

    def run(self, command: list[str], log_path: Path) -> int:
        """Run ``command`` with stdout and stderr appended to ``log_path``; returns its exit status.

        Nothing starts once the ablation was asked to stop (status -1).
        """
        if self.stop_signal is not None:
            return -1
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "a", encoding="utf-8") as out:
            out.write(f"\n$ {' '.join(command)}\n")
            out.flush()
            self.current = launch(command, out)
            try:
                return self.current.wait()
            finally:
                self.current = None


# --------------------------------------------------------------------------------------------------
# The ablation
# --------------------------------------------------------------------------------------------------
@dataclass
class CellRecord:
    """What the ablation did with a cell (``OUT/cells/<cell>/cell.json``)."""

    case: str
    seed: int
    overrides: list[str]
    status: str = "pending"  # pending | skipped | done | failed | interrupted
    resumed: bool = False  # training continued from a checkpoint of an interrupted run
    train_wall_s: float | None = None
    eval_wall_s: float | None = None
    failure: str | None = None
    extra: dict = field(default_factory=dict)


def run_cell(cell: Cell, cfg: dict, out: Path, children: Children, random_init: bool) -> CellRecord:
    """Train (or resume) and evaluate one cell, skipping what is already done."""
    run_dir, logs = out / "cells" / cell.name, out / "logs"
    record = CellRecord(cell.case, cell.seed, cell.overrides)
    old = read_json(run_dir / "cell.json") or {}
    need_train = not trained(run_dir, cfg["budget"])
    need_eval = need_train or not evaluated(run_dir, cfg["eval"], random_init)
    if not need_eval:
        log.info("cell %s: finished before (summary.json + eval.json present), skipped", cell.name)
        return CellRecord(**{**asdict(record), **{k: old.get(k) for k in ("resumed", "train_wall_s", "eval_wall_s")},
                             "status": "skipped"})
    # Wall times add up over invocations: an interrupted cell's time was spent too.
    record.resumed, record.train_wall_s = bool(old.get("resumed")), old.get("train_wall_s")
    if need_train:
        record.resumed = (run_dir / "checkpoints" / "last.pt").exists()
        log.info("cell %s: %s training", cell.name, "resuming" if record.resumed else "starting")
        start = time.perf_counter()
        code = children.run(train_command(cell, cfg["budget"], cfg.get("train_overrides") or [], run_dir),
                            logs / f"{cell.name}.train.log")
        prior = (old.get("train_wall_s") or 0.0) if record.resumed else 0.0
        record.train_wall_s = prior + time.perf_counter() - start
        if not _finished(code, children, record, f"training exited with status {code}; see {logs / cell.name}.train.log"):
            return _save(record, run_dir)
    log.info("cell %s: evaluating (%s)", cell.name, cfg["eval"]["protocol"])
    start = time.perf_counter()
    code = children.run(eval_command(run_dir, cfg["eval"], random_init), logs / f"{cell.name}.eval.log")
    record.eval_wall_s = (old.get("eval_wall_s") or 0.0) * (old.get("status") == "interrupted") + time.perf_counter() - start
    if _finished(code, children, record, f"evaluation exited with status {code}; see {logs / cell.name}.eval.log"):
        record.status = "done"
    return _save(record, run_dir)


def _finished(code: int, children: Children, record: CellRecord, failure: str) -> bool:
    if children.stop_signal is not None:
        record.status = "interrupted"
        return False
    if code != 0:
        record.status, record.failure = "failed", failure
        log.error("cell failed: %s", failure)
        return False
    return True


def _save(record: CellRecord, run_dir: Path) -> CellRecord:
    from adamae_rl.utils.files import atomic_write_json

    atomic_write_json(run_dir / "cell.json", asdict(record))
    return record


def run_ablation(cfg: dict) -> tuple[list[Cell], list[CellRecord], float]:
    """Run every cell of ``cfg['grid']`` for every seed. Returns (cells, records, wall seconds).

    Raises:
        SystemExit(128 + signal) when interrupted (after the running cell saved its checkpoint).
    """
    from tqdm.auto import tqdm

    out = Path(cfg["out"])
    cells = expand_grid(cfg["grid"], cfg["seeds"])
    first_of_seed = {}
    for cell in cells:
        first_of_seed.setdefault(cell.seed, cell.name)
    start = time.perf_counter()
    records: list[CellRecord] = []
    with Children() as children:
        for cell in tqdm(cells, desc="ablation", unit="cell", disable=not cfg.get("progress", True)):
            reference = bool(cfg["eval"].get("random_init")) and first_of_seed[cell.seed] == cell.name
            records.append(run_cell(cell, cfg, out, children, reference))
            if children.stop_signal is not None:
                log.warning("%s: stopped during cell %s; run the same command again to continue",
                            signal.Signals(children.stop_signal).name, cell.name)
                raise SystemExit(128 + children.stop_signal)
    return cells, records, time.perf_counter() - start
