"""Top-k accuracy."""

from __future__ import annotations

import pytest
import torch

from adamae_rl.evaluation.metrics import topk_accuracy


def test_topk_counts_hits_among_the_k_best() -> None:
    logits = torch.tensor([[0.9, 0.1, 0.0], [0.1, 0.2, 0.7], [0.5, 0.4, 0.1], [0.2, 0.3, 0.5]])
    labels = torch.tensor([0, 1, 1, 0])
    scores = topk_accuracy(logits, labels, ks=(1, 2))
    assert scores == {"top1": 0.25, "top2": 0.75}


def test_topk_caps_k_at_the_class_count() -> None:
    scores = topk_accuracy(torch.randn(6, 3), torch.tensor([0, 1, 2, 0, 1, 2]))
    assert scores["top5"] == 1.0 and scores["top5"] >= scores["top1"]


def test_topk_rejects_bad_shapes() -> None:
    with pytest.raises(ValueError, match=r"logits must be \[B, K\]"):
        topk_accuracy(torch.randn(4), torch.zeros(4, dtype=torch.long))
