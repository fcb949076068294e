"""Classification scores."""

from __future__ import annotations

import torch


def topk_accuracy(logits: torch.Tensor, labels: torch.Tensor, ks: tuple[int, ...] = (1, 5)) -> dict[str, float]:
    """Share of clips whose label is among the ``k`` highest scores, for each ``k``.

    With fewer classes than ``k`` every clip counts as a hit (``k`` is capped at the class
    count), so top-5 on 8 classes is easy and top-k is never below top-1.

    Args:
        logits: ``[B, K]`` class scores.
        labels: ``[B]`` int64 class indices.
    Returns:
        ``{"top1": ..., "top5": ...}`` in [0, 1].
    """
    if logits.dim() != 2 or labels.shape != logits.shape[:1]:
        raise ValueError(f"logits must be [B, K] and labels [B]; got {tuple(logits.shape)} and {tuple(labels.shape)}")
    if logits.shape[0] == 0:
        raise ValueError("no clips to score")
    ranked = logits.topk(min(max(ks), logits.shape[1]), dim=1).indices  # [B, k_max]
    hits = ranked == labels.unsqueeze(1)  # [B, k_max]
    return {f"top{k}": float(hits[:, :k].any(dim=1).float().mean()) for k in ks}
