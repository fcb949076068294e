"""Scores for masks."""

from __future__ import annotations

import torch


def foreground_enrichment(mask: torch.Tensor, fg_tokens: torch.Tensor) -> float:
    """How much more often visible tokens lie on the foreground than tokens at large.

    ``(share of visible tokens that are foreground) / (share of all tokens that are foreground)``,
    pooled over the batch. 1.0 means "no better than chance"; above 1, the policy shows the
    encoder the moving objects more than a random mask would. NaN when no token is foreground.

    Args:
        mask: bool ``[B, N]``, True = masked.
        fg_tokens: bool ``[B, N]``, True = the token covers foreground.
    """
    if mask.shape != fg_tokens.shape:
        raise ValueError(f"mask {tuple(mask.shape)} and fg_tokens {tuple(fg_tokens.shape)} differ in shape")
    visible = ~mask.bool()
    fg = fg_tokens.bool()
    fg_share_all = fg.float().mean()
    if fg_share_all == 0:
        return float("nan")
    fg_share_visible = (visible & fg).sum().float() / visible.sum().clamp(min=1).float()
    return float(fg_share_visible / fg_share_all)
