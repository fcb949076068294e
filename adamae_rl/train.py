"""``python -m adamae_rl.train``: pre-train a video MAE with a masking policy.

Examples::

    python -m adamae_rl.train policy=adaptive                 # the built-in demo
    python -m adamae_rl.train policy=random mask_ratio=0.75
    python -m adamae_rl.train -m policy=adaptive,random,tube,frame
    torchrun --nproc_per_node=2 -m adamae_rl.train trainer.device=cpu

The loop is the one in DESIGN.md: ``env.reset -> policy -> env.step -> objective``, backward,
optimizer steps. Everything else here is plumbing: building parts from the config,
checkpoints, evaluation and logs.
"""

from __future__ import annotations

import logging
import os
import resource
import signal
import sys
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from tensordict import TensorDictBase
from torch import nn

from adamae_rl.api import geometry_of
from adamae_rl.builders import (
    autocast_dtype,
    build_model,
    build_objective_from_config,
    build_policy_from_config,
    import_plugins,
    plain,
)
from adamae_rl.data.factory import make_stream
from adamae_rl.data.loader import DataError
from adamae_rl.envs.masked_video import MaskedVideoEnv
from adamae_rl.metrics import foreground_enrichment
from adamae_rl.utils import checkpoint as ckpt_io
from adamae_rl.utils.distributed import Process, all_reduce_mean, init_process, shutdown
from adamae_rl.utils.logs import MetricLog
from adamae_rl.utils.optim import adamw, param_groups, warmup_cosine

log = logging.getLogger("adamae_rl.train")

CONFIG_DIR = Path(__file__).parent / "configs"
# Config keys that may differ when a run is resumed; any other difference means another run.
RESUMABLE_CHANGES = {
    "run_dir", "trainer.max_steps", "trainer.log_every", "trainer.eval_every", "trainer.ckpt_every",
    "trainer.keep_checkpoints", "trainer.resume", "trainer.device", "trainer.progress",
    "trainer.tensorboard", "trainer.eval_batches", "data.num_workers", "trainer.compile",
}


class RunError(RuntimeError):
    """A run stopped for a reason the user must see (non-finite loss, wrong resume, ...)."""


# --------------------------------------------------------------------------------------------------
# Parts of a run
# --------------------------------------------------------------------------------------------------
@dataclass
class Parts:
    model: nn.Module
    env: MaskedVideoEnv
    val_env: MaskedVideoEnv
    policy: nn.Module
    objective: nn.Module
    opt_mae: torch.optim.Optimizer
    sched_mae: Any
    opt_policy: torch.optim.Optimizer | None = None
    sched_policy: Any = None

    @property
    def learnable(self) -> bool:
        return self.opt_policy is not None


@dataclass
class Progress:
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
        means = {key: total / max(self.window_steps, 1) for key, total in self.window.items()}
        self.window, self.window_steps = {}, 0
        return means


def build_parts(cfg: dict, device: torch.device, proc: Process) -> Parts:
    """Model, envs (train + held-out), policy, objective and optimizers from the config."""
    trainer, optim = cfg["trainer"], cfg["optim"]
    torch.manual_seed(trainer["seed"])  # identical initial weights on every process
    model = build_model(cfg["model"]).to(device)
    precision = autocast_dtype(trainer["precision"])
    batch = int(trainer["batch_size"])
    pin = device.type == "cuda"
    # Each process reads its own clip order; process 0 of a single-process run uses the seed as is.
    train_stream = make_stream(cfg["data"], "train", geometry_of(model), batch, trainer["seed"] + 1009 * proc.rank, pin)
    val_stream = make_stream(cfg["data"], "val", geometry_of(model), batch, trainer["seed"], pin)
    env = MaskedVideoEnv(model, train_stream, batch, cfg["mask_ratio"], device, precision)
    val_env = MaskedVideoEnv(model, val_stream, batch, cfg["mask_ratio"], device, precision)
    policy = build_policy_from_config(cfg["policy"], model, cfg["mask_ratio"]).to(device)
    objective = build_objective_from_config(cfg["objective"], policy).to(device)

    lr = optim["blr"] * batch * proc.world_size / 256
    betas = tuple(optim["betas"])
    opt_mae = adamw(param_groups(model, optim["weight_decay"]), lr, betas)
    sched_mae = warmup_cosine(opt_mae, optim["warmup_steps"], trainer["max_steps"], optim["min_lr"])
    parts = Parts(model, env, val_env, policy, objective, opt_mae, sched_mae)
    if getattr(policy, "learnable", False):
        policy_lr = lr * optim["policy_lr_scale"]
        parts.opt_policy = adamw(param_groups(policy, optim["policy_weight_decay"]), policy_lr, betas)
        parts.sched_policy = warmup_cosine(
            parts.opt_policy, optim["warmup_steps"], trainer["max_steps"], optim["min_lr"] * optim["policy_lr_scale"]
        )
    if proc.distributed:
        from torch.nn.parallel import DistributedDataParallel as DDP

        ids = [device.index] if device.type == "cuda" else None
        env.forward_module = DDP(model, device_ids=ids)  # the MAE forward goes through DDP to sync gradients
        if parts.learnable:
            parts.policy = DDP(policy, device_ids=ids)
    return parts


def compile_parts(parts: Parts) -> bool:
    """``trainer.compile=true``: compile the transformer blocks of the MAE and the policy (inductor).

    Falls back to eager with a warning when compiling is not possible. True when compiled.
    """
    from adamae_rl.models.videomae import compile_blocks

    return compile_blocks(parts.model) and compile_blocks(unwrap(parts.policy))


def unwrap(module: nn.Module) -> nn.Module:
    return getattr(module, "module", module)


# --------------------------------------------------------------------------------------------------
# One step, evaluation
# --------------------------------------------------------------------------------------------------
def train_step(parts: Parts, cfg: dict, precision: torch.dtype | None, device: torch.device) -> tuple[dict, TensorDictBase, bool]:
    """One update of the MAE (and the policy, if it learns). Returns (metrics, td, finite)."""
    autocast = torch.autocast(device.type, dtype=precision) if precision else nullcontext()
    td = parts.env.reset()
    with autocast:
        td = parts.policy(td)
    td = parts.env.step(td)
    losses = parts.objective(td)
    loss_recon = td.get(("next", "loss_recon")).mean()
    policy_terms = [value for key, value in losses.items() if key.startswith("loss_")]
    total = loss_recon + sum(policy_terms) if policy_terms else loss_recon

    metrics = {"train/loss_recon": loss_recon.detach()}
    metrics.update({f"train/{key}": value.detach() for key, value in losses.items()})
    finite = bool(torch.isfinite(total))
    if not finite:
        return metrics, td, False

    optimizers = [parts.opt_mae] + ([parts.opt_policy] if parts.learnable else [])
    for opt in optimizers:
        opt.zero_grad(set_to_none=True)
    total.backward()
    clip = cfg["optim"].get("clip_grad")
    if clip:
        metrics["train/grad_norm"] = torch.nn.utils.clip_grad_norm_(parts.model.parameters(), clip)
    for opt in optimizers:
        opt.step()
    parts.sched_mae.step()
    if parts.learnable:
        parts.sched_policy.step()
    metrics["train/lr"] = parts.opt_mae.param_groups[0]["lr"]
    if "fg_tokens" in td.keys():
        metrics["train/fg_enrichment"] = foreground_enrichment(td.get("mask"), td.get("fg_tokens"))
    return metrics, td, True


@torch.no_grad()
def evaluate(parts: Parts, cfg: dict, precision: torch.dtype | None, device: torch.device) -> dict:
    """Held-out reconstruction loss and foreground enrichment of the policy's masks.

    The same held-out clips and the same mask draws are used at every evaluation (own RNG), and
    the training RNG is left untouched, so evaluating never changes the training trajectory.
    """
    parts.val_env.seek_clips({"epoch": 0, "start": 0})
    policy = unwrap(parts.policy)
    was_training = parts.model.training, policy.training
    parts.model.eval(), policy.eval()
    autocast = torch.autocast(device.type, dtype=precision) if precision else nullcontext()
    losses, masks, fgs = [], [], []
    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(cfg["trainer"]["seed"] + 7919)
        for _ in range(int(cfg["trainer"]["eval_batches"])):
            with autocast:
                td = parts.val_env.step(policy(parts.val_env.reset()))
            losses.append(td.get(("next", "loss_recon")).float().mean())
            if "fg_tokens" in td.keys():
                masks.append(td.get("mask"))
                fgs.append(td.get("fg_tokens"))
    parts.model.train(was_training[0]), policy.train(was_training[1])
    out = {"eval/loss_recon": float(all_reduce_mean(torch.stack(losses).mean()))}
    if masks:
        out["eval/fg_enrichment"] = foreground_enrichment(torch.cat(masks), torch.cat(fgs))
    return out


# --------------------------------------------------------------------------------------------------
# Checkpoints
# --------------------------------------------------------------------------------------------------
def checkpoint_state(parts: Parts, progress: Progress, cfg: dict) -> dict:
    policy = unwrap(parts.policy)
    return {
        "step": progress.step,
        "clips": progress.clips,
        "train_seconds": progress.train_seconds,
        "nonfinite_skipped": progress.nonfinite_skipped,
        "window": dict(progress.window),
        "window_steps": progress.window_steps,
        "model": parts.model.state_dict(),
        "policy": policy.state_dict() if parts.learnable else None,
        "objective": parts.objective.state_dict(),
        "opt_mae": parts.opt_mae.state_dict(),
        "sched_mae": parts.sched_mae.state_dict(),
        "opt_policy": parts.opt_policy.state_dict() if parts.learnable else None,
        "sched_policy": parts.sched_policy.state_dict() if parts.learnable else None,
        "train_stream": parts.env.clips.state_dict(),
        "rng": ckpt_io.rng_state(),
        "config": cfg,
    }


def restore(parts: Parts, progress: Progress, state: dict) -> None:
    parts.model.load_state_dict(state["model"])
    if parts.learnable:
        unwrap(parts.policy).load_state_dict(state["policy"])
        parts.opt_policy.load_state_dict(state["opt_policy"])
        parts.sched_policy.load_state_dict(state["sched_policy"])
    parts.objective.load_state_dict(state["objective"])
    parts.opt_mae.load_state_dict(state["opt_mae"])
    parts.sched_mae.load_state_dict(state["sched_mae"])
    parts.env.seek_clips(state["train_stream"])
    ckpt_io.set_rng_state(state["rng"])
    progress.step, progress.clips = int(state["step"]), int(state["clips"])
    progress.train_seconds = float(state["train_seconds"])
    progress.nonfinite_skipped = int(state["nonfinite_skipped"])
    progress.window, progress.window_steps = dict(state["window"]), int(state["window_steps"])


def save_checkpoint(parts: Parts, progress: Progress, cfg: dict, run_dir: Path, periodic: bool) -> Path:
    folder = run_dir / "checkpoints"
    state = checkpoint_state(parts, progress, cfg)
    last = ckpt_io.atomic_save(state, folder / "last.pt")
    if periodic:
        ckpt_io.atomic_save(state, folder / f"step_{progress.step:06d}.pt")
        ckpt_io.prune_periodic(folder, int(cfg["trainer"]["keep_checkpoints"]))
    return last


def find_resume(cfg: dict, run_dir: Path) -> dict | None:
    """The checkpoint to resume from, per ``trainer.resume`` (auto | never | a path)."""
    request = str(cfg["trainer"]["resume"])
    if request in ("never", "false", "False", "none", "None"):
        return None
    path = run_dir / "checkpoints" / "last.pt" if request == "auto" else Path(request)
    if request == "auto" and not path.exists():
        return None
    state = ckpt_io.load_checkpoint(path)
    changed = sorted(k for k in _config_diff(state["config"], cfg) if k not in RESUMABLE_CHANGES)
    if changed:
        raise RunError(
            f"{path} was written by a run with a different config ({', '.join(changed)}); "
            f"use another run_dir=..., or trainer.resume=never to start over in {run_dir}"
        )
    return state


def _config_diff(old: Any, new: Any, prefix: str = "") -> set[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        keys = set(old) | set(new)
        return set().union(*(_config_diff(old.get(k), new.get(k), f"{prefix}{k}.") for k in keys)) if keys else set()
    return set() if old == new else {prefix.rstrip(".")}


# --------------------------------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------------------------------
def run(cfg: dict, run_dir: Path) -> dict:
    """Train per ``cfg`` in ``run_dir``; returns the summary (also written to summary.json)."""
    started = time.perf_counter()
    trainer = cfg["trainer"]
    import_plugins(cfg.get("imports"))
    proc, device = init_process(trainer["device"])
    precision = autocast_dtype(trainer["precision"])
    if trainer["on_nonfinite"] not in ("stop", "skip"):
        raise ValueError(f"trainer.on_nonfinite must be 'stop' or 'skip', got {trainer['on_nonfinite']!r}")

    parts = build_parts(cfg, device, proc)
    if trainer.get("compile", False):
        compile_parts(parts)
    progress = Progress()
    resumed = find_resume(cfg, run_dir)
    if resumed is not None:
        restore(parts, progress, resumed)
        log.info("resumed from %s at step %d", run_dir / "checkpoints", progress.step)

    metric_log = MetricLog(run_dir, trainer["tensorboard"], progress.step if resumed else None) if proc.is_main else None
    if proc.is_main:
        _write_config(cfg, run_dir)
        log.info("run directory: %s", run_dir.resolve())
        _describe(parts, cfg)

    previous_handlers = _install_signal_handlers(progress)
    pbar = _progress_bar(trainer, progress.step, proc)
    window_start, window_clips = time.perf_counter(), 0
    max_steps = int(trainer["max_steps"])
    try:
        while progress.step < max_steps:
            t0 = time.perf_counter()
            metrics, td, finite = train_step(parts, cfg, precision, device)
            if not finite:
                _handle_nonfinite(progress, metrics, trainer, run_dir)
                continue
            progress.nonfinite_in_row = 0
            progress.step += 1
            progress.clips += int(trainer["batch_size"]) * proc.world_size
            progress.train_seconds += time.perf_counter() - t0
            window_clips += int(trainer["batch_size"]) * proc.world_size
            lr = metrics.pop("train/lr")
            progress.accumulate(metrics)
            step = progress.step

            if step % trainer["log_every"] == 0 or step == max_steps:
                rate = window_clips / max(time.perf_counter() - window_start, 1e-9)
                window_start, window_clips = time.perf_counter(), 0
                values = progress.window_means()  # each metric's mean over the steps since the last line
                values["train/lr"] = lr
                values["train/clips_per_s"] = rate
                skipped = getattr(parts.env.clips, "skipped", None)
                if skipped is not None:
                    values["data/skipped"] = skipped
                if metric_log:
                    metric_log.log(step, values)
                if pbar is not None:
                    pbar.set_postfix(loss=f"{values['train/loss_recon']:.4f}", clips_s=f"{rate:.1f}", refresh=False)
            if step % trainer["eval_every"] == 0 or step == max_steps:
                progress.last_eval = evaluate(parts, cfg, precision, device)
                if metric_log:
                    metric_log.log(step, progress.last_eval)
                    log.info("step %d: %s", step, _fmt(progress.last_eval))
            if proc.is_main and (step % trainer["ckpt_every"] == 0 or step == max_steps):
                save_checkpoint(parts, progress, cfg, run_dir, periodic=step % trainer["ckpt_every"] == 0)
            if pbar is not None:
                pbar.update(1)
            if progress.stop_signal is not None:
                break
    finally:
        if pbar is not None:
            pbar.close()
        for sig, handler in previous_handlers.items():
            signal.signal(sig, handler)

    if progress.stop_signal is not None:
        if proc.is_main:
            path = save_checkpoint(parts, progress, cfg, run_dir, periodic=False)
            name = signal.Signals(progress.stop_signal).name
            log.warning("%s at step %d: checkpoint saved to %s; run the same command again to resume", name, progress.step, path)
        if metric_log:
            metric_log.close()
        shutdown()
        raise SystemExit(128 + progress.stop_signal)

    if not progress.last_eval:  # a resumed run that was already complete
        if proc.is_main:
            log.info(
                "%s already holds a finished run (%d/%d steps): summary re-evaluated; "
                "trainer.resume=never starts over, run_dir=... starts a new run",
                run_dir, progress.step, max_steps,
            )
        progress.last_eval = evaluate(parts, cfg, precision, device)
    summary = _summary(cfg, parts, progress, started, proc)
    if proc.is_main:
        _write_json(run_dir / "summary.json", summary)
        log.info("summary: %s", _fmt(summary))
    if metric_log:
        metric_log.close()
    shutdown()
    return summary


def _handle_nonfinite(progress: Progress, metrics: dict, trainer: dict, run_dir: Path) -> None:
    detail = ", ".join(f"{k}={float(v):.4g}" for k, v in metrics.items())
    last = run_dir / "checkpoints" / "last.pt"
    if trainer["on_nonfinite"] == "stop":
        raise RunError(
            f"non-finite loss at step {progress.step + 1} ({detail}); stopped without updating. "
            f"Last good checkpoint: {last if last.exists() else 'none yet'}. "
            f"Lower optim.blr or set trainer.on_nonfinite=skip."
        )
    progress.nonfinite_in_row += 1
    progress.nonfinite_skipped += 1
    log.warning("non-finite loss at step %d (%s): update skipped", progress.step + 1, detail)
    if progress.nonfinite_in_row >= int(trainer["max_nonfinite"]):
        raise RunError(
            f"{progress.nonfinite_in_row} non-finite losses in a row at step {progress.step + 1}; stopping. "
            f"Last good checkpoint: {last if last.exists() else 'none yet'}."
        )


def _summary(cfg: dict, parts: Parts, progress: Progress, started: float, proc: Process) -> dict:
    policy = unwrap(parts.policy)
    summary = {
        "policy": cfg["policy"].get("name") or cfg["policy"].get("_target_"),
        "objective": cfg["objective"]["name"] if getattr(policy, "learnable", False) else None,
        "model": cfg["model"]["preset"],
        "data": cfg["data"]["name"],
        "mask_ratio": float(cfg["mask_ratio"]),
        "effective_mask_ratio": float(policy.effective_mask_ratio),
        "steps": progress.step,
        "batch_size": int(cfg["trainer"]["batch_size"]),
        "world_size": proc.world_size,
        "final_loss_recon": progress.last_eval.get("eval/loss_recon"),
        "fg_enrichment": progress.last_eval.get("eval/fg_enrichment"),
        "clips_per_s": progress.clips / progress.train_seconds if progress.train_seconds else None,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "wall_s": time.perf_counter() - started,
        "nonfinite_skipped": progress.nonfinite_skipped,
        "seed": int(cfg["trainer"]["seed"]),
    }
    if torch.cuda.is_available() and parts.env.device.type == "cuda":
        summary["peak_cuda_mib"] = torch.cuda.max_memory_allocated(parts.env.device) / 2**20
    skipped = getattr(parts.env.clips, "skipped", None)
    if skipped is not None:
        summary["data_skipped"] = skipped
    return summary


def _describe(parts: Parts, cfg: dict) -> None:
    policy = unwrap(parts.policy)
    n_mae = sum(p.numel() for p in parts.model.parameters())
    n_pol = sum(p.numel() for p in policy.parameters())
    log.info(
        "policy=%s (%d params, effective mask ratio %.4f), model=%s (%d params, %d tokens), data=%s, device=%s",
        cfg["policy"].get("name"), n_pol, policy.effective_mask_ratio, cfg["model"]["preset"], n_mae,
        parts.model.cfg.num_tokens, cfg["data"]["name"], parts.env.device,
    )


def _progress_bar(trainer: dict, initial: int, proc: Process):
    if not (trainer["progress"] and proc.is_main):
        return None
    from tqdm.auto import tqdm

    # Redraw less often when stderr is a log file rather than a terminal.
    interval = 0.5 if sys.stderr.isatty() else 30.0
    return tqdm(
        total=int(trainer["max_steps"]), initial=initial, desc="train", unit="step", dynamic_ncols=True, mininterval=interval
    )


def _install_signal_handlers(progress: Progress) -> dict:
    """SIGINT/SIGTERM finish the current step, save a checkpoint and exit; a second one kills.

    Returns the previous handlers, which ``run`` puts back when it ends.
    """

    def handler(signum, frame):
        progress.stop_signal = signum
        signal.signal(signum, signal.SIG_DFL)

    previous = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        previous[sig] = signal.signal(sig, handler)
    return previous


def _write_config(cfg: dict, run_dir: Path) -> None:
    import yaml

    run_dir.mkdir(parents=True, exist_ok=True)
    tmp = run_dir / ".config.yaml.tmp"
    tmp.write_text(yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8")
    os.replace(tmp, run_dir / "config.yaml")


def _write_json(path: Path, value: dict) -> None:
    import json

    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(value, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def _fmt(values: dict) -> str:
    return ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in values.items())


# --------------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------------
def _hydra_entry() -> None:
    import hydra
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import DictConfig

    @hydra.main(version_base="1.3", config_path="configs", config_name="config")
    def _main(cfg: DictConfig) -> None:
        run_dir = Path(HydraConfig.get().runtime.output_dir)
        try:
            run(plain(cfg), run_dir)
        except (ValueError, RunError, DataError, FileNotFoundError, KeyError) as err:
            message = str(err.args[0] if isinstance(err, KeyError) and err.args else err)
            if "Traceback" in message:  # re-raised from a loader worker: keep its final line
                message = message.strip().splitlines()[-1]
            # One line on stderr, no traceback (the console log handler would repeat it on stdout).
            print(f"error: {message}", file=sys.stderr)
            raise SystemExit(2) from None

    _main()


def rewrite_policy_override(argv: list[str], config_dirs: list[Path]) -> list[str]:
    """``policy=NAME`` with no ``policy/NAME.yaml`` -> ``policy=registered policy.name=NAME``.

    Registered plugins (decorator or entry point) have no config file, yet ``policy=NAME`` must
    select them; unknown names then fail in the registry with the list of known policies.
    """
    known = {p.stem for d in config_dirs for p in (d / "policy").glob("*.yaml")}
    out = []
    for arg in argv:
        if arg.startswith("policy=") and "," not in arg:
            name = arg.split("=", 1)[1]
            if name and name not in known:
                out += ["policy=registered", f"policy.name={name}"]
                continue
        out.append(arg)
    return out


def _user_config_dirs(argv: list[str]) -> list[Path]:
    dirs = []
    for i, arg in enumerate(argv):
        if arg in ("--config-dir", "-cd") and i + 1 < len(argv):
            dirs.append(Path(argv[i + 1]))
        elif arg.startswith("--config-dir="):
            dirs.append(Path(arg.split("=", 1)[1]))
    return dirs


def main() -> None:
    logging.getLogger("torchrl").setLevel(logging.WARNING)
    sys.argv = [sys.argv[0]] + rewrite_policy_override(sys.argv[1:], [CONFIG_DIR, *_user_config_dirs(sys.argv)])
    _hydra_entry()


if __name__ == "__main__":
    main()
