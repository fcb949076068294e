"""The services the training loop calls around each step.

Signals (finish the step, save, exit), the progress bar, the non-finite-loss rule, the data-wait
measurement, and the run's description and summary. Each is small and has no state of its own
beyond what it is handed, so the loop in ``adamae_rl.train`` stays readable.
"""

from __future__ import annotations

import logging
import resource
import signal
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from adamae_rl.cli import RunError
from adamae_rl.training.state import Progress
from adamae_rl.utils.distributed import Process
from adamae_rl.utils.optim import epsilon_bound_share

if TYPE_CHECKING:
    from adamae_rl.builders import RunParts, RunPlan
    from adamae_rl.schema import TrainConfig, TrainerConfig

log = logging.getLogger("adamae_rl.train")


@contextmanager
def stop_on_signals(progress: Progress) -> Iterator[None]:
    """SIGINT/SIGTERM set ``progress.stop_signal`` (the loop finishes its step, saves and exits);
    a second one kills at once. The previous handlers come back when the block ends."""

    def handler(signum, frame):
        progress.stop_signal = signum
        signal.signal(signum, signal.SIG_DFL)

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


@contextmanager
def progress_bar(trainer: TrainerConfig, total: int, initial: int, proc: Process) -> Iterator[Any]:
    """A tqdm bar over the ``total`` steps on process 0 (None elsewhere or with ``trainer.progress=false``)."""
    if not (trainer.progress and proc.is_main):
        yield None
        return
    from tqdm.auto import tqdm

    # Redraw less often when stderr is a log file rather than a terminal.
    interval = 0.5 if sys.stderr.isatty() else 30.0
    bar = tqdm(total=int(total), initial=initial, desc="train", unit="step", dynamic_ncols=True,
               mininterval=interval)
    try:
        yield bar
    finally:
        bar.close()


def handle_nonfinite(progress: Progress, metrics: dict, trainer: TrainerConfig, run_dir: Path) -> None:
    """``trainer.on_nonfinite``: stop with the step and the last good checkpoint named, or skip the
    update (and stop after ``max_nonfinite`` in a row)."""
    detail = ", ".join(f"{k}={v}" if isinstance(v, str) else f"{k}={float(v):.4g}" for k, v in metrics.items())
    last = run_dir / "checkpoints" / "last.pt"
    if trainer.on_nonfinite == "stop":
        raise RunError(
            f"non-finite loss at step {progress.step + 1} ({detail}); stopped without updating. "
            f"Last good checkpoint: {last if last.exists() else 'none yet'}. "
            f"Lower optim.blr or set trainer.on_nonfinite=skip."
        )
    progress.nonfinite_in_row += 1
    progress.nonfinite_skipped += 1
    log.warning("non-finite loss at step %d (%s): update skipped", progress.step + 1, detail)
    if progress.nonfinite_in_row >= trainer.max_nonfinite:
        raise RunError(
            f"{progress.nonfinite_in_row} non-finite losses in a row at step {progress.step + 1}; stopping. "
            f"Last good checkpoint: {last if last.exists() else 'none yet'}."
        )


# Data wait: the clip stream measures how long each step blocked on the next batch.
def record_data_wait(parts: RunParts, metrics: dict, step_start: float) -> None:
    """Add ``train/data_wait_share``: the share of this step spent waiting for its batch."""
    take_wait = getattr(parts.env.clips, "take_wait_seconds", None)
    if take_wait is not None:
        metrics["train/data_wait_share"] = take_wait() / max(time.perf_counter() - step_start, 1e-9)


def discard_data_wait(parts: RunParts) -> None:
    """Forget waits before the loop: the env peeked at a batch while it was built."""
    take_wait = getattr(parts.env.clips, "take_wait_seconds", None)
    if take_wait is not None:
        take_wait()


def check_data_wait(parts: RunParts, values: dict) -> None:
    """Let the stream warn once, with remedies, when the window's wait share stays high."""
    check = getattr(parts.env.clips, "check_wait_share", None)
    if check is not None and "train/data_wait_share" in values:
        check(values["train/data_wait_share"])


class SamplerEpsilonCheck:
    """Logs how much of the sampler's AdamW sits under its epsilon; warns once when most of it does.

    There the sampler's steps follow the loss's scale rather than its learning rate (AdaMAE's
    coefficient 1e-4 times raw-pixel errors put its gradients near 1e-9; see optim.policy_eps).
    """

    def __init__(self, parts: RunParts) -> None:
        self.opt = parts.opt_policy
        self.warned = False

    def __call__(self, values: dict) -> None:
        share = epsilon_bound_share(self.opt) if self.opt is not None else None
        if share is None:
            return
        values["train/policy_eps_share"] = share
        if share > 0.5 and not self.warned:
            self.warned = True
            log.warning(
                "the sampler's AdamW epsilon (%g) exceeds the RMS of its gradients for %.0f%% of its entries: "
                "its steps scale with the loss (lr * grad / eps), not with its learning rate; "
                "lower optim.policy_eps (default 1e-12)", self.opt.param_groups[0]["eps"], 100 * share,
            )


def describe(parts: RunParts, cfg: TrainConfig) -> None:
    """One log line: what is trained, how large, on which data and device."""
    policy = parts.policy_module
    log.info(
        "policy=%s (%d params, effective mask ratio %.4f), model=%s (%d params, %d tokens), data=%s, device=%s, precision=%s",
        cfg.policy.name, sum(p.numel() for p in policy.parameters()), policy.effective_mask_ratio,
        cfg.model.preset, sum(p.numel() for p in parts.model.parameters()), parts.model.cfg.num_tokens,
        cfg.data.name, parts.env.device, cfg.trainer.precision,
    )


def describe_plan(plan: RunPlan) -> None:
    """One log line: the batch per optimizer step, how it is made, the length and the rates."""
    epochs = f" = {plan.max_steps / plan.steps_per_epoch:.4g} epoch(s) of {plan.steps_per_epoch} steps" if plan.steps_per_epoch else ""
    log.info(
        "%d clips per step (%d per process x %d processes x %d accumulated), %d steps%s, warmup %d steps, "
        "lr %.4g -> %.4g", plan.global_batch, plan.batch_size, plan.world_size, plan.accum_steps, plan.max_steps,
        epochs, plan.warmup_steps, plan.lr, plan.min_lr,
    )


def summarize(cfg: TrainConfig, parts: RunParts, progress: Progress, started: float, proc: Process) -> dict:
    """``summary.json``: what ran, the held-out figures, speed and memory."""
    policy = parts.policy_module
    summary = {
        "policy": cfg.policy.name or cfg.policy.options().get("_target_"),
        "objective": cfg.objective.name if parts.learnable else None,
        "model": cfg.model.preset,
        "data": cfg.data.name,
        "mask_ratio": cfg.mask_ratio,
        "effective_mask_ratio": float(policy.effective_mask_ratio),
        "steps": progress.step,
        "batch_size": cfg.trainer.batch_size,
        "accum_steps": parts.plan.accum_steps if parts.plan else 1,
        "global_batch": parts.plan.global_batch if parts.plan else cfg.trainer.batch_size * proc.world_size,
        "precision": cfg.trainer.precision,
        "world_size": proc.world_size,
        "final_loss_recon": progress.last_eval.get("eval/loss_recon"),
        "final_loss_recon_reference": progress.last_eval.get("eval/loss_recon_reference"),
        "fg_enrichment": progress.last_eval.get("eval/fg_enrichment"),
        "clips_per_s": progress.clips / progress.train_seconds if progress.train_seconds else None,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "wall_s": time.perf_counter() - started,
        "nonfinite_skipped": progress.nonfinite_skipped,
        "seed": cfg.trainer.seed,
    }
    if torch.cuda.is_available() and parts.env.device.type == "cuda":
        summary["peak_cuda_mib"] = torch.cuda.max_memory_allocated(parts.env.device) / 2**20
    skipped = getattr(parts.env.clips, "skipped", None)
    if skipped is not None:
        summary["data_skipped"] = skipped
    return summary


def fmt(values: dict) -> str:
    """``key=value, ...`` with floats to 4 significant digits."""
    return ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in values.items())
