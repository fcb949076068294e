"""Multi-view testing of a classifier over a whole validation list, split over processes.

Each video's score is the mean over its views of the softmax (VideoMAE's protocol) or of the raw
logits (AdaMAE's code), ``view_scores=softmax|logits``. Under ``torchrun`` process ``r`` scores
videos ``r, r + W, ...`` and the scores are gathered, so every process returns the scores of the
whole list in list order — the same numbers as one process.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import nullcontext

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, Dataset, default_collate

from adamae_rl.errors import ConfigError
from adamae_rl.utils.distributed import Process, collective_device

VIEW_SCORES = ("softmax", "logits")


def aggregate_views(logits: torch.Tensor, how: str = "softmax") -> torch.Tensor:
    """``[B, V, K]`` logits of ``V`` views -> ``[B, K]`` video scores: the mean of the views'
    softmax (``softmax``) or of their logits (``logits``)."""
    if how not in VIEW_SCORES:
        raise ConfigError(f"view scores must be one of {', '.join(VIEW_SCORES)}, got {how!r}")
    per_view = logits.float().softmax(-1) if how == "softmax" else logits.float()
    return per_view.mean(dim=1)


class SingleView(Dataset):
    """A clip dataset as a one-view test set: item ``video`` ``[C, T, H, W]`` -> ``[1, C, T, H, W]``."""

    def __init__(self, clips: Dataset) -> None:
        self.clips = clips

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        item = self.clips[(index, index)]
        return {"video": item["video"].unsqueeze(0), "label": torch.as_tensor(item["label"])}


def _batches(views: Dataset, indices: list[int], batch_size: int, num_workers: int) -> Iterator[dict]:
    collate = lambda items: default_collate([{"video": it["video"], "label": it["label"]} for it in items])  # noqa: E731
    loader = DataLoader(views, batch_size=batch_size, sampler=indices, num_workers=num_workers, collate_fn=collate,
                        multiprocessing_context="fork" if num_workers else None)
    yield from loader


@torch.no_grad()
def multi_view_scores(
    classifier: nn.Module, views: Dataset, batch_size: int, device: torch.device, how: str = "softmax",
    proc: Process = Process(), num_workers: int = 0, autocast: torch.dtype | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Video scores ``[N, K]`` and labels ``[N]`` of every video of ``views`` (items ``video``
    ``[V, C, T, H, W]``, ``label``), in list order, on every process.

    ``batch_size`` counts videos; each passes all its views through the classifier at once.
    """
    was_training = classifier.training
    classifier.eval()
    mine = list(range(proc.rank, len(views), proc.world_size))
    scores, labels = [], []
    for batch in _batches(views, mine, batch_size, num_workers):
        video = batch["video"].to(device)  # [B, V, C, T, H, W]
        with torch.autocast(device.type, dtype=autocast) if autocast is not None else nullcontext():
            logits = classifier(video.flatten(0, 1))
        scores.append(aggregate_views(logits.view(*video.shape[:2], -1), how).cpu())
        labels.append(batch["label"].view(-1))
    classifier.train(was_training)
    scores_t = torch.cat(scores) if scores else torch.zeros(0, 0)
    labels_t = torch.cat(labels) if labels else torch.zeros(0, dtype=torch.long)
    return _gather_in_order(scores_t, labels_t, len(views), proc)


def _gather_in_order(scores: torch.Tensor, labels: torch.Tensor, total: int, proc: Process) -> tuple[torch.Tensor, torch.Tensor]:
    """Process ``r`` holds videos ``r, r + W, ...``: gather them all, back in list order."""
    if not (proc.distributed and dist.is_initialized()):
        return scores, labels
    rows = -(-total // proc.world_size)
    device = collective_device()
    width = torch.tensor([scores.shape[1] if scores.numel() else 0], device=device)
    dist.all_reduce(width, op=dist.ReduceOp.MAX)
    padded = torch.full((rows, int(width)), float("nan"), device=device)
    padded[: scores.shape[0], : scores.shape[1]] = scores
    padded_labels = torch.full((rows,), -1, dtype=torch.long, device=device)
    padded_labels[: labels.shape[0]] = labels
    all_scores = [torch.empty_like(padded) for _ in range(proc.world_size)]
    all_labels = [torch.empty_like(padded_labels) for _ in range(proc.world_size)]
    dist.all_gather(all_scores, padded)
    dist.all_gather(all_labels, padded_labels)
    # Row j of process r is video r + j * W: interleave, then drop the padding past the end.
    order = torch.stack(all_scores, dim=1).reshape(rows * proc.world_size, -1)[:total]
    order_labels = torch.stack(all_labels, dim=1).reshape(-1)[:total]
    return order.cpu(), order_labels.cpu()

