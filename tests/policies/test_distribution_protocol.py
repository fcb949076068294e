"""Every mask distribution as a torch Distribution: its own sample scores, mode, entropy, actor use."""

from __future__ import annotations

import itertools

import pytest
import torch
from tensordict import TensorDict

from adamae_rl.policies import (
    FrameMask,
    HardFirstMask,
    PlackettLuceMask,
    SlicedPlackettLuceMask,
    TubeMask,
    UniformMask,
    plackett_luce_log_prob,
)

GRID = (4, 2, 2)  # 16 tokens


def all_distributions() -> dict:
    torch.manual_seed(0)
    logits = torch.randn(3, 16)
    return {
        "uniform": UniformMask(torch.Size([3]), 16, 12),
        "tube": TubeMask(torch.Size([3]), GRID, 3),
        "frame": FrameMask(torch.Size([3]), GRID, 3),
        "hard_first": HardFirstMask(torch.rand(3, 16), 12, 2),
        "plackett_luce": PlackettLuceMask(logits, 4),
        "sliced": SlicedPlackettLuceMask(logits, GRID, torch.ones(3, 4, dtype=torch.long)),
    }


@pytest.mark.parametrize("name", list(all_distributions()))
def test_log_prob_takes_own_sample_and_mode(name):
    dist = all_distributions()[name]
    torch.manual_seed(1)
    for action in (dist.sample(), dist.mode, dist.deterministic_sample):
        lp = dist.log_prob(action)
        assert lp.shape == (3,) and torch.isfinite(lp).all(), name
        mask = dist.to_mask(action)
        assert mask.dtype == torch.bool and mask.shape == (3, 16)
        assert (mask.sum(-1) == dist.num_masked).all()
    # A sample shape in front works for sample, to_mask and log_prob alike.
    many = dist.sample(torch.Size([5]))
    assert dist.to_mask(many).shape == (5, 3, 16)
    assert dist.log_prob(many).shape == (5, 3)
    # The mode is a most probable action: no sample beats it.
    assert (dist.log_prob(dist.sample(torch.Size([200]))) <= dist.log_prob(dist.mode) + 1e-5).all()
    assert torch.equal(dist.mode, dist.mode), "the mode is deterministic"


@pytest.mark.parametrize("name", ["uniform", "tube", "frame", "hard_first"])
def test_set_laws_entropy_is_exact(name):
    """A uniform law over its support: entropy = -log_prob of any of its samples."""
    dist = all_distributions()[name]
    torch.testing.assert_close(dist.entropy(), -dist.log_prob(dist.sample()))


def test_plackett_luce_entropy_estimate_matches_enumeration():
    """N = 6, N_v = 3: all 120 ordered draws enumerated give the exact entropy."""
    torch.manual_seed(0)
    logits = torch.randn(6) * 1.5
    orders = torch.tensor(list(itertools.permutations(range(6), 3)))
    log_p = plackett_luce_log_prob(logits.expand(len(orders), 6), orders)
    exact = -(log_p.exp() * log_p).sum()
    estimate = PlackettLuceMask(logits, 3, entropy_samples=4000).entropy()
    assert estimate.item() == pytest.approx(exact.item(), rel=0.01)
    # The greedy draw is the most probable ordered draw.
    mode = PlackettLuceMask(logits, 3).mode
    assert plackett_luce_log_prob(logits, mode).item() == pytest.approx(log_p.max().item(), abs=1e-6)


def test_sliced_entropy_is_sum_of_slice_entropies():
    """One visible token per slice: each slice is one categorical draw, entropy in closed form."""
    torch.manual_seed(0)
    logits = torch.randn(2, 16)
    dist = SlicedPlackettLuceMask(logits, GRID, torch.ones(2, 4, dtype=torch.long))
    log_p = torch.log_softmax(logits.reshape(2, 4, 4), -1)
    exact = -(log_p.exp() * log_p).sum((-1, -2))
    torch.testing.assert_close(dist.entropy(), exact, atol=1e-5, rtol=1e-5)


def test_plackett_luce_entropy_has_gradient_toward_uniform():
    logits = torch.tensor([[3.0, 0.0, -1.0, 0.5, 0.2, -2.0]], requires_grad=True)
    torch.manual_seed(0)
    PlackettLuceMask(logits, 2, entropy_samples=64).entropy().sum().backward()
    # Raising the entropy lowers the largest logit and raises the smallest.
    assert logits.grad[0, 0] < 0 and logits.grad[0, 5] > 0


def test_probabilistic_actor_samples_and_scores_the_ordered_draw():
    """TorchRL's ProbabilisticActor with return_log_prob=True, random and deterministic."""
    from tensordict.nn import TensorDictModule, TensorDictSequential
    from torchrl.envs.utils import ExplorationType, set_exploration_type
    from torchrl.modules import ProbabilisticActor

    net = TensorDictModule(torch.nn.Linear(8, 1), in_keys=["tokens"], out_keys=["logits"])
    squeeze = TensorDictModule(lambda x: x.squeeze(-1), in_keys=["logits"], out_keys=["logits"])

    actor = ProbabilisticActor(
        TensorDictSequential(net, squeeze), in_keys=["logits"], out_keys=["visible_order"],
        distribution_class=PlackettLuceMask, distribution_kwargs={"num_visible": 4}, return_log_prob=True,
    )
    td = TensorDict(tokens=torch.randn(5, 16, 8), batch_size=[5])
    with set_exploration_type(ExplorationType.RANDOM):
        out = actor(td.clone())
    assert out["visible_order"].shape == (5, 4)
    lp = out["visible_order_log_prob"]
    torch.testing.assert_close(lp, plackett_luce_log_prob(out["logits"], out["visible_order"]))
    with set_exploration_type(ExplorationType.DETERMINISTIC):
        greedy = actor(td.clone())
    assert torch.equal(greedy["visible_order"], greedy["logits"].topk(4, -1).indices)
