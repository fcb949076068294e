"""AdaMAE's adaptive token sampler as a masking policy."""

from __future__ import annotations

import torch
from tensordict import TensorDictBase
from torch import nn

from adamae_rl.models.videomae import Block
from adamae_rl.policies.base import Grid, LearnablePolicy
from adamae_rl.policies.registry import register_policy


@register_policy("adaptive")
class AdaptiveMasking(LearnablePolicy):
    """AdaMAE sampler: learned position embedding + transformer block(s) + linear -> logits.

    ``softmax(logits)`` over the ``N`` tokens is the probability of drawing each token visible;
    ``N_v`` visible tokens are drawn without replacement (Gumbel-top-k, equivalent to
    ``torch.multinomial(p, N_v, replacement=False)``); the rest are masked.

    Args:
        grid: token grid ``(T', H', W')``.
        mask_ratio: share of masked tokens.
        embed_dim: width of the incoming ``tokens`` (the MAE's patch embeddings).
        width: sampler width (default: ``embed_dim``, as the paper); a linear map adapts the input.
        depth: number of attention blocks (the paper uses one).
        num_heads: attention heads of each block (default: ``width // 64``, the head width of
            the ViT presets: 6 for ViT-S, 12 for ViT-B, 16 for ViT-L).
        mlp_ratio: MLP expansion of each block.
        qkv_bias: q/v biases in the attention (the MAE's layout); AdaMAE's sampler has none.
        dropout: dropout after each block's attention projection and MLP (AdaMAE: 0.1; active
            only in training mode).
        norm_eps: LayerNorm eps of each block (the MAE's 1e-6; AdaMAE's sampler uses 1e-5).
        init_from: start from the sampler weights in a checkpoint (an official AdaMAE ``.pth``
            or a file written by ``python -m adamae_rl.convert``); shapes must match this
            configuration. ``policy=adaptive_official`` sets heads, bias, dropout and eps as
            AdaMAE's code does.
    """

    in_keys = ["tokens"]

    def __init__(
        self,
        grid: Grid,
        mask_ratio: float,
        embed_dim: int,
        width: int | None = None,
        depth: int = 1,
        num_heads: int | None = None,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        dropout: float = 0.0,
        norm_eps: float = 1e-6,
        init_from: str | None = None,
    ) -> None:
        super().__init__(grid, mask_ratio)
        width = int(width or embed_dim)
        num_heads = int(num_heads or max(width // 64, 1))
        if width % num_heads:
            raise ValueError(f"sampler width {width} is not divisible by num_heads={num_heads}")
        if depth < 1:
            raise ValueError(f"sampler depth must be >= 1, got {depth}")
        self.embed_dim, self.width, self.depth = embed_dim, width, depth
        self.input_proj = nn.Identity() if width == embed_dim else nn.Linear(embed_dim, width)
        self.pos_embed = nn.Parameter(torch.zeros(1, self.num_tokens, width))
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        # Kept for checking imported weights against this configuration (adamae_rl.interop).
        self.num_heads, self.mlp_ratio = num_heads, float(mlp_ratio)
        self.qkv_bias, self.dropout, self.norm_eps = bool(qkv_bias), float(dropout), float(norm_eps)
        self.blocks = nn.Sequential(
            *(Block(width, num_heads, mlp_ratio, qkv_bias=qkv_bias, dropout=dropout, norm_eps=norm_eps) for _ in range(depth))
        )
        self.head = nn.Linear(width, 1)
        if init_from:
            from adamae_rl.interop import init_policy_from

            init_policy_from(self, init_from)

    def compute_logits(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens ``[*batch, N, D]`` -> logits ``[*batch, N]``."""
        if tokens.shape[-2:] != (self.num_tokens, self.embed_dim):
            raise ValueError(
                f"tokens must be [B, {self.num_tokens}, {self.embed_dim}], got {tuple(tokens.shape)}"
            )
        # The attention blocks take exactly one batch dim: fold any leading shape into it and back.
        lead = tokens.shape[:-2]
        x = self.input_proj(tokens.reshape(-1, self.num_tokens, self.embed_dim)) + self.pos_embed.to(tokens.dtype)
        return self.head(self.blocks(x)).squeeze(-1).reshape(*lead, self.num_tokens)

    def scores(self, td: TensorDictBase) -> torch.Tensor:
        return self.compute_logits(td.get("tokens"))
