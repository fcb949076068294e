"""Distance bias for attention: an option that departs from VideoMAE (``model.attn_bias``).

Each head ``k`` adds ``-slope_k * distance(i, j)`` to the attention logit of query token ``i`` and
key token ``j``, with fixed slopes ``1, 1/2, 1/4, ...`` over the heads (ALiBi's fixed linear
biases, on the token grid): the first heads look mostly at nearby tokens, the last ones almost
everywhere. The distance is Euclidean in token units:

- ``distance``: over ``(t, h, w)``; a token's neighbours in space and in time are equally near.
- ``spatial_distance``: over ``(h, w)`` only; the same place in every slice is at distance 0, so
  a masked token first reads the visible tokens at its own place in other slices (static content
  persists over time), then neighbouring places.

Why: a small MAE trained for a few hundred steps at a 90% mask ratio never learns which visible
tokens lie next to a masked one when position is only an added table, and stays at predicting
each clip's mean colour; with the bias, attention starts local and the held-out loss leaves that
level within the first 200 steps (docs/results/synthetic-benchmark.md).
"""

from __future__ import annotations

from typing import Literal, get_args

import torch

AttnBiasKind = Literal["none", "distance", "spatial_distance"]
ATTN_BIASES: tuple[str, ...] = get_args(AttnBiasKind)


def head_slopes(num_heads: int) -> torch.Tensor:
    """Fixed slopes ``[H]``: ``2^-k`` for head ``k`` (1, 1/2, 1/4, ...)."""
    return torch.pow(2.0, -torch.arange(num_heads, dtype=torch.float32))


def grid_coordinates(grid: tuple[int, int, int], kind: str = "distance") -> torch.Tensor:
    """Token coordinates ``[N, 3]`` (t, h, w) in ``(t h w)`` order, in token units; for
    ``spatial_distance`` the time coordinate is 0 everywhere (distances over ``(h, w)`` only)."""
    axes = [torch.arange(size, dtype=torch.float32) for size in grid]
    coords = torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1).reshape(-1, 3)
    if kind == "spatial_distance":
        coords[:, 0] = 0.0
    return coords


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
