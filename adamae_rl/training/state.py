"""Run state, checkpoints and resume rules.

A run's state is its :class:`Progress` (counters and the metric window since the last log line)
plus the state of every part (:class:`~adamae_rl.builders.RunParts`). A checkpoint holds both,
the clip stream's position, every RNG and the config, so a resumed run continues exactly where
the interrupted one stopped. Which config keys a resumed run may change is declared in the schema
(:func:`adamae_rl.schema.resumable_keys`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from adamae_rl.cli import RunError
from adamae_rl.schema import TrainConfig, as_config, resumable_keys, stored_config
from adamae_rl.utils import checkpoint as ckpt_io
from adamae_rl.utils.distributed import Process, barrier, gather_objects
from adamae_rl.utils.files import atomic_write_text

if TYPE_CHECKING:
    from adamae_rl.builders import RunParts

log = logging.getLogger("adamae_rl.train")

NEVER = ("never", "false", "False", "none", "None")


@dataclass
class Progress:
    """Counters of a run and the sums of each metric since the last log line."""

    step: int = 0
    clips: int = 0
    train_seconds: float = 0.0
    nonfinite_in_row: int = 0
    nonfinite_skipped: int = 0
    last_eval: dict = field(default_factory=dict)
    stop_signal: int | None = None
    window: dict = field(default_factory=dict)  # metric sums since the last log line
    window_steps: int = 0

    def accumulate(self, metrics: dict) -> None:
        for key, value in metrics.items():
            self.window[key] = self.window.get(key, 0.0) + float(value)
        self.window_steps += 1

    def window_means(self) -> dict:
        """Each metric's mean over the steps since the last call; starts a new window."""
        means = {key: total / max(self.window_steps, 1) for key, total in self.window.items()}
        self.window, self.window_steps = {}, 0
        return means


def checkpoint_state(parts: RunParts, progress: Progress, cfg: TrainConfig) -> dict:
    """Everything a resumed run needs, as tensors and plain values (``weights_only``-loadable)."""
    return {
        "step": progress.step,
        "clips": progress.clips,
        "train_seconds": progress.train_seconds,
        "nonfinite_skipped": progress.nonfinite_skipped,
        "window": dict(progress.window),
        "window_steps": progress.window_steps,
        "model": parts.model.state_dict(),
        "policy": parts.policy_module.state_dict() if parts.learnable else None,
        "objective": parts.policy_loss.state_dict(),
        "opt_mae": parts.opt_mae.state_dict(),
        "sched_mae": parts.sched_mae.state_dict(),
        "opt_policy": parts.opt_policy.state_dict() if parts.learnable else None,
        "sched_policy": parts.sched_policy.state_dict() if parts.learnable else None,
        "train_stream": parts.env.clips.state_dict(),
        "scaler": parts.scaler.state_dict() if parts.scaler is not None else None,
        "config": cfg.as_dict(),  # plain values: a checkpoint loads with weights_only
    }


def restore(parts: RunParts, progress: Progress, state: dict, proc: Process = Process()) -> None:
    """Put a checkpoint's state back into the parts, the progress and this process's RNGs.

    Each process takes its own RNG state back. A checkpoint written by another number of
    processes cannot give every process its own: the processes then keep the fresh per-process
    seeds of :func:`~adamae_rl.builders.build_run` (the data order is global and continues
    exactly; the masks drawn from here on differ from those an uninterrupted run would draw).
    """
    parts.model.load_state_dict(state["model"])
    if parts.learnable:
        parts.policy_module.load_state_dict(state["policy"])
        parts.opt_policy.load_state_dict(state["opt_policy"])
        parts.sched_policy.load_state_dict(state["sched_policy"])
    parts.policy_loss.load_state_dict(state["objective"])
    parts.opt_mae.load_state_dict(state["opt_mae"])
    parts.sched_mae.load_state_dict(state["sched_mae"])
    parts.env.seek_clips(state["train_stream"])
    if parts.scaler is not None and state.get("scaler") is not None:
        parts.scaler.load_state_dict(state["scaler"])
    rngs = state.get("rng_per_process") or [state["rng"]]  # "rng": a checkpoint of one process
    if len(rngs) == proc.world_size:
        ckpt_io.set_rng_state(rngs[proc.rank])
    elif proc.is_main:
        log.warning(
            "the checkpoint was written by %d process(es), this run has %d: each process draws masks from fresh "
            "seeds from here on (the data order continues exactly)", len(rngs), proc.world_size,
        )
    progress.step, progress.clips = int(state["step"]), int(state["clips"])
    progress.train_seconds = float(state["train_seconds"])
    progress.nonfinite_skipped = int(state["nonfinite_skipped"])
    progress.window, progress.window_steps = dict(state["window"]), int(state["window_steps"])


def save_checkpoint(
    parts: RunParts, progress: Progress, cfg: TrainConfig, run_dir: Path, periodic: bool, proc: Process = Process()
) -> Path:
    """Refresh ``last.pt`` (and, when ``periodic``, write ``step_XXXXXX.pt`` and prune old ones).

    Called by every process: each hands its RNG state to process 0, which writes the one file;
    the others wait until it is written, so that no process exits (and no launcher tears the
    job down) while the checkpoint is half written.
    """
    folder = run_dir / "checkpoints"
    rngs = gather_objects(ckpt_io.rng_state())
    last = folder / "last.pt"
    if proc.is_main:
        state = {**checkpoint_state(parts, progress, cfg), "rng": rngs[0], "rng_per_process": rngs}
        ckpt_io.atomic_save(state, last)
        if periodic:
            ckpt_io.atomic_save(state, folder / f"step_{progress.step:06d}.pt")
            ckpt_io.prune_periodic(folder, cfg.trainer.keep_checkpoints)
    barrier()
    return last


def find_resume(cfg: TrainConfig, run_dir: Path) -> dict | None:
    """The checkpoint to resume from, per ``trainer.resume`` (auto | never | a path).

    With ``auto``, an unreadable ``last.pt`` (torn, empty, garbage) falls back to the newest
    readable periodic checkpoint, with a warning naming the bad file. A checkpoint written with
    a different config (beyond the resumable keys) is refused.
    """
    request = cfg.trainer.resume
    if request in NEVER:
        return None
    if request == "auto":
        found = ckpt_io.load_newest(run_dir / "checkpoints")
        if found is None:
            return None
        path, state = found
    else:
        path = Path(request)
        state = ckpt_io.load_checkpoint(path)
    stored = state.get("config")
    if not isinstance(stored, dict):
        raise RunError(f"{path} holds no run configuration; it is not a training checkpoint")
    changed = sorted(config_diff(stored_config(stored), cfg.as_dict()) - resumable_keys())
    if changed:
        raise RunError(
            f"{path} was written by a run with a different config ({', '.join(changed)}); "
            f"use another run_dir=..., or trainer.resume=never to start over in {run_dir}"
        )
    return state


def config_diff(old: Any, new: Any, prefix: str = "") -> set[str]:
    """Dotted keys whose values differ between two nested configs."""
    if isinstance(old, dict) and isinstance(new, dict):
        keys = set(old) | set(new)
        return set().union(*(config_diff(old.get(k), new.get(k), f"{prefix}{k}.") for k in keys)) if keys else set()
    return set() if old == new else {prefix.rstrip(".")}


def write_run_config(cfg: TrainConfig | dict, run_dir: Path, overrides: list[str] | None = None) -> None:
    """``config.yaml`` (every value the run uses, defaults included) and ``overrides.yaml`` (the
    command line's overrides)."""
    import yaml

    cfg = as_config(cfg).as_dict()
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(run_dir / "config.yaml", yaml.safe_dump(cfg, sort_keys=False))
    if overrides is not None:
        atomic_write_text(run_dir / "overrides.yaml", yaml.safe_dump(list(overrides)))
