"""REINFORCE objectives for masking policies, in TorchRL's ``LossModule`` style.

Each objective reads the policy's outputs and the environment's per-token rewards from the step
tensordict and returns a TensorDict of ``loss_*`` terms (the trainer sums them) plus detached
diagnostics. Key names are renameable with ``set_keys(...)``.

Expected entries (default keys):
    ``mask``: bool ``[B, N]``, True = masked;
    ``logits``: ``[B, N]``, the policy's visible-draw logits. Used as they are when they carry a
    gradient (the policy ran in this step); otherwise (collected data: a collector, a replay
    buffer) the objective re-runs its policy on the stored observation, as TorchRL's losses do,
    and refuses with an error when it has no policy to re-run, never a loss without gradient;
    ``visible_order``: long ``[B, N_v]``, visible tokens in draw order (``plackett_luce`` only);
    ``("next", "reward")``: ``[B, N, 1]``, per-token reconstruction error, 0 where visible (an env
    with ``reward_reduce="mean"`` writes a per-clip ``[B, 1]`` reward there and the per-token one
    as ``("next", "token_reward")``, which is then read instead);
    ``("next", "reward_mask")``: bool ``[B, N]``, the tokens whose reward is known (the
    reconstructed ones; with decoder masking a subset of ``mask``). Only those tokens enter the
    losses. Absent (a tensordict from elsewhere), ``mask`` stands in for it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from tensordict import TensorDict, TensorDictBase
from tensordict.utils import NestedKey
from torch import nn

from adamae_rl.objectives.base import KeyedLoss
from adamae_rl.objectives.registry import register_objective
from adamae_rl.policies.distributions import plackett_luce_log_prob


class MaskingLoss(KeyedLoss):
    """Shared key handling for the masking objectives."""

    @dataclass
    class _AcceptedKeys:
        mask: NestedKey = "mask"
        logits: NestedKey = "logits"
        visible_order: NestedKey = "visible_order"
        reward: NestedKey = ("next", "reward")
        reward_mask: NestedKey = ("next", "reward_mask")

    default_keys = _AcceptedKeys

    def __init__(self, policy: nn.Module | None = None) -> None:
        super().__init__()
        # Not a submodule (its parameters belong to the policy's optimizer and checkpoint entry):
        # re-run only when the stored logits carry no gradient (collected data).
        self._policy_ref = [policy]

    def _inputs(self, td: TensorDictBase) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]:
        keys = self.tensor_keys
        for name in ("mask", "reward"):
            if getattr(keys, name) not in td.keys(include_nested=True):
                raise KeyError(
                    f"{type(self).__name__} needs {getattr(keys, name)!r} in the tensordict "
                    f"(is the policy learnable and has env.step run?)"
                )
        logits = self.policy_logits(td)
        rewarded, reward, num_rewarded = rewarded_tokens(td, keys.mask, keys.reward, keys.reward_mask)
        return rewarded, logits, reward, num_rewarded

    def policy_logits(self, td: TensorDictBase) -> torch.Tensor:
        """The logits ``[B, N]`` with their graph: stored ones if they have it, else re-computed.

        Stored logits without a graph (from a collector, which runs the policy without gradient,
        or a replay buffer, which stores copies) would give a loss whose gradient is silently
        zero; the policy is re-run on the stored observation instead, or an error says why not.
        """
        key = self.tensor_keys.logits
        stored = td.get(key, None)
        if stored is not None and (stored.requires_grad or not torch.is_grad_enabled()):
            return stored.float()
        policy = self._policy_ref[0]
        if policy is not None and hasattr(policy, "logits"):
            return policy.logits(td).float()
        if stored is None:
            raise KeyError(f"{type(self).__name__} needs {key!r} in the tensordict, or policy=<the LearnablePolicy> to compute them")
        raise RuntimeError(
            f"{type(self).__name__}: the stored {key!r} carry no gradient (collected data?) and there is no policy "
            "to re-run; build the objective with policy=<the LearnablePolicy> so it re-scores stored actions"
        )


def rewarded_tokens(td: TensorDictBase, mask_key: NestedKey, reward_key: NestedKey, reward_mask_key: NestedKey):
    """``(rewarded bool [B, N], reward [B, N], count)``: the tokens whose reward is known.

    ``reward_mask`` where the env wrote one (decoder masking leaves some masked tokens without a
    reward), else ``mask``; every row holds the same count.
    """
    has_reward_mask = reward_mask_key in td.keys(include_nested=True)
    rewarded = td.get(reward_mask_key) if has_reward_mask else td.get(mask_key)
    reward = td.get(reward_key)
    if reward.shape[-2:-1] != rewarded.shape[-1:]:  # a per-clip reward [B, 1]: use the per-token one
        token_key = _sibling(reward_key, "token_reward")
        if token_key not in td.keys(include_nested=True):
            raise KeyError(f"{reward_key!r} is {tuple(reward.shape)}, not per token, and {token_key!r} is missing")
        reward = td.get(token_key)
    return rewarded, reward.float().squeeze(-1), int(rewarded[0].sum())


def _sibling(key: NestedKey, name: str) -> NestedKey:
    return (*key[:-1], name) if isinstance(key, tuple) else name


@register_objective("adamae")
class AdaMAELoss(MaskingLoss):
    """AdaMAE's sampling loss (paper-exact).

    Per clip: ``-mean over masked tokens i of log softmax(logits)_i * reward_i``; averaged over the
    batch and scaled by ``coef`` (AdaMAE: 1e-4). With decoder masking the mean runs over the
    reconstructed tokens only (``reward_mask``). Minimizing it raises the draw probability of
    tokens that were reconstructed badly, so they become visible more often.

    Args:
        policy: the learnable masking policy (kept for reference).
        coef: loss coefficient.
    """

    out_keys = ["loss_policy", "reward_mean", "entropy"]

    def __init__(self, policy: nn.Module | None = None, coef: float = 1e-4) -> None:
        super().__init__(policy)
        self.coef = float(coef)

    def forward(self, tensordict: TensorDictBase) -> TensorDict:
        mask, logits, reward, num_masked = self._inputs(tensordict)
        log_p = torch.log_softmax(logits, dim=-1)  # [B, N]
        weighted = (log_p * reward.detach()).masked_fill(~mask, 0.0)
        per_clip = -weighted.sum(dim=-1) / num_masked  # [B]
        loss = self.coef * per_clip.mean()
        return TensorDict(
            {
                "loss_policy": loss,
                "reward_mean": (reward.sum(-1) / num_masked).mean().detach(),
                "entropy": -(log_p.exp() * log_p).sum(-1).mean().detach(),
            },
            batch_size=[],
        )


@register_objective("plackett_luce")
class PlackettLuceLoss(MaskingLoss):
    """Unbiased REINFORCE for drawing the visible set without replacement.

    ``log pi`` is the exact Plackett-Luce log-probability of the ordered visible draw; a baseline
    (batch mean, or an exponential moving average over steps) reduces variance. Optional entropy
    bonus on the first draw.

    The return is built from the clip's mean masked reconstruction error ``e`` (over the
    reconstructed tokens, ``reward_mask``, when the decoder is masked), and its sign is a
    choice with opposite outcomes, so it is explicit:

    - ``direction="show_hard"`` (default): return ``-e``. The sampler learns to leave the tokens
      the MAE reconstructs worst *visible* (and mask the easy ones) — the direction AdaMAE's own
      loss moves its sampler (towards moving, high-error regions).
    - ``direction="hide_hard"``: return ``+e``. The adversarial reading: the sampler learns to
      *mask* the hardest tokens, maximizing the MAE's reconstruction error.

    Args:
        policy: the learnable masking policy (kept for reference).
        coef: policy-gradient coefficient.
        baseline: "batch" (mean return of the batch), "ema" (moving average) or "rloo".
        ema_decay: decay of the moving-average baseline.
        group_size: ``K``, consecutive rows that share a clip (``baseline="rloo"``, ``K >= 2``).
        entropy_coef: weight of the entropy bonus (0 disables it).
        direction: "show_hard" or "hide_hard" (see above).
    """

    DIRECTIONS = {"show_hard": -1.0, "hide_hard": 1.0}
    out_keys = ["loss_policy", "reward_mean", "advantage_std", "log_prob_mean", "entropy", "loss_entropy"]

    def __init__(
        self,
        policy: nn.Module | None = None,
        coef: float = 1.0,
        baseline: str = "batch",
        ema_decay: float = 0.9,
        entropy_coef: float = 0.0,
        direction: str = "show_hard",
        group_size: int = 1,
    ) -> None:
        super().__init__(policy)
        if baseline not in ("batch", "ema", "rloo"):
            raise ValueError(f"baseline must be 'batch', 'ema' or 'rloo', got {baseline!r}")
        if baseline == "rloo" and int(group_size) < 2:
            raise ValueError(f"baseline='rloo' needs group_size >= 2 masks per clip, got {group_size}")
        self.group_size = int(group_size)
        if direction not in self.DIRECTIONS:
            raise ValueError(f"direction must be one of {sorted(self.DIRECTIONS)}, got {direction!r}")
        self.direction = direction
        self.coef, self.baseline, self.ema_decay, self.entropy_coef = float(coef), baseline, ema_decay, entropy_coef
        self.register_buffer("ema_return", torch.tensor(float("nan")))

    def forward(self, tensordict: TensorDictBase) -> TensorDict:
        mask, logits, reward, num_masked = self._inputs(tensordict)
        order = tensordict.get(self.tensor_keys.visible_order)
        log_prob = plackett_luce_log_prob(logits, order)  # [B]
        masked_error = reward.detach().masked_fill(~mask, 0.0).sum(-1) / num_masked  # [B]
        returns = self.DIRECTIONS[self.direction] * masked_error
        baseline = self._baseline(returns)
        advantage = returns - baseline
        log_p = torch.log_softmax(logits, dim=-1)
        entropy = -(log_p.exp() * log_p).sum(-1).mean()
        out = {
            "loss_policy": -self.coef * (advantage * log_prob).mean(),
            "reward_mean": masked_error.mean(),
            "advantage_std": advantage.std(unbiased=False) if advantage.numel() > 1 else advantage.abs().mean(),
            "log_prob_mean": log_prob.mean().detach(),
            "entropy": entropy.detach(),
        }
        if self.entropy_coef:
            out["loss_entropy"] = -self.entropy_coef * entropy
        return TensorDict(out, batch_size=[])

    def _baseline(self, returns: torch.Tensor) -> torch.Tensor:
        """Batch mean, or a moving average of past batch means fed only by finite returns.

        A batch with a non-finite return (an exploding reconstruction, say) still gets a
        non-finite loss for the trainer's non-finite handling to see, but it never enters the
        moving average: otherwise one bad batch would leave every later loss non-finite.
        """
        if self.baseline == "batch":
            return returns.mean()
        if self.baseline == "rloo":
            return leave_one_out(returns, self.group_size)
        with torch.no_grad():
            batch_mean = returns.mean()
            previous = self.ema_return.clone()
            # The first step has no history: use the batch mean, then track it.
            current = batch_mean if torch.isnan(previous) else previous
            if bool(torch.isfinite(batch_mean)):
                self.ema_return.copy_(
                    batch_mean if torch.isnan(previous) else self.ema_decay * previous + (1 - self.ema_decay) * batch_mean
                )
        return current


def leave_one_out(returns: torch.Tensor, group_size: int) -> torch.Tensor:
    """``[B]`` -> ``[B]``: each row's baseline = mean return of the other rows of its group.

    Groups are ``group_size`` consecutive rows (the masks of one clip).
    """
    if returns.shape[0] % group_size:
        raise ValueError(f"baseline='rloo': batch of {returns.shape[0]} rows is not a whole number of groups of {group_size}")
    groups = returns.reshape(-1, group_size)
    return ((groups.sum(-1, keepdim=True) - groups) / (group_size - 1)).reshape(returns.shape)


class NoPolicyLoss(KeyedLoss):
    """For policies without parameters: no loss term, only the mean reward as a diagnostic."""

    @dataclass
    class _AcceptedKeys:
        mask: NestedKey = "mask"
        reward: NestedKey = ("next", "reward")
        reward_mask: NestedKey = ("next", "reward_mask")

    default_keys = _AcceptedKeys
    out_keys = ["reward_mean"]

    def forward(self, tensordict: TensorDictBase) -> TensorDict:
        keys = self.tensor_keys
        _, reward, num_masked = rewarded_tokens(tensordict, keys.mask, keys.reward, keys.reward_mask)
        return TensorDict({"reward_mean": (reward.sum(-1) / num_masked).mean().detach()}, batch_size=[])

