"""A learnable masking policy in a few lines: subclass LearnablePolicy, return per-token scores.

Save this file next to where you run the trainer, then:

    python -m adamae_rl.train imports=[learnable_policy] policy=token_mlp

The base class turns the scores into the Plackett-Luce law the ``adaptive`` sampler uses (the
visible tokens drawn without replacement from ``softmax(scores)``), draws the mask, writes
``logits``, ``visible_order`` and its log-probability, re-scores stored draws for training on
collected data, and offers ``as_actor()`` for TorchRL's losses. Every objective that trains
``adaptive`` (``objective=adamae``, ``objective=plackett_luce``) trains this one.
"""

import torch
from tensordict import TensorDictBase
from torch import nn

from adamae_rl import LearnablePolicy, register_policy


@register_policy("token_mlp")
class TokenMLPMasking(LearnablePolicy):
    """Each token scored on its own: an MLP of its patch embedding plus a learned bias per position.

    Args:
        grid: token grid ``(T', H', W')``; mask_ratio: share of masked tokens; embed_dim: width of
            ``tokens`` (all three from the environment).
        hidden: width of the MLP.
    """

    in_keys = ["tokens"]

    def __init__(self, grid, mask_ratio, embed_dim, hidden: int = 64):
        super().__init__(grid, mask_ratio)
        self.embed_dim = embed_dim
        self.mlp = nn.Sequential(nn.LayerNorm(embed_dim), nn.Linear(embed_dim, hidden), nn.GELU(), nn.Linear(hidden, 1))
        self.position = nn.Parameter(torch.zeros(self.num_tokens))

    def scores(self, td: TensorDictBase) -> torch.Tensor:
        tokens = td.get("tokens")  # [B, N, D]
        return self.mlp(tokens).squeeze(-1) + self.position  # [B, N]
