"""A custom masking policy: show the encoder the tokens that move.

Save this file next to where you run the trainer, then:

    python -m adamae_rl.train imports=[custom_policy] policy=motion

It scores every token by how much its pixels change from the previous time step (read from the
observation's raw ``patches``), and draws the visible tokens without replacement with probability
rising with that score. It has no parameters, so nothing trains it; it is the same kind of object
as the learned ``adaptive`` policy and can be swapped in anywhere.
"""

import torch
from tensordict import TensorDictBase

from adamae_rl import register_policy
from adamae_rl.policies import MaskingPolicy, PlackettLuceMask, count_masked


@register_policy("motion")
class MotionMasking(MaskingPolicy):
    """Visible tokens drawn with probability proportional to ``motion ** (1 / temperature)``.

    Args:
        grid: token grid ``(T', H', W')`` (from the environment).
        mask_ratio: share of masked tokens (from the environment).
        temperature: lower = more greedily the highest-motion tokens.
    """

    in_keys = ["patches"]

    def __init__(self, grid, mask_ratio, temperature: float = 0.5):
        super().__init__(grid, mask_ratio)
        self.num_masked = count_masked(self.num_tokens, mask_ratio)
        self.temperature = temperature

    def distribution(self, td: TensorDictBase) -> PlackettLuceMask:
        patches = td.get("patches")  # [B, N, P], tokens in (t h w) order
        t, h, w = self.grid
        frames = patches.reshape(patches.shape[0], t, h * w, -1)  # [B, T', H'W', P]
        change = (frames[:, 1:] - frames[:, :-1]).abs().mean(-1)  # [B, T'-1, H'W']
        change = torch.cat([change[:, :1], change], dim=1)  # the first slice borrows the next one's
        logits = torch.log(change.reshape(patches.shape[0], -1) + 1e-6) / self.temperature
        return PlackettLuceMask(logits, self.num_visible)
