"""Optimizers and learning-rate schedules in the VideoMAE style."""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch import nn


# Parameters that are never weight-decayed besides vectors (biases, norms): tables and tokens.
NO_DECAY_SUFFIXES = ("pos_embed", "mask_token", "q_bias", "v_bias")


def decays(name: str, param: torch.Tensor) -> bool:
    """VideoMAE's rule: weight decay on matrices only, not on biases, norms, position tables or tokens."""
    return param.ndim > 1 and not name.endswith(NO_DECAY_SUFFIXES)


def param_groups(module: nn.Module, weight_decay: float) -> list[dict]:
    """Two AdamW groups by :func:`decays`: decayed matrices and everything else."""
    decay, no_decay = [], []
    for name, param in module.named_parameters():
        if not param.requires_grad:
            continue
        if not decays(name, param):
            no_decay.append(param)
        else:
            decay.append(param)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def adamw(groups: Iterable[dict], lr: float, betas: tuple[float, float], fused: bool | None = None,
          eps: float = 1e-8) -> torch.optim.AdamW:
    """AdamW over parameter groups; the fused kernel where every parameter allows it.

    ``fused=None`` picks the fused implementation (one pass over parameter, gradient and both
    moments per tensor, where the loop makes one pass per elementwise operation) when all
    parameters are floating-point tensors on CPU or CUDA, else the default loop.
    """
    groups = list(groups)
    if fused is None:
        fused = all(_fusable(p) for group in groups for p in group["params"])
    return torch.optim.AdamW(groups, lr=lr, betas=tuple(betas), eps=float(eps), fused=bool(fused) or None)


@torch.no_grad()
def epsilon_bound_share(opt: torch.optim.Optimizer) -> float | None:
    """Share of parameter entries whose gradient RMS lies below their group's epsilon, in [0, 1].

    The RMS is the bias-corrected root of Adam's second moment. Where it is below ``eps`` the step is
    about ``lr * grad / eps``: it scales with the loss instead of being normalized by it. None before
    the first step (or for an optimizer without second moments).
    """
    counts, total = [], 0
    for group in opt.param_groups:
        beta2, eps = group["betas"][1], group["eps"]
        for param in group["params"]:
            state = opt.state.get(param, {})
            if "exp_avg_sq" not in state:
                continue
            rms = (state["exp_avg_sq"] / (1 - beta2 ** float(state["step"]))).sqrt()
            counts.append((rms < eps).sum())  # stays on the device: one sync below, not one per tensor
            total += rms.numel()
    return float(torch.stack(counts).sum()) / total if total else None


def _fusable(param: torch.Tensor) -> bool:
    return param.device.type in ("cpu", "cuda") and param.dtype in (torch.float32, torch.float16, torch.bfloat16, torch.float64)


def warmup_cosine_factor(step: int, warmup_steps: int, max_steps: int, floor: float) -> float:
    """Multiplier of the peak rate at ``step``: linear warmup over ``warmup_steps``, then cosine
    decay to ``floor`` (= min_lr / peak lr) at ``max_steps``."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    span = max(max_steps - warmup_steps, 1)
    progress = min((step - warmup_steps) / span, 1.0)
    return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))


def warmup_cosine(optimizer: torch.optim.Optimizer, warmup_steps: int, max_steps: int, min_lr: float) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warmup from 0 to each group's lr over ``warmup_steps``, then cosine decay to ``min_lr``."""
    base = optimizer.param_groups[0]["lr"]
    floor = min(min_lr / base, 1.0) if base > 0 else 0.0
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: warmup_cosine_factor(step, warmup_steps, max_steps, floor))
