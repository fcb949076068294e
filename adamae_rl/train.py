"""``python -m adamae_rl.train``: pre-train a video MAE with a masking policy.

Examples::

    python -m adamae_rl.train policy=adaptive                 # the built-in demo
    python -m adamae_rl.train policy=random mask_ratio=0.75
    python -m adamae_rl.train -m policy=adaptive,random,tube,frame
    torchrun --nproc_per_node=2 -m adamae_rl.train trainer.device=cpu

The recipe, top to bottom: check the config, lock the run directory, build the run's parts
(``builders.build_run``), resume if a checkpoint is there, then loop — ``env.reset -> policy ->
env.step -> objectives``, sum the ``loss_*`` terms, backward, optimizer steps — logging,
evaluating and checkpointing at their intervals. Run state and checkpoints live in
``adamae_rl.training.state``, the loop's services in ``adamae_rl.training.hooks``.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import time
from contextlib import ExitStack, nullcontext
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from tensordict import TensorDictBase

from adamae_rl.builders import RunParts, autocast_dtype, build_run, resolve_precision
from adamae_rl.cli import run_command, strip_debug_flag
from adamae_rl.config import plain
from adamae_rl.errors import ConfigError
from adamae_rl.metrics import foreground_enrichment
from adamae_rl.policies.base import NonFiniteError
from adamae_rl.schema import TrainConfig, as_config, validate_config
from adamae_rl.training import hooks
from adamae_rl.training.heldout import evaluate
from adamae_rl.training.state import Progress, find_resume, restore, save_checkpoint, write_run_config
from adamae_rl.utils import checkpoint as ckpt_io
from adamae_rl.utils.distributed import Process, agree_any, agree_max, init_process, shutdown
from adamae_rl.utils.files import atomic_write_json
from adamae_rl.utils.logs import MetricLog, check_logger, flatten_config
from adamae_rl.utils.rundir import RunDirLock, claim_run_dir
from adamae_rl.visualization.figures import training_figure

log = logging.getLogger("adamae_rl.train")

CONFIG_DIR = Path(__file__).parent / "configs"


def run(cfg: TrainConfig | Mapping[str, Any], run_dir: Path, overrides: list[str] | None = None) -> dict:
    """Train per ``cfg`` in ``run_dir``; returns the summary (also written to summary.json).

    ``overrides``: the command line's overrides, recorded in ``overrides.yaml`` once the run
    is accepted (a refused resume writes nothing into the run directory).
    """
    cfg = validate_config(cfg)
    check_logger(cfg.logger.model_dump())
    check_run_dir(run_dir)
    proc, device = init_process(cfg.trainer.device)
    # auto becomes what runs here, so that config.yaml records it and a resume compares it.
    precision = resolve_precision(cfg.trainer.precision, device)
    cfg = cfg.model_copy(update={"trainer": cfg.trainer.model_copy(update={"precision": precision})})
    lock = RunDirLock(run_dir).acquire() if proc.is_main else None  # one run per directory
    try:
        return train(cfg, Path(run_dir), proc, device, overrides)
    finally:
        if lock is not None:
            lock.release()


def check_run_dir(run_dir: str | Path) -> None:
    """Create ``run_dir`` and prove it writable, or raise one clear error naming it."""
    run_dir = Path(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise ConfigError(f"run_dir {run_dir} exists and is not a directory")
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        probe = run_dir / f".write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        raise ConfigError(f"run_dir {run_dir} is not writable: {err.strerror or err}") from None
    claim_run_dir(run_dir)  # never a config.yaml or checkpoints/ that another program wrote


def train(cfg: TrainConfig, run_dir: Path, proc: Process, device: torch.device, overrides: list[str] | None) -> dict:
    """The training loop, in a locked run directory."""
    started = time.perf_counter()
    trainer = cfg.trainer
    precision = autocast_dtype(trainer.precision)
    if proc.is_main:  # temporary files of writes that a kill interrupted
        ckpt_io.remove_stale_temporaries(run_dir / "checkpoints")
        ckpt_io.remove_stale_temporaries(run_dir)

    parts = build_run(cfg, device, proc)
    plan = parts.plan
    max_steps, clips_per_step = plan.max_steps, plan.global_batch
    progress = Progress()
    resumed = find_resume(cfg, run_dir)
    if resumed is not None:
        restore(parts, progress, resumed, proc)
        log.info("resumed from %s at step %d", run_dir / "checkpoints", progress.step)
    metrics_log = MetricLog(run_dir, trainer.tensorboard, progress.step if resumed else None,
                            cfg.logger.model_dump()) if proc.is_main else None
    if proc.is_main:
        write_run_config(cfg, run_dir, overrides)
        log.info("run directory: %s", run_dir.resolve())
        hooks.describe(parts, cfg)
        hooks.describe_plan(plan)

    window_start, window_clips = time.perf_counter(), 0
    # A policy with a schedule over training (e.g. loss_predictor's easy-to-hard share) reads the
    # share of training done before every step; computed from the step, so a resume restores it.
    set_progress = getattr(parts.policy_module, "set_progress", None)
    check_sampler_epsilon = hooks.SamplerEpsilonCheck(parts)
    hooks.discard_data_wait(parts)
    stop_signal = 0  # a signal any process received, agreed once per step (0: none)
    with hooks.stop_on_signals(progress), hooks.progress_bar(trainer, max_steps, progress.step, proc) as bar:
        while progress.step < max_steps and not stop_signal:
            t0 = time.perf_counter()
            if set_progress is not None:
                set_progress(progress.step / max_steps)
            metrics, td, finite = train_step(parts, cfg, precision)
            hooks.record_data_wait(parts, metrics, t0)
            # Every process stops after the same step, whichever of them got the signal.
            stop_signal = agree_max(progress.stop_signal or 0)
            if not finite:
                hooks.handle_nonfinite(progress, metrics, trainer, run_dir)
                continue
            progress.nonfinite_in_row = 0
            progress.step += 1
            progress.clips += clips_per_step
            progress.train_seconds += time.perf_counter() - t0
            window_clips += clips_per_step
            lr = metrics.pop("train/lr")
            progress.accumulate(metrics)
            step = progress.step

            if step % trainer.log_every == 0 or step == max_steps:
                rate = window_clips / max(time.perf_counter() - window_start, 1e-9)
                window_start, window_clips = time.perf_counter(), 0
                values = {**progress.window_means(), "train/lr": lr, "train/clips_per_s": rate}
                if plan.steps_per_epoch:
                    values["train/epoch"] = step / plan.steps_per_epoch
                if getattr(parts.env.clips, "skipped", None) is not None:
                    values["data/skipped"] = parts.env.clips.skipped
                if proc.is_main:
                    hooks.check_data_wait(parts, values)
                    check_sampler_epsilon(values)
                if metrics_log:
                    metrics_log.log(step, values)
                if bar is not None:
                    bar.set_postfix(loss=f"{values['train/loss_recon']:.4f}", clips_s=f"{rate:.1f}", refresh=False)
            if step % trainer.eval_every == 0 or step == max_steps:
                progress.last_eval = evaluate(parts, cfg, precision)
                if metrics_log:
                    metrics_log.log(step, progress.last_eval)
                    log.info("step %d: %s", step, hooks.fmt(progress.last_eval))
                if metrics_log and metrics_log.wants_figures:
                    figure = training_figure(parts.model, parts.policy_module, parts.val_env, trainer.seed, f"step {step}")
                    metrics_log.log_figure("eval/masks", figure, step)
            if step % trainer.ckpt_every == 0 or step == max_steps:  # every process: its RNG state goes in
                save_checkpoint(parts, progress, cfg, run_dir, periodic=step % trainer.ckpt_every == 0, proc=proc)
            if bar is not None:
                bar.update(1)

    if stop_signal:  # SIGINT/SIGTERM to any process: rank 0 saves, every process exits
        path = save_checkpoint(parts, progress, cfg, run_dir, periodic=False, proc=proc)
        if proc.is_main:
            name = signal.Signals(stop_signal).name
            log.warning("%s at step %d: checkpoint saved to %s; run the same command again to resume", name, progress.step, path)
        if metrics_log:
            metrics_log.close()
        parts.release_ddp()
        shutdown()
        raise SystemExit(128 + stop_signal)

    if not progress.last_eval:  # a resumed run that was already complete
        if proc.is_main:
            log.info(
                "%s already holds a finished run (%d/%d steps): summary re-evaluated; "
                "trainer.resume=never starts over, run_dir=... starts a new run",
                run_dir, progress.step, max_steps,
            )
        progress.last_eval = evaluate(parts, cfg, precision)
    summary = hooks.summarize(cfg, parts, progress, started, proc)
    if proc.is_main:
        atomic_write_json(run_dir / "summary.json", summary)
        log.info("summary: %s", hooks.fmt(summary))
    if metrics_log:
        metrics_log.log_hparams(flatten_config(cfg.as_dict()), progress.last_eval)
        metrics_log.close()
    parts.release_ddp()
    shutdown()
    return summary


def train_step(
    parts: RunParts, cfg: TrainConfig | Mapping[str, Any], precision: torch.dtype | None
) -> tuple[dict, TensorDictBase, bool]:
    """One optimizer step of the MAE (and the policy, if it learns) over ``plan.accum_steps``
    micro-batches. Returns (metrics, the last micro-batch's td, updated).

    Whether to update is agreed by every process before the last backward (the one that
    all-reduces gradients): a non-finite loss, or a policy's non-finite logits, on any process
    skips the update on all of them, so none waits forever for the others' gradients.
    """
    cfg = as_config(cfg)
    accum = parts.plan.accum_steps if parts.plan is not None else 1
    for opt in parts.optimizers:
        opt.zero_grad(set_to_none=True)
    sums: dict[str, torch.Tensor] = {}
    local_ok, problem = True, {}
    for index in range(accum):
        last = index == accum - 1
        terms, td, error = _micro_batch(parts, precision)
        total = sum(value for key, value in terms.items() if key.startswith("loss_")) if error is None else None
        ok = total is not None and bool(torch.isfinite(total))
        if not ok and local_ok:  # the first problem of this step is the one reported
            problem = {"train/policy_error": error} if error else {f"train/{k}": v.detach() for k, v in terms.items()}
        local_ok = local_ok and ok
        if last and agree_any(not local_ok)[0]:
            for opt in parts.optimizers:  # what earlier micro-batches accumulated goes too
                opt.zero_grad(set_to_none=True)
            return problem or {"train/nonfinite_on": "another process"}, td, False
        for key, value in terms.items():
            sums[key] = sums.get(key, 0.0) + value.detach() / accum
        if local_ok:
            # Micro-batches before the last keep their gradients local (DDP no_sync); the last
            # backward all-reduces the sum.
            with nullcontext() if last else _no_sync(parts):
                _backward(parts, total / accum)

    metrics = {f"train/{key}": value for key, value in sums.items()}
    clip = cfg.optim.clip_grad
    if parts.scaler is not None:  # fp16: gradients back to their true scale before clipping and stepping
        for opt in parts.optimizers:
            parts.scaler.unscale_(opt)
    if clip:
        metrics["train/grad_norm"] = torch.nn.utils.clip_grad_norm_(parts.model.parameters(), clip)
    for opt in parts.optimizers:
        if parts.scaler is not None:
            parts.scaler.step(opt)  # skipped by the scaler when its gradients overflowed
        else:
            opt.step()
    if parts.scaler is not None:
        parts.scaler.update()
        metrics["train/loss_scale"] = parts.scaler.get_scale()
    for scheduler in parts.schedulers:
        scheduler.step()
    metrics["train/lr"] = parts.opt_mae.param_groups[0]["lr"]
    if "fg_tokens" in td.keys():
        metrics["train/fg_enrichment"] = foreground_enrichment(td.get("mask"), td.get("fg_tokens"))
    return metrics, td, True


def _micro_batch(parts: RunParts, precision: torch.dtype | None) -> tuple[dict, TensorDictBase, str | None]:
    """``env.reset -> policy -> env.step -> objectives`` on one micro-batch: (loss terms, td, the
    policy's error message or None)."""
    device = parts.env.device
    autocast = torch.autocast(device.type, dtype=precision) if precision else nullcontext()
    td = parts.env.reset()
    try:
        with autocast:
            td = parts.policy(td)
    except NonFiniteError as err:  # reported like a non-finite loss (stop, or skip the update)
        return {}, td, str(err)
    td = parts.env.step(td)
    terms = {}
    for objective in parts.objectives:
        terms.update(objective(td).items())
    return terms, td, None


def _backward(parts: RunParts, loss: torch.Tensor) -> None:
    (parts.scaler.scale(loss) if parts.scaler is not None else loss).backward()


def _no_sync(parts: RunParts) -> ExitStack:
    """Every DistributedDataParallel wrapper of the run in ``no_sync`` (gradients stay local)."""
    stack = ExitStack()
    for module in (parts.env.forward_module, parts.policy):
        if hasattr(module, "no_sync"):
            stack.enter_context(module.no_sync())
    return stack


# --------------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------------
def _hydra_entry() -> None:
    import hydra
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import DictConfig

    @hydra.main(version_base="1.3", config_path="configs", config_name="config")
    def _main(cfg: DictConfig) -> None:
        hydra_cfg = HydraConfig.get()
        run_dir = Path(hydra_cfg.runtime.output_dir)
        # Hydra's console handler already logs; errors go to stderr as one line.
        run_command(lambda: run(plain(cfg), run_dir, list(hydra_cfg.overrides.task)), setup=False)

    _main()


def preflight(argv: list[str]) -> None:
    """Compose and validate a single run's config before Hydra touches the file system.

    Hydra creates the run directory and opens its log file before the task runs, so a run_dir
    that is a file, an unwritable one, or a bad override would otherwise end in Hydra's
    traceback. Multiruns and runs with a config directory of their own are validated per job.
    """
    if any(a in ("-m", "--multirun", "-cd", "--config-dir", "-cp", "--config-path", "-cn", "--config-name")
           or a.startswith(("--config-dir=", "--config-path=", "--config-name=", "hydra.", "--")) for a in argv):
        return
    from hydra import compose, initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    try:
        with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
            cfg = plain(compose("config", overrides=list(argv)))
    except (HydraException, OmegaConfBaseException) as err:
        raise ConfigError(" ".join(str(err).split())) from None
    cfg = validate_config(cfg)
    check_logger(cfg.logger.model_dump())
    check_run_dir(cfg.run_dir)


# Config groups whose choices may be registered plug-ins without a config file, and the key that
# names the plug-in inside the group.
PLUGIN_GROUPS = {"policy": "name", "model": "preset", "objective": "name", "data": "name"}


def rewrite_plugin_overrides(argv: list[str], config_dirs: list[Path]) -> list[str]:
    """``GROUP=NAME`` with no ``GROUP/NAME.yaml`` -> ``GROUP=registered GROUP.KEY=NAME``.

    Registered plug-ins (decorator or entry point) have no config file, yet ``policy=NAME``,
    ``model=NAME``, ``objective=NAME`` and ``data=NAME`` must select them; unknown names then fail
    in the registry with the list of known ones.
    """
    out = []
    for arg in argv:
        group, sep, name = arg.partition("=")
        if sep and group in PLUGIN_GROUPS and name:
            known = {p.stem for d in config_dirs for p in (d / group).glob("*.yaml")}
            if "," in name:  # a sweep (-m policy=a,b,c): each name without a file gets a stored config
                for choice in name.split(","):
                    if choice not in known:
                        store_plugin_config(group, choice)
            elif name not in known:
                out += [f"{group}=registered", f"{group}.{PLUGIN_GROUPS[group]}={name}"]
                continue
        out.append(arg)
    return out


def store_plugin_config(group: str, name: str) -> None:
    """Make ``GROUP/NAME`` a Hydra config (``GROUP/registered.yaml`` with its name key set), so a
    sweep may list plug-ins beside file-backed choices. Unknown names fail in the registry later."""
    from hydra.core.config_store import ConfigStore
    from omegaconf import OmegaConf

    node = OmegaConf.to_container(OmegaConf.load(CONFIG_DIR / group / "registered.yaml"))
    node[PLUGIN_GROUPS[group]] = name
    ConfigStore.instance().store(group=group, name=name, node=node)


def registered_policies_line() -> str:
    """The ``--help`` line listing every registered policy (config file or not)."""
    from adamae_rl.policies import list_policies

    return f"Registered policies (policy=NAME, or sweep with -m policy=A,B,C): {', '.join(list_policies())}"


def _user_config_dirs(argv: list[str]) -> list[Path]:
    dirs = []
    for i, arg in enumerate(argv):
        if arg in ("--config-dir", "-cd") and i + 1 < len(argv):
            dirs.append(Path(argv[i + 1]))
        elif arg.startswith("--config-dir="):
            dirs.append(Path(arg.split("=", 1)[1]))
    return dirs


def sweep_dir_override(argv: list[str]) -> list[str]:
    """``-m ... run_dir=X``: the sweep's jobs go to ``X/<overrides>`` (Hydra's sweep dir is X).

    Raises:
        ConfigError: ``run_dir`` itself is swept (every job would share one directory).
    """
    if not any(a in ("-m", "--multirun") for a in argv):
        return argv
    given = [a.split("=", 1)[1] for a in argv if a.startswith("run_dir=")]
    if not given:
        return argv
    if "," in given[-1] or given[-1].startswith(("range(", "choice(", "glob(")):
        raise ConfigError(f"run_dir cannot be swept (got {given[-1]!r}): give one run_dir=X, each job runs in X/<its overrides>")
    if any(a.startswith("hydra.sweep.dir=") for a in argv):
        return argv
    return [*argv, f"hydra.sweep.dir={given[-1]}"]


def main() -> None:
    logging.getLogger("torchrl").setLevel(logging.WARNING)
    argv = rewrite_plugin_overrides(strip_debug_flag(sys.argv[1:]), [CONFIG_DIR, *_user_config_dirs(sys.argv)])
    argv = run_command(lambda: sweep_dir_override(argv), setup=False)
    run_command(lambda: preflight(argv), setup=False)
    sys.argv = [sys.argv[0], *argv]
    if "--help" in argv or "-h" in argv:
        try:
            _hydra_entry()  # prints Hydra's help and exits
        finally:
            print(registered_policies_line())
        return
    _hydra_entry()


if __name__ == "__main__":
    main()
