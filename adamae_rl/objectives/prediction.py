"""A supervised objective for policies that predict the reconstruction error (``loss_predictor``).

It shows the objective interface is not REINFORCE-only: the policy writes ``predicted_error``
``[B, N]`` and is trained to rank (or regress) the env's per-token rewards, on the tokens whose
reward is known (``("next", "reward_mask")``: the reconstructed ones).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from tensordict import TensorDict, TensorDictBase
from tensordict.utils import NestedKey
from torch import nn

from adamae_rl.objectives.base import KeyedLoss
from adamae_rl.objectives.registry import register_objective
from adamae_rl.objectives.reinforce import rewarded_tokens
from adamae_rl.policies.distributions import uniform_subset


@register_objective("loss_prediction")
class LossPredictionLoss(KeyedLoss):
    """Train a per-token error predictor on the env's rewards.

    - ``loss="ranking"`` (default; HPM's relative loss, Wang et al., CVPR 2023): for every pair
      ``(i, j)`` of rewarded tokens of a clip with different rewards, binary cross-entropy of
      ``sigmoid(p_i - p_j)`` against ``reward_i > reward_j``. Only the order matters, so the
      falling scale of the errors during training does not move the target.
    - ``loss="regression"``: squared error between ``p_i`` and ``reward_i`` divided by the clip's
      mean reward (scale-free).

    Per clip at most ``max_tokens`` rewarded tokens (a uniform random subset) enter the pairs,
    which bounds the ``max_tokens ** 2`` pair count at large ``N``.

    Args:
        policy: the predicting policy (kept for reference).
        coef: loss coefficient.
        loss: ``"ranking"`` or ``"regression"``.
        max_tokens: rewarded tokens per clip used for the pairs.
    """

    @dataclass
    class _AcceptedKeys:
        mask: NestedKey = "mask"
        predicted_error: NestedKey = "predicted_error"
        reward: NestedKey = ("next", "reward")
        reward_mask: NestedKey = ("next", "reward_mask")

    default_keys = _AcceptedKeys
    out_keys = ["loss_prediction", "reward_mean", "rank_accuracy"]
    LOSSES = ("ranking", "regression")

    def __init__(self, policy: nn.Module | None = None, coef: float = 1.0, loss: str = "ranking", max_tokens: int = 256) -> None:
        super().__init__()
        if loss not in self.LOSSES:
            raise ValueError(f"loss_prediction: loss must be one of {', '.join(self.LOSSES)}, got {loss!r}")
        if max_tokens < 2:
            raise ValueError(f"loss_prediction: max_tokens must be >= 2, got {max_tokens}")
        self._policy_ref = [policy]
        self.coef, self.loss, self.max_tokens = float(coef), loss, int(max_tokens)

    def forward(self, tensordict: TensorDictBase) -> TensorDict:
        keys = self.tensor_keys
        if keys.predicted_error not in tensordict.keys(include_nested=True):
            raise KeyError(
                f"loss_prediction needs {keys.predicted_error!r} in the tensordict: it trains a policy that predicts "
                "per-token errors (policy=loss_predictor)"
            )
        rewarded, reward, count = rewarded_tokens(tensordict, keys.mask, keys.reward, keys.reward_mask)
        predicted = tensordict.get(keys.predicted_error).float()
        if count > self.max_tokens:  # a random subset of the rewarded tokens, the same size per clip
            keep = uniform_subset(rewarded.shape[:-1], count, self.max_tokens, rewarded.device)
            rewarded = torch.zeros_like(rewarded).masked_scatter(rewarded, keep)
            count = self.max_tokens
        batch = rewarded.shape[0]
        p = predicted[rewarded].reshape(batch, count)  # [B, K]
        r = reward.detach()[rewarded].reshape(batch, count)
        diff_p = p.unsqueeze(-1) - p.unsqueeze(-2)  # [B, K, K]
        diff_r = r.unsqueeze(-1) - r.unsqueeze(-2)
        pairs = diff_r != 0
        if self.loss == "ranking":
            bce = F.binary_cross_entropy_with_logits(diff_p, (diff_r > 0).float(), reduction="none")
            term = (bce * pairs).sum() / pairs.sum().clamp(min=1)
        else:
            scaled = r / r.mean(-1, keepdim=True).clamp(min=1e-12)
            term = (p - scaled).pow(2).mean()
        agree = ((diff_p > 0) == (diff_r > 0)) & pairs
        return TensorDict(
            {
                "loss_prediction": self.coef * term,
                "reward_mean": r.mean().detach(),
                "rank_accuracy": (agree.sum() / pairs.sum().clamp(min=1)).float().detach(),
            },
            batch_size=[],
        )
