"""The REINFORCE objectives against direct per-sample formulas; keys, baselines, no-policy loss."""

from __future__ import annotations

import math

import pytest
import torch
from tensordict import TensorDict

from adamae_rl import make_objective
from adamae_rl.objectives import AdaMAELoss, NoPolicyLoss, PlackettLuceLoss
from adamae_rl.policies import PlackettLuceMask, RandomMasking, plackett_luce_log_prob


def step_td(batch: int = 4, num_tokens: int = 16, num_visible: int = 5, seed: int = 0) -> TensorDict:
    """What a policy + env step leave behind: mask, logits, visible_order, ("next", "reward")."""
    torch.manual_seed(seed)
    logits = torch.randn(batch, num_tokens, requires_grad=True)
    mask, order = PlackettLuceMask(logits, num_visible).sample_ordered()
    reward = torch.rand(batch, num_tokens).masked_fill(~mask, 0.0).unsqueeze(-1)
    td = TensorDict({"mask": mask, "logits": logits, "visible_order": order}, [batch])
    td.set(("next", "reward"), reward)
    return td


def adamae_loop(logits, mask, reward, coef):
    """AdaMAE's sampling loss, written out: per sample -mean_{i masked} log softmax(l)_i * r_i."""
    per_sample = []
    for b in range(logits.shape[0]):
        log_p = torch.log_softmax(logits[b].double(), dim=0)
        terms = [log_p[i] * float(reward[b, i]) for i in range(logits.shape[1]) if mask[b, i]]
        per_sample.append(-sum(terms) / len(terms))
    return coef * sum(per_sample) / len(per_sample)


@pytest.mark.parametrize("coef", [1e-4, 1.0])
def test_adamae_loss_equals_per_sample_loop(coef):
    td = step_td()
    loss = AdaMAELoss(coef=coef)(td)["loss_policy"]
    expected = adamae_loop(td["logits"], td["mask"], td["next", "reward"].squeeze(-1), coef)
    assert loss.dim() == 0 and loss.requires_grad
    assert loss.item() == pytest.approx(expected.item(), abs=1e-6, rel=1e-6)
    assert make_objective("adamae", policy=_learnable()).coef == 1e-4  # the paper's coefficient


def test_adamae_loss_gradient_equals_loop_gradient():
    td = step_td()
    logits = td["logits"]
    (grad,) = torch.autograd.grad(AdaMAELoss(coef=1.0)(td)["loss_policy"], logits)
    (expected,) = torch.autograd.grad(adamae_loop(logits, td["mask"], td["next", "reward"].squeeze(-1), 1.0), logits)
    torch.testing.assert_close(grad, expected.float(), atol=1e-6, rtol=1e-5)


def test_adamae_ignores_rewards_on_visible_tokens():
    td = step_td()
    base = AdaMAELoss()(td)["loss_policy"].item()
    noisy = td.clone()
    noisy.set(("next", "reward"), td["next", "reward"] + (~td["mask"]).unsqueeze(-1).float() * 5.0)
    assert AdaMAELoss()(noisy)["loss_policy"].item() == pytest.approx(base, abs=1e-9)


@pytest.mark.parametrize("direction, sign", [("show_hard", -1.0), ("hide_hard", 1.0)])
def test_plackett_luce_loss_batch_baseline(direction, sign):
    td = step_td()
    out = PlackettLuceLoss(coef=1.0, direction=direction)(td)
    mask, logits, order = td["mask"], td["logits"], td["visible_order"]
    reward = td["next", "reward"].squeeze(-1)
    masked_error = torch.stack([reward[b][mask[b]].mean() for b in range(4)])
    returns = sign * masked_error
    log_probs = []
    for b in range(4):  # sequential draws without replacement
        remaining, lp = list(range(16)), 0.0
        for token in order[b].tolist():
            lp = lp + torch.log_softmax(logits[b, remaining].double(), 0)[remaining.index(token)]
            remaining.remove(token)
        log_probs.append(lp)
    expected = -((returns - returns.mean()).double() * torch.stack(log_probs)).mean()
    assert out["loss_policy"].item() == pytest.approx(expected.item(), abs=1e-6)
    assert out["reward_mean"].item() == pytest.approx(masked_error.mean().item(), abs=1e-6)
    assert "loss_entropy" not in out.keys()


def test_plackett_luce_entropy_bonus_and_ema_baseline():
    td = step_td()
    loss = PlackettLuceLoss(baseline="ema", ema_decay=0.5, entropy_coef=0.1)
    first = loss(td)
    log_p = torch.log_softmax(td["logits"], -1)
    entropy = -(log_p.exp() * log_p).sum(-1).mean()
    assert first["loss_entropy"].item() == pytest.approx(-0.1 * entropy.item(), abs=1e-6)
    # The default direction ("show_hard") tracks the return -mean masked error.
    batch_mean = -first["reward_mean"].item()
    assert loss.ema_return.item() == pytest.approx(batch_mean)  # first step: the batch mean
    second_td = step_td(seed=1)
    second = loss(second_td)
    assert loss.ema_return.item() == pytest.approx(0.5 * batch_mean - 0.5 * second["reward_mean"].item(), abs=1e-6)
    with pytest.raises(ValueError, match=r"baseline must be 'batch', 'ema' or 'rloo', got 'median'"):
        PlackettLuceLoss(baseline="median")


def test_renamed_keys():
    td = step_td()
    renamed = TensorDict({"m": td["mask"], "l": td["logits"]}, [4])
    renamed.set(("next", "token_err"), td["next", "reward"])
    loss = AdaMAELoss()
    loss.set_keys(mask="m", logits="l", reward=("next", "token_err"))
    assert loss(renamed)["loss_policy"].item() == pytest.approx(AdaMAELoss()(td)["loss_policy"].item())


def test_missing_key_is_explained():
    td = step_td().exclude("logits")
    with pytest.raises(KeyError, match="needs 'logits'"):
        AdaMAELoss()(td)


def test_non_learnable_policies_get_no_policy_loss():
    policy = RandomMasking((4, 4, 4), 0.9)
    objective = make_objective("adamae", policy=policy)
    assert isinstance(objective, NoPolicyLoss)
    assert list(objective.parameters()) == []
    td = step_td()
    out = objective(td)
    assert not any(key.startswith("loss_") for key in out.keys())
    expected = (td["next", "reward"].squeeze(-1).sum(-1) / td["mask"][0].sum()).mean()
    assert out["reward_mean"].item() == pytest.approx(expected.item())


def test_unknown_objective_lists_known_names():
    with pytest.raises(ValueError, match=r"unknown objective 'ppo'; known objectives: adamae, loss_prediction, plackett_luce"):
        make_objective("ppo", policy=_learnable())


def _learnable():
    from adamae_rl.policies import AdaptiveMasking

    torch.manual_seed(0)
    return AdaptiveMasking((2, 2, 2), 0.5, embed_dim=16, num_heads=2)


def test_losses_are_finite_at_extreme_logits():
    td = step_td()
    td.set("logits", (td["logits"].detach() * 1e3).requires_grad_())
    for loss in (AdaMAELoss(), PlackettLuceLoss()):
        value = loss(td)["loss_policy"]
        assert math.isfinite(value.item())


def test_plackett_luce_rejects_unknown_direction():
    with pytest.raises(ValueError, match="direction must be one of"):
        PlackettLuceLoss(direction="sideways")


def test_ema_baseline_ignores_non_finite_returns():
    """One batch with an infinite reward gives a non-finite loss (for the trainer to handle) but
    never enters the moving average, so the next batch's loss is finite again."""
    loss = PlackettLuceLoss(baseline="ema", ema_decay=0.5)
    loss(step_td(seed=0))
    before = loss.ema_return.item()
    bad = step_td(seed=1)
    reward = bad.get(("next", "reward")).clone()
    reward[0, bad["mask"][0].nonzero()[0, 0]] = float("inf")
    bad.set(("next", "reward"), reward)
    assert not torch.isfinite(loss(bad)["loss_policy"])
    assert loss.ema_return.item() == before
    assert torch.isfinite(loss(step_td(seed=2))["loss_policy"])


def test_rloo_baseline_is_the_mean_of_the_other_masks_of_the_clip():
    from adamae_rl.objectives.reinforce import leave_one_out

    returns = torch.tensor([1.0, 2.0, 3.0, 10.0, 20.0, 30.0])
    torch.testing.assert_close(leave_one_out(returns, 3), torch.tensor([2.5, 2.0, 1.5, 25.0, 20.0, 15.0]))
    td = step_td(batch=4)
    loss = PlackettLuceLoss(baseline="rloo", group_size=2)
    out = loss(td)
    masked_error = td["next", "reward"].squeeze(-1).sum(-1) / 11
    advantage = -masked_error - leave_one_out(-masked_error, 2)
    log_prob = plackett_luce_log_prob(td["logits"], td["visible_order"])
    assert out["loss_policy"].item() == pytest.approx(-(advantage * log_prob).mean().item(), abs=1e-6)
    with pytest.raises(ValueError, match="needs group_size >= 2"):
        PlackettLuceLoss(baseline="rloo")
    with pytest.raises(ValueError, match="not a whole number of groups of 3"):
        PlackettLuceLoss(baseline="rloo", group_size=3)(td)


def test_objectives_read_token_rewards_when_the_env_reduces():
    """With reward_reduce="mean" the per-token reward is ("next", "token_reward"): same loss."""
    td = step_td()
    reduced = td.clone()
    reduced.set(("next", "token_reward"), td["next", "reward"])
    reduced.set(("next", "reward"), -td["next", "reward"].mean(-2))
    for loss in (AdaMAELoss(), PlackettLuceLoss()):
        assert loss(reduced)["loss_policy"].item() == pytest.approx(loss(td)["loss_policy"].item(), abs=1e-7)
