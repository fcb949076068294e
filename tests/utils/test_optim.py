"""utils.optim: the epsilon-bound share of an AdamW."""

from __future__ import annotations

import pytest
import torch

from adamae_rl.utils.optim import adamw, epsilon_bound_share


@pytest.mark.parametrize(("eps", "expected"), [(1e-8, 1.0), (1e-12, 0.0)])
def test_epsilon_bound_share_compares_the_gradient_rms_with_eps(eps: float, expected: float) -> None:
    param = torch.nn.Parameter(torch.zeros(4, 3))
    opt = adamw([{"params": [param], "weight_decay": 0.0}], lr=1e-3, betas=(0.9, 0.95), eps=eps)
    assert epsilon_bound_share(opt) is None  # no step yet
    for _ in range(3):
        param.grad = torch.full_like(param, 1e-9)  # the sampler's scale in the demo
        opt.step()
    assert epsilon_bound_share(opt) == expected


def test_epsilon_bound_share_counts_entries() -> None:
    param = torch.nn.Parameter(torch.zeros(4))
    opt = adamw([{"params": [param], "weight_decay": 0.0}], lr=1e-3, betas=(0.9, 0.95), eps=1e-8)
    param.grad = torch.tensor([1e-9, 1e-9, 1e-6, 1e-3])
    opt.step()
    assert epsilon_bound_share(opt) == 0.5
