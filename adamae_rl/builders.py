"""The one assembler: the parts of a run from its config, and a finished run back from its checkpoint.

:func:`build_run` builds everything a training run updates (model, train and held-out envs,
policy, objectives, optimizers, schedulers) through the public ``make_*`` functions; training,
the bench and the tests use it. :func:`load_run` rebuilds a run's model and policy from a
checkpoint for evaluation and figures, through the same builders, without ever importing or
calling what the checkpoint names (see its docstring).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from adamae_rl.api import make_env, make_objective, make_policy
from adamae_rl.config import import_plugins, plain
from adamae_rl.envs.masked_video import MaskedVideoEnv
from adamae_rl.errors import ConfigError
from adamae_rl.geometry import policy_geometry
from adamae_rl.models.presets import build_mae
from adamae_rl.models.videomae import VideoMAE
from adamae_rl.objectives.reconstruction import ReconstructionLoss
from adamae_rl.policies.registry import UnknownPolicyError
from adamae_rl.schema import ModelConfig, TrainConfig, as_config, with_legacy_defaults
from adamae_rl.utils.checkpoint import CheckpointError, load_checkpoint
from adamae_rl.utils.compile import compile_blocks
from adamae_rl.utils.distributed import Process, seed_process
from adamae_rl.utils.optim import adamw, param_groups, warmup_cosine

PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def build_model(model_cfg: ModelConfig | Mapping[str, Any], load_weights: bool = True) -> VideoMAE:  # type: ignore[valid-type]
    """MAE from the ``model`` config group: ``preset`` plus MAEConfig field overrides.

    ``init_from`` (a path) loads pre-trained weights, checked against the config's geometry;
    ``load_weights=False`` skips that (the caller loads a checkpoint of its own).
    """
    if isinstance(model_cfg, ModelConfig):
        model_cfg = {k: v for k, v in model_cfg.model_dump().items() if v is not None}
    fields = dict(plain(model_cfg))
    preset = fields.pop("preset", "tiny")
    init_from = fields.pop("init_from", None)
    checkpointing = bool(fields.pop("grad_checkpointing", False))
    model = build_mae(preset, **fields)
    model.grad_checkpointing = checkpointing
    if init_from and load_weights:
        from adamae_rl.interop import init_from as load_pretrained

        load_pretrained(model, init_from)
    return model


def build_policy_from_config(
    policy_cfg: Mapping[str, Any], model: VideoMAE, mask_ratio: float, allowed_targets: tuple[str, ...] | None = None
) -> nn.Module:
    """Policy from the ``policy`` config group (``name`` or ``_target_`` plus options).

    ``allowed_targets``: None for the user's own config; for a config read from a file, the
    ``_target_`` paths the user allowed (see :func:`adamae_rl.policies.registry.resolve_factory`).
    """
    return make_policy(dict(plain(policy_cfg)), geometry=policy_geometry(model.cfg, mask_ratio), allowed_targets=allowed_targets)


def autocast_dtype(precision: str) -> torch.dtype | None:
    if precision not in PRECISIONS:
        raise ConfigError(f"trainer.precision must be one of {sorted(PRECISIONS)}, got {precision!r}")
    return PRECISIONS[precision]


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` runs bf16 matmuls in hardware: a CUDA GPU with bf16 support, or a CPU
    with AVX-512 bf16 or AMX (elsewhere bf16 is emulated and slower than fp32)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")  # torch.cpu's own CPU checks
        return any(bool(getattr(torch.cpu, name, lambda: False)()) for name in probes)
    return False


def resolve_precision(precision: str, device: torch.device) -> str:
    """``trainer.precision``: ``auto`` -> ``bf16`` where :func:`native_bf16`, else ``fp32``;
    ``fp32``, ``bf16`` and ``fp16`` (CUDA only: autocast with a gradient scaler, for GPUs without
    bf16 such as the V100) are kept as asked."""
    if precision == "auto":
        return "bf16" if native_bf16(device) else "fp32"
    autocast_dtype(precision)  # refuses unknown names
    if precision == "fp16" and device.type != "cuda":
        raise ConfigError(f"trainer.precision=fp16 needs a CUDA GPU (device here: {device}); use bf16 or fp32")
    return precision


@dataclass(frozen=True)
class RunPlan:
    """A run's batch and schedule in optimizer steps, resolved from the config, the number of
    processes and the training list's length (epochs become steps here, once).

    ``accum_steps`` micro-batches of ``batch_size`` clips on each of ``world_size`` processes make
    one optimizer step of ``global_batch`` clips; the learning rates scale with ``global_batch``.
    """

    batch_size: int
    world_size: int
    accum_steps: int
    steps_per_epoch: int | None  # None: the clip source has no length (an endless iterator)
    max_steps: int
    warmup_steps: int
    lr: float
    min_lr: float

    @property
    def global_batch(self) -> int:
        return self.batch_size * self.world_size * self.accum_steps


def resolve_accum_steps(cfg: TrainConfig | Mapping[str, Any], world_size: int) -> int:
    """``trainer.accum_steps``, or the count that ``trainer.global_batch_size`` needs on this many processes."""
    trainer = as_config(cfg).trainer
    batch, wanted = trainer.batch_size, trainer.global_batch_size
    if wanted is None:
        return trainer.accum_steps
    per_step = batch * world_size
    if wanted % per_step:
        raise ConfigError(
            f"trainer.global_batch_size={wanted} is not divisible by batch_size {batch} x {world_size} processes "
            f"= {per_step}: change trainer.batch_size or the number of processes"
        )
    return wanted // per_step


def plan_run(cfg: TrainConfig | Mapping[str, Any], world_size: int, batches_per_epoch: int | None) -> RunPlan:
    """The :class:`RunPlan` of ``cfg`` on ``world_size`` processes; ``batches_per_epoch``: global
    micro-batches in one epoch of the training list (None for a clip source without length)."""
    cfg = as_config(cfg)
    trainer, optim = cfg.trainer, cfg.optim
    batch = trainer.batch_size
    accum = resolve_accum_steps(cfg, world_size)
    per_epoch = max(batches_per_epoch // accum, 1) if batches_per_epoch else None

    def steps(count: int | None, epochs: float | None, what: str) -> int:
        if epochs is None:
            return int(count or 0)
        if per_epoch is None:
            raise ConfigError(f"{what} is given in epochs, but the clip source has no length; give it in steps")
        return max(round(epochs * per_epoch), 0)

    max_steps = max(steps(trainer.max_steps, trainer.max_epochs, "trainer.max_epochs"), 1)
    warmup = steps(optim.warmup_steps, optim.warmup_epochs, "optim.warmup_epochs")
    global_batch = batch * world_size * accum
    lr = optim.blr * global_batch / 256
    min_lr = optim.min_blr * global_batch / 256 if optim.min_blr is not None else optim.min_lr
    return RunPlan(batch, world_size, accum, per_epoch, max_steps, warmup, lr, min_lr)


@dataclass
class RunParts:
    """Everything a training run builds and updates.

    ``policy`` may be a ``DistributedDataParallel`` wrapper (use :attr:`policy_module` for the
    policy itself); ``objectives`` lists the reconstruction loss and the policy's loss, whose
    ``loss_*`` terms the loop sums.
    """

    model: VideoMAE
    env: MaskedVideoEnv
    val_env: MaskedVideoEnv
    policy: nn.Module
    recon_loss: nn.Module
    policy_loss: nn.Module
    opt_mae: torch.optim.Optimizer
    sched_mae: Any
    plan: RunPlan | None = None
    opt_policy: torch.optim.Optimizer | None = None
    sched_policy: Any = None
    # fp16 only: one loss scaler for every optimizer (see train.train_step).
    scaler: torch.amp.GradScaler | None = None

    def release_ddp(self) -> None:
        """Put the modules inside the DistributedDataParallel wrappers back in their places, so that
        the wrappers can be freed before the process group is destroyed (see
        :func:`adamae_rl.utils.distributed.shutdown`). The run cannot train after this."""
        self.policy = self.policy_module
        self.env.forward_module = None

    @property
    def learnable(self) -> bool:
        return self.opt_policy is not None

    @property
    def policy_module(self) -> nn.Module:
        return unwrap(self.policy)

    @property
    def objectives(self) -> list[nn.Module]:
        return [self.recon_loss, self.policy_loss]

    @property
    def optimizers(self) -> list[torch.optim.Optimizer]:
        return [self.opt_mae] + ([self.opt_policy] if self.learnable else [])

    @property
    def schedulers(self) -> list[Any]:
        return [self.sched_mae] + ([self.sched_policy] if self.learnable else [])


def unwrap(module: nn.Module) -> nn.Module:
    """The module inside a ``DistributedDataParallel`` wrapper (or the module itself)."""
    return getattr(module, "module", module)


def build_run(cfg: TrainConfig | Mapping[str, Any], device: torch.device, proc: Process) -> RunParts:
    """The parts of a training run from its config (a mapping is checked first, ``adamae_rl.schema``).

    Every process starts from identical weights (seeded by ``trainer.seed``), reads its own share
    of each epoch's clips, and then draws its own masks and augmentation (torch, NumPy and Python
    RNGs seeded by :func:`~adamae_rl.utils.distributed.process_seed`). Under ``torchrun`` the MAE's
    forward and the learnable policy are wrapped in DistributedDataParallel here, where they are built.
    """
    cfg = as_config(cfg)
    trainer, optim = cfg.trainer, cfg.optim
    seed, batch, mask_ratio = trainer.seed, trainer.batch_size, cfg.mask_ratio
    precision_name = resolve_precision(trainer.precision, device)
    precision = autocast_dtype(precision_name)
    resolve_accum_steps(cfg, proc.world_size)  # a global batch that does not divide: before any work
    torch.manual_seed(seed)  # identical initial weights on every process
    model = build_model(cfg.model).to(device)
    ddp_ids = [device.index] if device.type == "cuda" else None
    forward = _ddp(model, ddp_ids) if proc.distributed else None  # syncs the MAE's gradients
    decoder_mask = cfg.decoder_mask.model_dump() if cfg.decoder_mask is not None else None
    env = make_env(model, cfg.data.options(), batch, mask_ratio, seed, device, "train", precision,
                   token_grad=cfg.token_grad, forward_module=forward,
                   decoder_mask=decoder_mask, shard=(proc.rank, proc.world_size))
    # Held-out evaluation reconstructs every masked token whatever the decoder mask, so that
    # eval/loss_recon compares across decoder masks.
    val_env = make_env(model, cfg.data.options(), batch, mask_ratio, seed, device, "val", precision)
    policy = make_policy(cfg.policy.options(), env=env)
    objective = cfg.objective.options()
    policy_loss = make_objective(objective.pop("name"), policy, **objective).to(device)

    plan = plan_run(cfg, proc.world_size, getattr(env.clips, "batches_per_epoch", None))
    opt_mae = adamw(param_groups(model, optim.weight_decay), plan.lr, optim.betas, eps=optim.eps)
    sched_mae = warmup_cosine(opt_mae, plan.warmup_steps, plan.max_steps, plan.min_lr)
    parts = RunParts(model, env, val_env, policy, ReconstructionLoss(), policy_loss, opt_mae, sched_mae, plan=plan)
    if getattr(policy, "learnable", False):
        scale = optim.policy_lr_scale
        parts.opt_policy = adamw(param_groups(policy, optim.policy_weight_decay), plan.lr * scale, optim.betas,
                                 eps=optim.policy_eps)
        parts.sched_policy = warmup_cosine(parts.opt_policy, plan.warmup_steps, plan.max_steps, plan.min_lr * scale)
        if proc.distributed:
            parts.policy = _ddp(policy, ddp_ids)
    if precision_name == "fp16":
        parts.scaler = torch.amp.GradScaler(device.type)
    if trainer.compile:
        compile_run(parts)
    seed_process(seed, proc.rank)  # from here on, each process draws its own masks
    return parts


def compile_run(parts: RunParts) -> bool:
    """``trainer.compile=true``: compile the transformer blocks of the MAE and the policy (inductor).

    Falls back to eager with a warning when compiling is not possible. True when compiled.
    """
    return compile_blocks(parts.model) and compile_blocks(parts.policy_module)


def _ddp(module: nn.Module, device_ids: list[int] | None) -> nn.Module:
    from torch.nn.parallel import DistributedDataParallel

    # No buffer broadcast in forward: the buffers (position tables) never change, and a forward
    # with a collective in it would hang when one process skips a step that the others run.
    return DistributedDataParallel(module, device_ids=device_ids, broadcast_buffers=False)


def load_run(
    run_dir: str | Path,
    checkpoint: str = "last.pt",
    map_location: str = "cpu",
    *,
    imports: list[str] | tuple[str, ...] = (),
    allow_targets: list[str] | tuple[str, ...] = (),
    with_policy: bool = True,
) -> tuple[dict, VideoMAE, nn.Module | None, dict]:
    """Rebuild a finished or interrupted run's MAE and policy from its checkpoint.

    A checkpoint is data: loading one never imports or calls anything the caller did not
    choose. Its stored ``imports`` are not imported (pass ``imports``), and a policy stored as a
    ``_target_`` is built only when that exact path is in ``allow_targets`` and names a
    ``MaskingPolicy`` subclass; both checks happen before anything is imported or called.

    Args:
        imports: modules to import first (where the run's plugin policies live).
        allow_targets: policy ``_target_`` paths the caller trusts.
        with_policy: False to skip the policy (evaluating the encoder needs none); then
            ``policy`` is None.
    Returns:
        ``(config, model, policy, checkpoint)`` with weights loaded; models in eval mode.
    """
    path = Path(run_dir) / "checkpoints" / checkpoint
    ckpt = load_checkpoint(path, map_location)
    cfg = ckpt.get("config")
    if not isinstance(cfg, dict) or not all(k in cfg for k in ("model", "policy", "mask_ratio")):
        raise CheckpointError(f"checkpoint {path} holds no run configuration (model, policy, mask_ratio)")
    cfg = with_legacy_defaults(cfg)  # a run that predates a key: the value it ran with
    import_plugins(list(imports))
    model = build_model(cfg["model"], load_weights=False)  # its own weights follow
    _load_weights(model, ckpt.get("model"), "model", path)
    if not with_policy:
        return cfg, model.eval(), None, ckpt
    # The checkpoint holds the policy's weights: a stored init_from file is neither needed nor read.
    policy_cfg = {k: v for k, v in cfg["policy"].items() if k != "init_from"}
    try:
        policy = build_policy_from_config(policy_cfg, model, cfg["mask_ratio"], allowed_targets=tuple(allow_targets))
    except UnknownPolicyError as err:
        stored = [m for m in cfg.get("imports") or [] if m not in imports]
        hint = f" (the run imported {', '.join(stored)}: pass --import for the ones you trust)" if stored else ""
        raise UnknownPolicyError(f"{err}{hint}") from None
    if ckpt.get("policy") is not None:
        _load_weights(policy, ckpt["policy"], "policy", path)
    return cfg, model.eval(), policy.eval(), ckpt


def _load_weights(module: nn.Module, state: Any, what: str, path: Path) -> None:
    """``load_state_dict`` with a one-line error naming the checkpoint and the mismatch."""
    if not isinstance(state, Mapping):
        raise CheckpointError(f"checkpoint {path} holds no {what} weights")
    try:
        module.load_state_dict(state)
    except RuntimeError as err:
        detail = " ".join(str(err).split())
        raise CheckpointError(f"checkpoint {path}: the {what} weights do not fit the {what} its config builds: {detail}") from None


__all__ = [
    "RunParts", "RunPlan", "plan_run", "build_run", "unwrap", "build_model", "build_policy_from_config",
    "autocast_dtype", "load_run",
]
