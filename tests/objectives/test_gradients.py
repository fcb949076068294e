"""Gradient separation on a real env + adaptive policy step: recon -> MAE only, policy loss -> policy only."""

from __future__ import annotations

import pytest
import torch

from adamae_rl import make_objective, make_policy


@pytest.fixture
def step(make_small_env):
    env = make_small_env(batch_size=2, mask_ratio=0.75)
    torch.manual_seed(0)
    policy = make_policy("adaptive", env=env)
    td = env.step(policy(env.reset()))
    return env.model, policy, td


def grads(module):
    return {name: p.grad for name, p in module.named_parameters()}


def test_recon_loss_reaches_mae_only(step):
    model, policy, td = step
    td.get(("next", "loss_recon")).mean().backward()
    for name, grad in grads(policy).items():
        assert grad is None or not grad.any(), f"policy parameter {name} got a reconstruction gradient"
    for name, grad in grads(model).items():
        assert grad is not None and grad.abs().sum() > 0, f"MAE parameter {name} got no gradient"


@pytest.mark.parametrize("objective", ["adamae", "plackett_luce"])
def test_policy_loss_reaches_policy_only(step, objective):
    model, policy, td = step
    losses = make_objective(objective, policy=policy)(td)
    sum(value for key, value in losses.items() if key.startswith("loss_")).backward()
    for name, grad in grads(model).items():
        assert grad is None or not grad.any(), f"MAE parameter {name} got a policy gradient"
    for name, grad in grads(policy).items():
        assert grad is not None and grad.abs().sum() > 0, f"policy parameter {name} got no gradient"


def test_observation_tokens_carry_no_graph(step):
    _, _, td = step
    assert not td.get("tokens").requires_grad
    assert td.get("logits").requires_grad and not td.get(("next", "reward")).requires_grad
