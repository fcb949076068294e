"""foreground_enrichment on crafted masks."""

from __future__ import annotations

import math

import pytest
import torch

from adamae_rl import foreground_enrichment


def test_all_visible_tokens_on_foreground():
    fg = torch.tensor([[1, 1, 1, 1, 0, 0, 0, 0]], dtype=torch.bool)  # foreground share 1/2
    mask = torch.tensor([[0, 0, 1, 1, 1, 1, 1, 1]], dtype=torch.bool)  # visible: tokens 0, 1 (fg)
    assert foreground_enrichment(mask, fg) == pytest.approx(2.0)


def test_chance():
    """Each row shows one foreground and one background token; foreground share is 1/2 -> 1.0."""
    fg = torch.tensor([[1, 1, 1, 1, 0, 0, 0, 0]] * 2, dtype=torch.bool)
    mask = torch.ones(2, 8, dtype=torch.bool)
    mask[0, [0, 4]] = False
    mask[1, [3, 7]] = False
    assert foreground_enrichment(mask, fg) == pytest.approx(1.0)


def test_pooled_over_the_batch():
    """Shares are pooled over all clips, not averaged per clip."""
    fg = torch.tensor([[1, 1, 0, 0, 0, 0, 0, 0], [1, 1, 1, 1, 1, 1, 0, 0]], dtype=torch.bool)  # 8 of 16
    mask = torch.tensor([[0, 1, 0, 1, 1, 1, 1, 1], [0, 0, 1, 1, 1, 1, 0, 1]], dtype=torch.bool)
    # visible: row 0 -> tokens 0 (fg), 2; row 1 -> tokens 0 (fg), 1 (fg), 6: 3 of 5 visible are fg
    assert foreground_enrichment(mask, fg) == pytest.approx((3 / 5) / (8 / 16))


def test_all_visible_on_background_is_zero():
    fg = torch.tensor([[1, 0, 0, 0]], dtype=torch.bool)
    mask = torch.tensor([[1, 0, 1, 1]], dtype=torch.bool)
    assert foreground_enrichment(mask, fg) == 0.0


def test_random_masks_are_at_chance_on_average():
    torch.manual_seed(0)
    fg = torch.rand(400, 64) < 0.3
    mask = torch.rand(400, 64).argsort(-1).argsort(-1) < 48
    assert foreground_enrichment(mask, fg) == pytest.approx(1.0, abs=0.05)


def test_no_foreground_is_nan():
    assert math.isnan(foreground_enrichment(torch.zeros(2, 4, dtype=torch.bool), torch.zeros(2, 4, dtype=torch.bool)))


def test_shape_mismatch():
    with pytest.raises(ValueError, match=r"mask \(2, 64\) and fg_tokens \(2, 63\) differ in shape"):
        foreground_enrichment(torch.zeros(2, 64, dtype=torch.bool), torch.zeros(2, 63, dtype=torch.bool))
