"""Objectives on collected data: TorchRL's collector, replay buffer and losses train the sampler.

Data collected by TorchRL has no graph (the collector runs the policy without gradient; a replay
buffer stores copies). The toolkit's objectives re-run the policy on the stored observation and
score the stored action; without a policy they refuse. Each training test replaces the env's
reward by a known one (1 on masked foreground tokens, 0 elsewhere, as in
``test_learning_direction``) so the direction of learning is known in advance: every estimator
must raise held-out foreground enrichment (1.0 = chance) and change the sampler's parameters.
"""

from __future__ import annotations

import pytest
import torch
from tensordict import TensorDict
from torchrl.collectors import Collector
from torchrl.data import LazyTensorStorage, ReplayBuffer

from adamae_rl import foreground_enrichment, make_env, make_objective, make_policy
from adamae_rl.envs.masked_video import clip_reward
from adamae_rl.objectives.actor_critic import make_torchrl_loss
from adamae_rl.objectives.reinforce import AdaMAELoss

CLIPS = dict(img_size=32, num_frames=8)  # grid 4 x 4 x 4 = 64 tokens


def envs(reward_reduce: str = "none"):
    torch.manual_seed(0)
    env = make_env("tiny", "synthetic", batch_size=8, mask_ratio=0.75, seed=0, reward_reduce=reward_reduce, **CLIPS)
    val = make_env(env.model, "synthetic", batch_size=32, mask_ratio=0.75, seed=0, split="val")
    return env, val


def held_out_enrichment(policy, held_out: TensorDict) -> float:
    """Pooled over 8 mask draws on each held-out clip."""
    torch.manual_seed(1)
    with torch.no_grad():
        masks = torch.cat([policy(held_out.clone()).get("mask") for _ in range(8)])
    return foreground_enrichment(masks, held_out.get("fg_tokens").repeat(8, 1))


def foreground_reward(data: TensorDict) -> TensorDict:
    """Per-token reward 1 on masked foreground tokens; per-clip reward (if the env reduces) minus its mean."""
    token = (data["fg_tokens"] & data["mask"]).float().unsqueeze(-1)
    if ("next", "token_reward") in data.keys(include_nested=True):
        data.set(("next", "token_reward"), token)
        data.set(("next", "reward"), clip_reward(token, data["mask"], -1.0))
    else:
        data.set(("next", "reward"), token)
    return data


def collector(env, policy, batches: int) -> Collector:
    return Collector(env, policy, frames_per_batch=16, total_frames=16 * batches, auto_register_policy_transforms=False)


def test_toolkit_objective_refuses_logits_without_graph():
    logits = torch.randn(2, 16)
    td = TensorDict({"mask": torch.ones(2, 16, dtype=torch.bool), "logits": logits}, [2])
    td.set(("next", "reward"), torch.rand(2, 16, 1))
    with pytest.raises(RuntimeError, match="carry no gradient"):
        AdaMAELoss()(td)


@pytest.mark.parametrize("objective", ["adamae", "plackett_luce"])
def test_rerun_on_stored_data_gives_the_on_policy_gradient(objective):
    env, _ = envs()
    policy = make_policy("adaptive", env=env)
    loss = make_objective(objective, policy=policy)
    torch.manual_seed(3)
    td = env.step(policy(env.reset()))
    (live,) = torch.autograd.grad(loss(td)["loss_policy"], [policy.head.weight])
    stored = td.detach()  # what a replay buffer holds
    assert not stored["logits"].requires_grad
    (rerun,) = torch.autograd.grad(loss(stored)["loss_policy"], [policy.head.weight])
    torch.testing.assert_close(rerun, live)
    assert rerun.abs().sum() > 0


@pytest.mark.parametrize("objective", ["adamae", "plackett_luce"])
def test_toolkit_objectives_train_from_a_replay_buffer(objective):
    env, val = envs()
    held_out = val.reset()
    policy = make_policy("adaptive", env=env)
    loss = make_objective(objective, policy=policy, coef=1.0)
    opt = torch.optim.Adam(policy.parameters(), lr=1e-3)
    buffer = ReplayBuffer(storage=LazyTensorStorage(64), batch_size=16)
    before, start = held_out_enrichment(policy, held_out), policy.head.weight.detach().clone()
    for data in collector(env, policy, batches=40):
        buffer.extend(foreground_reward(data.reshape(-1)))
        losses = loss(buffer.sample())
        opt.zero_grad()
        sum(v for k, v in losses.items() if k.startswith("loss_")).backward()
        opt.step()
    after = held_out_enrichment(policy, held_out)
    assert not torch.equal(policy.head.weight, start)
    assert 0.9 < before < 1.1 and after > 1.15, (before, after)


@pytest.mark.parametrize("name", ["ppo", "reinforce", "a2c"])
def test_torchrl_losses_with_critic_train_from_a_collector(name):
    env, val = envs(reward_reduce="mean")
    held_out = val.reset()
    policy = make_policy("adaptive", env=env)
    # No entropy bonus: its default weight against a per-clip reward of order 0.1 holds the sampler uniform.
    options = {} if name == "reinforce" else {"entropy_coeff": 0.0}
    loss, actor = make_torchrl_loss(name, policy, **options)
    assert set(map(id, policy.parameters())) <= set(map(id, loss.parameters())), "the loss trains the policy itself"
    opt = torch.optim.Adam(loss.parameters(), lr=1e-3)
    before, start = held_out_enrichment(policy, held_out), policy.head.weight.detach().clone()
    for data in collector(env, actor, batches=40):
        losses = loss(foreground_reward(data.reshape(-1)))
        opt.zero_grad()
        sum(v for k, v in losses.items() if k.startswith("loss_")).backward()
        opt.step()
    assert all(p.grad is None for p in env.model.parameters()), "the policy's loss must not reach the MAE"
    after = held_out_enrichment(policy, held_out)
    assert not torch.equal(policy.head.weight, start)
    assert 0.9 < before < 1.1 and after > 1.15, (before, after)
