"""The linear probe's fit."""

from __future__ import annotations

import pytest
import torch

from adamae_rl.evaluation.metrics import topk_accuracy
from adamae_rl.evaluation.probe import ProbeSettings, fit_linear_probe


def test_probe_separates_separable_classes_and_is_deterministic() -> None:
    gen = torch.Generator().manual_seed(0)
    centres = torch.randn(4, 16, generator=gen) * 3
    labels = torch.arange(200) % 4
    feats = centres[labels] + torch.randn(200, 16, generator=gen) + 100.0  # an offset the standardization removes
    first = fit_linear_probe(feats, labels, 4, ProbeSettings())
    second = fit_linear_probe(feats, labels, 4, ProbeSettings())
    with torch.no_grad():
        assert topk_accuracy(first(feats), labels, ks=(1,))["top1"] > 0.95
        torch.testing.assert_close(first(feats), second(feats))


def test_probe_rejects_labels_outside_the_classes() -> None:
    with pytest.raises(ValueError, match="outside 0..3"):
        fit_linear_probe(torch.randn(8, 4), torch.tensor([0, 1, 2, 3, 4, 0, 1, 2]), 4, ProbeSettings())
