"""A custom masking policy: show the encoder the most textured tokens.

Save this file next to where you run the trainer, then:

    python -m adamae_rl.train imports=[custom_policy] policy=texture

It scores every token by the spread of its own pixels (the standard deviation of its raw
``patches``: flat regions score low, edges and texture high), and draws the visible tokens without
replacement with probability rising with that score. It has no parameters, so nothing trains it;
it is the same kind of object as the learned ``adaptive`` policy and can be swapped in anywhere.
"""

import torch
from tensordict import TensorDictBase

from adamae_rl import register_policy
from adamae_rl.policies import MaskingPolicy, PlackettLuceMask, count_masked


@register_policy("texture")
class TextureMasking(MaskingPolicy):
    """Visible tokens drawn with probability proportional to ``spread ** (1 / temperature)``.

    Args:
        grid: token grid ``(T', H', W')`` (from the environment).
        mask_ratio: share of masked tokens (from the environment).
        temperature: lower = more greedily the most textured tokens.
    """

    in_keys = ["patches"]

    def __init__(self, grid, mask_ratio, temperature: float = 0.5):
        super().__init__(grid, mask_ratio)
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.num_masked = count_masked(self.num_tokens, mask_ratio)
        self.temperature = temperature

    def distribution(self, td: TensorDictBase) -> PlackettLuceMask:
        patches = td.get("patches")  # [B, N, P], tokens in (t h w) order
        spread = patches.float().std(dim=-1)  # [B, N]
        logits = torch.log(spread + 1e-6) / self.temperature
        return PlackettLuceMask(logits, self.num_visible)
