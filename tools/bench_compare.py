"""``python -m tools.bench_compare --against TREE``: time this checkout's training step against another tree's.

    git worktree add /tmp/other COMMIT
    python -m tools.bench_compare --against /tmp/other vit_s_224 --precision fp32 bf16 --threads 2 --rounds 3

Every other argument is :mod:`adamae_rl.bench`'s (configurations, training overrides,
``--precision``, ``--compile``, ``--device``, ``--steps``, ``--warmup``, ``--threads``). Each
configuration runs ``--rounds`` times in each tree, the two trees alternating and every run in a
fresh process, so that a change in the machine's load reaches both; the table gives each tree's
median step time, and the other tree's time relative to this checkout's.

Both trees are timed by this checkout's bench, so that both steps are measured and their FLOPs
counted the same way. The other tree needs only its ``adamae_rl`` package: a copy of it gets this
checkout's ``bench.py`` and ``utils/flops.py``, and the modules the bench imports where the tree
has none (``cli.py``, ``errors.py``). The bench reaches that tree's training app through the
adapters below, which accept the names an earlier training app used (``train.build_parts``,
``Parts.objective``, ``train.rewrite_policy_override``, a ``train_step`` that takes the device,
no ``builders.compile_run`` or ``builders.resolve_precision``).
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
# Copied from this checkout into the other tree: always (the measuring code), or where it has none.
BENCH_MODULES = ("bench.py", "utils/flops.py")
BENCH_IMPORTS = ("cli.py", "errors.py")


# --------------------------------------------------------------------------------------------------
# The training app of either tree, as the bench reaches it: the bench's own functions where the app
# has the names they use, else the earlier app's (these replace adamae_rl.bench's in a run)
# --------------------------------------------------------------------------------------------------
BENCH_OWN: dict[str, Any] = {}  # adamae_rl.bench's own functions, kept by run_bench


def training_config(overrides: list[str]) -> dict:
    """The tree's training config with overrides (an app with ``rewrite_policy_override`` in
    place of ``rewrite_plugin_overrides`` rewrites ``policy=NAME`` only)."""
    from hydra import compose, initialize_config_dir

    from adamae_rl import train
    from adamae_rl.builders import plain

    if hasattr(train, "rewrite_plugin_overrides"):
        return BENCH_OWN["training_config"](overrides)
    overrides = train.rewrite_policy_override(overrides, [train.CONFIG_DIR])
    with initialize_config_dir(config_dir=str(train.CONFIG_DIR), version_base="1.3"):
        return plain(compose("config", overrides=overrides))


def build_parts(cfg: dict, device: Any) -> Any:
    """The tree's parts for ``cfg``. An app without ``builders.build_run`` builds them with
    ``train.build_parts``; they then get the names the bench reads: ``policy_loss`` (their
    ``objective``), ``policy_module`` and ``env.decoder_mask`` (None: no decoder masking)."""
    from adamae_rl import builders

    if hasattr(builders, "build_run"):
        return BENCH_OWN["build_parts"](cfg, device)
    from adamae_rl import train
    from adamae_rl.utils.distributed import Process

    parts = train.build_parts(cfg, device, Process())
    for name, value in (("policy_loss", parts.objective), ("policy_module", parts.policy)):
        if not hasattr(parts, name):
            setattr(parts, name, value)
    if not hasattr(parts.env, "decoder_mask"):
        parts.env.decoder_mask = None
    return parts


def compile_parts(parts: Any) -> bool:
    """Compile as ``trainer.compile=true`` does; refused in an app without that option."""
    from adamae_rl import bench, builders

    if not hasattr(builders, "compile_run"):
        raise bench.BenchError("this version of adamae_rl has no trainer.compile option; use --compile off")
    return BENCH_OWN["compile_parts"](parts)


def train_step(parts: Any, cfg: dict) -> None:
    """One real training step of the tree's app (whose ``train_step`` may also take the device)."""
    import torch

    from adamae_rl import bench, train
    from adamae_rl.builders import autocast_dtype

    if len(inspect.signature(train.train_step).parameters) == 3:
        return BENCH_OWN["train_step"](parts, cfg)
    device = torch.device(cfg["trainer"]["device"])
    _, _, finite = train.train_step(parts, cfg, autocast_dtype(cfg["trainer"]["precision"]), device)
    if not finite:
        raise bench.BenchError("the training step produced a non-finite loss")
    return None


def resolve_precision(precision: str, device: Any) -> str:
    """``auto`` -> what the tree's app would run on ``device``; refused in an app without ``auto``."""
    from adamae_rl import bench, builders

    if hasattr(builders, "resolve_precision"):
        return BENCH_OWN["resolve_precision"](precision, device)
    if precision == "auto":
        raise bench.BenchError("this version of adamae_rl has no trainer.precision=auto; use --precision fp32 or bf16")
    return precision


ADAPTERS = {
    "training_config": training_config, "build_parts": build_parts, "compile_parts": compile_parts,
    "train_step": train_step, "resolve_precision": resolve_precision,
}


def run_bench(argv: list[str]) -> int:
    """``adamae_rl.bench``'s command line in this process, reaching the app through the adapters."""
    from adamae_rl import bench

    for name, adapter in ADAPTERS.items():
        BENCH_OWN.setdefault(name, getattr(bench, name))
        setattr(bench, name, adapter)
    return bench.main(argv)


# --------------------------------------------------------------------------------------------------
# Two trees side by side
# --------------------------------------------------------------------------------------------------
def package_copy(tree: Path, dest: Path) -> Path:
    """A copy of ``tree``'s ``adamae_rl`` under ``dest`` with this checkout's bench in it; returns ``dest``."""
    ours = REPO_ROOT / "adamae_rl"
    shutil.copytree(tree / "adamae_rl", dest / "adamae_rl", ignore=shutil.ignore_patterns("__pycache__"))
    for name in (*BENCH_MODULES, *BENCH_IMPORTS):
        target = dest / "adamae_rl" / name
        if name in BENCH_MODULES or not target.exists():
            shutil.copy2(ours / name, target)
    return dest


def run_in(root: Path, case_argv: list[str], name: str) -> dict:
    """One bench run with ``root``'s ``adamae_rl`` (``tools`` from this checkout); its JSON record.
    A failure is one line naming the tree (``name``)."""
    with tempfile.TemporaryDirectory() as tmp:
        record = Path(tmp) / "record.jsonl"
        # `python -m` puts the working folder first on the path: its adamae_rl is the one timed.
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))}
        cmd = [sys.executable, "-m", "tools.bench_compare", "--run-bench", *case_argv, "--json", str(record)]
        done = subprocess.run(cmd, cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if done.returncode != 0 or not record.exists():
            lines = [line for line in done.stderr.splitlines() if line.strip()]
            raise CompareError(f"{name}: " + (lines[-1].removeprefix("error: ") if lines else f"bench process failed ({done.returncode})"))
        return json.loads(record.read_text())


def format_table(records: list[dict], names: tuple[str, str]) -> str:
    """One row per configuration and tree: median step ms, clips/s and MFU over the rounds."""
    rows = [["config", "prec", "compile", "tree", "rounds", "step ms", "clips/s", "MFU", f"vs {names[0]}"]]
    keys = list(dict.fromkeys((r["config"], r["precision"], r["compile"], tuple(r["overrides"])) for r in records))
    for key in keys:
        medians = {}
        for name in names:
            runs = [r for r in records if r["tree"] == name and (r["config"], r["precision"], r["compile"], tuple(r["overrides"])) == key]
            medians[name] = statistics.median(r["step_s"] for r in runs)
            rows.append([
                key[0], key[1], "on" if key[2] else "off", name, str(len(runs)), f"{1e3 * medians[name]:.0f}",
                f"{statistics.median(r['clips_per_s'] for r in runs):.2f}",
                f"{100 * statistics.median(r['mfu'] for r in runs):.1f}%",
                f"{medians[name] / medians[names[0]]:.2f}x",
            ])
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.rjust(w) for cell, w in zip(row, widths)) for row in rows)


class CompareError(ValueError):
    """Bad input or a failed run: printed as one line."""


def parse_args(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(
        prog="python -m tools.bench_compare",
        description="Time this checkout's training step against another tree's, the two alternating.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=(
            "Every other argument is python -m adamae_rl.bench's (see its --help).\n\n"
            "example:\n  python -m tools.bench_compare --against /tmp/other vit_s_224 --precision fp32 bf16 --rounds 3"
        ),
    )
    parser.add_argument("--against", required=True, type=Path, metavar="TREE", help="a tree with an adamae_rl package (a git worktree)")
    parser.add_argument("--rounds", type=int, default=3, help="runs per configuration and tree (default: 3)")
    parser.add_argument("--json", type=Path, metavar="FILE", help="append every run's record (with its tree) to FILE")
    return parser.parse_known_args(argv)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--run-bench"]:  # one run, in the tree whose package comes first on the path
        return run_bench(argv[1:])
    from adamae_rl import bench

    args, rest = parse_args(argv)
    try:
        if not (args.against / "adamae_rl" / "__init__.py").is_file():
            raise CompareError(f"--against {args.against}: no adamae_rl package there")
        if args.rounds < 1:
            raise CompareError(f"--rounds must be at least 1, got {args.rounds}")
        cases = bench.expand(bench.parse_args(rest))
        names = ("this", str(args.against))
        records = []
        with tempfile.TemporaryDirectory() as tmp:
            roots = {names[0]: REPO_ROOT, names[1]: package_copy(args.against, Path(tmp))}
            for case in cases:
                for _ in range(args.rounds):
                    for name in names:
                        record = {**run_in(roots[name], bench.case_argv(case), name), "tree": name}
                        records.append(record)
                        if args.json:
                            with args.json.open("a", encoding="utf-8") as out:
                                out.write(json.dumps(record) + "\n")
    except (CompareError, bench.BenchError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(format_table(records, names))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
