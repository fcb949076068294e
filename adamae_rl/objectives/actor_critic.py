"""A learned baseline for TorchRL's actor-critic losses: a value network over pooled tokens.

With ``reward_reduce="mean"`` the env's reward is one number per clip, and most of its spread comes
from the clip (how many shapes, how textured), which no mask changes. A critic that reads the
clip's tokens learns that part, so the advantage ``reward - V(tokens)`` keeps the mask's own effect:
the learned-baseline variance reduction for ``A2CLoss``/``ClipPPOLoss``/``ReinforceLoss``.
"""

from __future__ import annotations

import torch
from torch import nn


class PooledTokenValue(nn.Module):
    """``tokens`` ``[*batch, N, D]`` -> value ``[*batch, 1]``: LayerNorm, mean and max pooling, MLP.

    Mean pooling says what the clip holds on average; max pooling keeps a small moving shape that a
    mean over many background tokens would wash out.

    Args:
        embed_dim: ``D``; hidden: MLP width.
    """

    def __init__(self, embed_dim: int, hidden: int = 64) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(embed_dim)
        self.mlp = nn.Sequential(nn.Linear(2 * embed_dim, hidden), nn.Tanh(), nn.Linear(hidden, 1))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.norm(tokens.float())
        return self.mlp(torch.cat([x.mean(-2), x.amax(-2)], dim=-1))


def make_critic(embed_dim: int, hidden: int = 64, in_key: str = "tokens"):
    """A TorchRL ``ValueOperator`` writing ``state_value`` ``[*batch, 1]`` from ``in_key``."""
    from torchrl.modules import ValueOperator

    return ValueOperator(PooledTokenValue(embed_dim, hidden), in_keys=[in_key], out_keys=["state_value"])


TORCHRL_LOSSES = ("ppo", "a2c", "reinforce")


def make_torchrl_loss(name: str, policy, critic=None, **options):
    """TorchRL's ``ClipPPOLoss``/``A2CLoss``/``ReinforceLoss`` for a learnable masking policy.

    The actor is ``policy.as_actor()`` (action ``visible_order``, scored exactly); the loss keys
    are pointed at it. The env must write a per-clip reward (``reward_reduce="mean"``).

    Args:
        name: ``"ppo"``, ``"a2c"`` or ``"reinforce"``.
        policy: a :class:`~adamae_rl.policies.base.LearnablePolicy`.
        critic: a value operator (default: :func:`make_critic` on the policy's token width).
        options: passed to the loss class (``clip_epsilon``, ``entropy_coeff``, ...).
    Returns:
        ``(loss, collector_policy)``: run ``collector_policy`` (the actor, then ``mask``) in the
        collector, ``loss`` on what it collects.
    """
    from torchrl.objectives import A2CLoss, ClipPPOLoss, ReinforceLoss

    classes = {"ppo": ClipPPOLoss, "a2c": A2CLoss, "reinforce": ReinforceLoss}
    if name not in classes:
        raise ValueError(f"TorchRL loss must be one of {', '.join(TORCHRL_LOSSES)}, got {name!r}")
    if not hasattr(policy, "as_actor"):
        raise TypeError(f"{type(policy).__name__} is not a LearnablePolicy; it has no actor to train")
    actor = policy.as_actor()
    if critic is None:
        critic = make_critic(policy.embed_dim)
    loss = classes[name](actor, critic, **options)
    loss.set_keys(action=policy.action_key, sample_log_prob=policy.log_prob_key)
    return loss, policy.collector_policy(actor)
