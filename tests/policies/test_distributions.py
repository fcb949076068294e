"""Mask distributions: counts, log-probabilities, and the Plackett-Luce sampler's law."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from adamae_rl.policies import FrameMask, PlackettLuceMask, TubeMask, UniformMask, count_masked, plackett_luce_log_prob

GRID = (4, 4, 4)


def heuristic_distributions():
    return {
        "random": UniformMask(torch.Size([3]), 64, 48),
        "tube": TubeMask(torch.Size([3]), GRID, 12),
        "frame": FrameMask(torch.Size([3]), GRID, 3),
    }


@pytest.mark.parametrize("name", ["random", "tube", "frame"])
def test_log_prob_finite_on_samples_and_minus_inf_on_invalid(name):
    torch.manual_seed(0)
    dist = heuristic_distributions()[name]
    sample = dist.sample()
    assert sample.shape == (3, 64) and sample.dtype == torch.bool
    assert (sample.sum(-1) == dist.num_masked).all()
    assert torch.isfinite(dist.log_prob(sample)).all()

    wrong_count = sample.clone()
    wrong_count[:, (~sample[0]).nonzero()[0]] = True  # one extra masked token in every row
    wrong_count[1:] = sample[1:]
    assert dist.log_prob(wrong_count)[0] == -math.inf
    assert torch.isfinite(dist.log_prob(wrong_count)[1:]).all()


def test_uniform_log_prob_value():
    dist = UniformMask(torch.Size([2]), 10, 3)
    lp = dist.log_prob(dist.sample())
    torch.testing.assert_close(lp, torch.full((2,), -math.log(math.comb(10, 3))))


def test_tube_log_prob_rejects_right_count_but_not_a_tube():
    torch.manual_seed(0)
    dist = TubeMask(torch.Size([1]), GRID, 12)
    sample = dist.sample().reshape(1, 4, 16)
    assert dist.log_prob(sample.reshape(1, 64)).item() == pytest.approx(-math.log(math.comb(16, 12)))
    moved = sample.clone()
    moved[0, 1] = moved[0, 1].roll(1)  # same count, time step 1 differs from the others
    assert not torch.equal(moved[0, 1], sample[0, 1])
    assert dist.log_prob(moved.reshape(1, 64)).item() == -math.inf


def test_frame_log_prob_rejects_right_count_but_partial_frames():
    torch.manual_seed(0)
    dist = FrameMask(torch.Size([1]), GRID, 3)
    sample = dist.sample()
    assert dist.log_prob(sample).item() == pytest.approx(-math.log(4))
    scattered = torch.zeros(1, 64, dtype=torch.bool)
    scattered[0, torch.randperm(64)[:48]] = True  # 48 masked, but not whole slices
    assert dist.log_prob(scattered).item() == -math.inf


def test_plackett_luce_log_prob_finite_on_own_samples_and_rejects_bool_masks():
    torch.manual_seed(0)
    dist = PlackettLuceMask(torch.randn(3, 64), num_visible=16)
    mask, order = dist.sample_ordered()
    assert mask.shape == (3, 64) and order.shape == (3, 16)
    assert (mask.sum(-1) == 48).all()
    assert (~mask).gather(-1, order).all()  # the ordered draws are exactly the visible tokens
    assert torch.isfinite(dist.log_prob(order)).all()
    with pytest.raises(ValueError, match="ordered draws"):
        dist.log_prob(mask)


@pytest.mark.parametrize("k", [2, 3])
def test_plackett_luce_probabilities_of_all_ordered_subsets_sum_to_one(k):
    torch.manual_seed(0)
    logits = torch.randn(5) * 1.5
    orders = torch.tensor(list(itertools.permutations(range(5), k)))  # [5!/(5-k)!, k]
    log_p = plackett_luce_log_prob(logits.expand(len(orders), 5), orders)
    assert len(orders) == math.perm(5, k)
    assert log_p.exp().sum().item() == pytest.approx(1.0, abs=1e-5)


def test_plackett_luce_log_prob_matches_sequential_draws():
    logits = torch.tensor([0.3, -1.2, 2.0, 0.0, 0.7, -0.4])
    order = [4, 2, 0]
    weights = logits.double().exp()
    remaining, expected = list(range(6)), 0.0
    for token in order:
        expected += math.log(weights[token] / weights[remaining].sum())
        remaining.remove(token)
    got = plackett_luce_log_prob(logits, torch.tensor(order))
    assert got.item() == pytest.approx(expected, abs=1e-5)


def test_plackett_luce_visible_frequencies_match_multinomial():
    """Per-token visible frequencies of ``PlackettLuceMask(logits, N_v).sample()`` and of
    ``torch.multinomial(softmax(logits), N_v, replacement=False)`` agree.

    n = 20,000 draws each, N = 16 tokens, N_v = 4, fixed non-uniform logits. For each token the two
    frequencies are binomial proportions; their difference has standard error
    ``se = sqrt(2 p (1 - p) / n)`` with the pooled ``p``. Tolerance: ``max_i |diff_i| / se_i < 5``
    (a 5-sigma bound; with 16 tokens a correct sampler fails it with probability ~1e-5, and the
    draws are seeded). The same bound must reject a sampler with the logits doubled, so the test
    has the power to see a wrong law.
    """
    n, num_tokens, num_visible = 20_000, 16, 4
    logits = torch.linspace(-1.5, 1.5, num_tokens) + 0.3 * torch.sin(torch.arange(num_tokens, dtype=torch.float32))

    def multinomial_freq(lgts, seed):
        gen = torch.Generator().manual_seed(seed)
        probs = torch.softmax(lgts, -1).expand(n, num_tokens)
        idx = torch.multinomial(probs, num_visible, replacement=False, generator=gen)
        return torch.zeros(n, num_tokens).scatter_(1, idx, 1.0).mean(0)

    def z_scores(f1, f2):
        pooled = (f1 + f2) / 2
        se = (2 * pooled * (1 - pooled) / n).sqrt()
        return ((f1 - f2).abs() / se).max().item()

    torch.manual_seed(0)
    dist = PlackettLuceMask(logits.expand(n, num_tokens), num_visible)
    mask = dist.to_mask(dist.sample())
    assert (mask.sum(-1) == num_tokens - num_visible).all()
    pl_freq = (~mask).float().mean(0)
    ref_freq = multinomial_freq(logits, seed=1)

    assert z_scores(pl_freq, ref_freq) < 5
    assert z_scores(pl_freq, multinomial_freq(2 * logits, seed=2)) > 5


@pytest.mark.parametrize(
    "count, ratio, match",
    [
        (64, 0.0, r"mask_ratio must be in \(0, 1\), got 0.0"),
        (64, 1.0, r"mask_ratio must be in \(0, 1\), got 1.0"),
        (64, -0.5, r"mask_ratio must be in \(0, 1\), got -0.5"),
        (64, 0.995, r"mask_ratio=0.995 masks 64 of 64 tokens, leaving none visible"),
        (64, 0.005, r"mask_ratio=0.005 masks none of 64 tokens"),
    ],
)
def test_count_masked_rejects_bad_ratios(count, ratio, match):
    with pytest.raises(ValueError, match=match):
        count_masked(count, ratio)


def test_count_masked_rounds():
    assert count_masked(64, 0.9) == 58
    assert count_masked(1568, 0.9) == 1411


def test_plackett_luce_rejects_bad_visible_count():
    with pytest.raises(ValueError, match=r"num_visible=8 must be in \[1, 7\]"):
        PlackettLuceMask(torch.zeros(2, 8), 8)
