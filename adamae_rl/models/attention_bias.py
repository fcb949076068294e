"""Distance bias for attention: an option that departs from VideoMAE (``model.attn_bias=distance``).

Each head ``k`` adds ``-slope_k * distance(i, j)`` to the attention logit of query token ``i`` and
key token ``j``, where the distance is Euclidean in token units on the ``(t h w)`` grid and the
slopes are fixed, ``1, 1/2, 1/4, ...`` over the heads (a 3-D version of ALiBi's fixed linear
biases): the first heads look mostly at neighbouring tokens, the last ones almost everywhere.

Why: a small MAE trained for a few hundred steps at a 90% mask ratio never learns which visible
tokens lie next to a masked one when position is only an added table, and stays at predicting
each clip's mean colour; with the bias, attention starts local and the held-out loss leaves that
level within the first 200 steps (README, "What the synthetic benchmark can and cannot tell").
"""

from __future__ import annotations

from typing import Literal, get_args

import torch

AttnBiasKind = Literal["none", "distance"]
ATTN_BIASES: tuple[str, ...] = get_args(AttnBiasKind)


def head_slopes(num_heads: int) -> torch.Tensor:
    """Fixed slopes ``[H]``: ``2^-k`` for head ``k`` (1, 1/2, 1/4, ...)."""
    return torch.pow(2.0, -torch.arange(num_heads, dtype=torch.float32))


def grid_coordinates(grid: tuple[int, int, int]) -> torch.Tensor:
    """Token coordinates ``[N, 3]`` (t, h, w) in ``(t h w)`` order, in token units."""
    axes = [torch.arange(size, dtype=torch.float32) for size in grid]
    return torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1).reshape(-1, 3)


def distance_bias(coords: torch.Tensor, slopes: torch.Tensor) -> torch.Tensor:
    """Additive attention bias from token coordinates.

    Args:
        coords: ``[B, L, 3]`` coordinates of the sequence's tokens (``[1, L, 3]`` when every row
            holds the same tokens); slopes: ``[H]``.
    Returns:
        ``[B, H, L, L]`` float: ``-slopes[h] * |coords[b, i] - coords[b, j]|``.
    """
    # Exact differences (not the matmul shortcut, whose round-off makes a token's distance to itself non-zero).
    dist = torch.cdist(coords, coords, compute_mode="donot_use_mm_for_euclid_dist")  # [B, L, L]
    return -slopes.view(1, -1, 1, 1) * dist.unsqueeze(1)
