"""The public entry points that scripts call: build an env, a policy and an objective."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import torch
from torch import nn

from adamae_rl.data.factory import make_stream
from adamae_rl.errors import ConfigError
from adamae_rl.geometry import ClipGeometry
from adamae_rl.envs.masked_video import MaskedVideoEnv
from adamae_rl.models.presets import build_mae
from adamae_rl.models.videomae import VideoMAE
from adamae_rl.objectives.registry import OBJECTIVES
from adamae_rl.objectives.reinforce import NoPolicyLoss
from adamae_rl.policies.registry import build_policy


def geometry_of(model: VideoMAE) -> ClipGeometry:
    """The clip geometry ``model`` expects."""
    return ClipGeometry.of(model.cfg)


def make_env(
    model: str | VideoMAE = "tiny",
    data: str | Mapping[str, Any] | Iterator[Mapping[str, torch.Tensor]] = "synthetic",
    batch_size: int = 4,
    mask_ratio: float = 0.9,
    seed: int = 0,
    device: str | torch.device | None = None,
    split: str = "train",
    autocast_dtype: torch.dtype | None = None,
    token_grad: bool = False,
    forward_module: nn.Module | None = None,
    decoder_mask: str | Mapping[str, Any] | None = None,
    reward_reduce: str = "none",
    reward_direction: str = "show_hard",
    masks_per_clip: int = 1,
    shard: tuple[int, int] = (0, 1),
    **model_overrides: Any,
) -> MaskedVideoEnv:
    """Build a :class:`MaskedVideoEnv`.

    Args:
        model: a preset name (``tiny``, ``vit_s``, ``vit_b``, ``vit_l``) or a built MAE.
        data: ``"synthetic"`` / ``"video"``, a data config mapping (``{"name": ..., ...}``), or any
            endless iterator of clip batches.
        batch_size: clips per step ``B``.
        mask_ratio: nominal share of masked tokens.
        seed: seeds the model initialisation (for preset names) and the clip order.
        device: where the MAE runs (default CPU).
        split: ``"train"`` or ``"val"`` clips.
        autocast_dtype: e.g. ``torch.bfloat16``: the MAE runs under autocast in ``step``.
        token_grad: let a policy loss reach the patch embedding (AdaMAE's own code; see
            :class:`MaskedVideoEnv`).
        forward_module: runs the MAE's forward in ``step`` (e.g. its DDP wrapper).
        decoder_mask: which masked tokens the decoder reconstructs: None/``"none"`` (all),
            ``"running_cell"``, ``"random"`` or ``{"name": ..., "ratio": ...}`` (VideoMAE V2's
            dual masking; see :mod:`adamae_rl.envs.decoder_masks`).
        reward_reduce: ``"none"`` (per-token ``reward``) or ``"mean"`` (one signed number per
            clip, the per-token one as ``token_reward``); see :class:`MaskedVideoEnv`.
        reward_direction: the sign of the per-clip reward: ``"show_hard"`` or ``"hide_hard"``.
        masks_per_clip: ``K`` masks of every clip per step (rows; ``batch_size`` is a multiple of
            ``K`` and the data source gives ``batch_size / K`` clips).
        shard: ``(rank, world_size)``: this process's share of the clips under ``torchrun``
            (every process passes the same ``seed``).
        model_overrides: MAE config fields for presets (``img_size``, ``norm_target``, ...).
    """
    if int(masks_per_clip) < 1 or batch_size % int(masks_per_clip):
        raise ValueError(f"masks_per_clip={masks_per_clip} must be >= 1 and divide batch_size={batch_size}")
    if isinstance(model, str):
        torch.manual_seed(seed)
        model = build_mae(model, **model_overrides)
    elif model_overrides:
        raise ConfigError(f"model overrides {sorted(model_overrides)} only apply to preset names")
    if isinstance(data, (str, Mapping)):
        data_cfg = {"name": data} if isinstance(data, str) else data
        pin = torch.device(device or "cpu").type == "cuda"
        clips = make_stream(data_cfg, split, geometry_of(model), batch_size // int(masks_per_clip), seed, pin_memory=pin,
                            rank=shard[0], world_size=shard[1])
    else:
        clips = data
    return MaskedVideoEnv(model, clips, batch_size, mask_ratio, device=device, autocast_dtype=autocast_dtype,
                          token_grad=token_grad, forward_module=forward_module, decoder_mask=decoder_mask,
                          reward_reduce=reward_reduce, reward_direction=reward_direction, masks_per_clip=masks_per_clip)


def make_policy(
    name: str | Mapping[str, Any],
    env: MaskedVideoEnv | None = None,
    geometry: Mapping[str, Any] | None = None,
    *,
    allowed_targets: tuple[str, ...] | None = None,
    **options: Any,
) -> nn.Module:
    """Build any registered policy (or a ``_target_`` config) for an environment.

    The grid, mask ratio and widths come from ``env`` (or an explicit ``geometry`` mapping with
    ``grid``, ``mask_ratio``, ``embed_dim``, ``patch_dim``); ``options`` go to the policy.
    ``allowed_targets``: None for the user's own spec; for a spec read from a file (a checkpoint),
    the ``_target_`` paths the user allowed (see ``adamae_rl.policies.registry.resolve_factory``).
    """
    if env is None and geometry is None:
        raise ConfigError("make_policy needs env=... or geometry=... to know the token grid and mask ratio")
    geo = dict(env.geometry if env is not None else {})
    geo.update(geometry or {})
    if isinstance(name, Mapping):  # a config section: null options mean "the policy's default"
        name = {k: v for k, v in name.items() if v is not None}
    policy = build_policy(name, geo, allowed_targets, **options)
    if env is not None:
        policy = policy.to(env.device)
    return policy


def check_objective_fits(policy: Any, name: str) -> None:
    """A policy (or its class) that lists the objectives able to train it (``objectives``) refuses others."""
    accepted = getattr(policy, "objectives", None)
    if accepted and name not in accepted:
        policy_name = getattr(policy, "registered_name", None) or type(policy).__name__
        raise ConfigError(f"policy {policy_name} is trained by objective={' or objective='.join(accepted)}, got objective={name}")


def make_objective(name: str, policy: nn.Module, **options: Any) -> nn.Module:
    """The REINFORCE objective ``name`` for ``policy``; non-learnable policies get no policy loss."""
    factory = OBJECTIVES.get(name)  # unknown names fail here, listing the known ones
    if not getattr(policy, "learnable", False):
        return NoPolicyLoss()
    check_objective_fits(policy, name)
    return factory(policy, **options)
