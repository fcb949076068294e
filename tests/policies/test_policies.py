"""The policy contract, checked for every registered policy; tube/frame/adaptive specifics."""

from __future__ import annotations

import pytest
import torch
from tensordict import TensorDict

import adamae_rl
from adamae_rl import make_policy
from adamae_rl.policies import FrameMasking, RandomMasking, TubeMasking

POLICIES = adamae_rl.list_policies()
GEOMETRY = {"grid": (4, 4, 4), "mask_ratio": 0.9, "embed_dim": 128, "patch_dim": 384}


def test_builtins_are_registered():
    assert {"random", "tube", "frame", "adaptive", "motion", "embedding_change", "loss_predictor"} <= set(POLICIES)


@pytest.fixture(scope="module")
def env_and_obs():
    torch.manual_seed(0)
    env = adamae_rl.make_env(model="tiny", data="synthetic", batch_size=3, mask_ratio=0.9, seed=0, img_size=32, num_frames=8)
    return env, env.reset()


@pytest.mark.parametrize("name", POLICIES)
def test_policy_contract(name, env_and_obs):
    env, obs = env_and_obs
    torch.manual_seed(0)
    policy = make_policy(name, env=env)
    td = policy(obs.clone())
    mask = td.get("mask")
    assert mask.dtype == torch.bool and mask.shape == (3, env.num_tokens)
    assert 0 < policy.num_masked < env.num_tokens
    assert (mask.sum(-1) == policy.num_masked).all()
    for key, value in td.items(include_nested=True, leaves_only=True):
        if value.is_floating_point():
            assert not torch.isnan(value).any(), key

    # The mask goes through an env step unchanged and gives finite rewards.
    out = env.step(td.clone())
    assert torch.isfinite(out.get(("next", "reward"))).all()

    torch.manual_seed(123)
    first = policy(obs.clone()).get("mask")
    torch.manual_seed(123)
    again = policy(obs.clone()).get("mask")
    assert torch.equal(first, again)
    torch.manual_seed(124)
    other = torch.stack([policy(obs.clone()).get("mask") for _ in range(3)])
    assert not (other == first).all(), "masks do not depend on the seed"


@pytest.mark.parametrize("name", POLICIES)
def test_policy_log_prob_finite_on_own_sample(name, env_and_obs):
    env, obs = env_and_obs
    torch.manual_seed(0)
    policy = make_policy(name, env=env)
    dist = policy.distribution(obs.clone())
    value = dist.sample()  # the action: a mask, or the ordered visible draw for Plackett-Luce laws
    assert torch.isfinite(dist.log_prob(value)).all()
    for action in (value, dist.mode, dist.deterministic_sample):
        mask = dist.to_mask(action)
        assert mask.shape == (3, env.num_tokens) and (mask.sum(-1) == policy.num_masked).all()
        assert torch.isfinite(dist.log_prob(action)).all()
    entropy = dist.entropy()
    assert entropy.shape == (3,) and torch.isfinite(entropy).all() and (entropy >= 0).all()


@pytest.mark.parametrize("name", POLICIES)
def test_policy_takes_its_mode_under_deterministic_exploration(name, env_and_obs):
    from torchrl.envs.utils import ExplorationType, set_exploration_type

    env, obs = env_and_obs
    policy = make_policy(name, env=env)
    with set_exploration_type(ExplorationType.DETERMINISTIC):
        torch.manual_seed(1)
        first = policy(obs.clone()).get("mask")
        torch.manual_seed(2)
        again = policy(obs.clone()).get("mask")
    assert torch.equal(first, again), "the mode does not depend on the seed"
    assert torch.equal(first, policy.distribution(obs.clone()).to_mask(policy.distribution(obs.clone()).mode))


def test_learnable_policy_rescores_its_stored_action(env_and_obs):
    env, obs = env_and_obs
    policy = make_policy("adaptive", env=env)
    with torch.no_grad():
        stored = policy(obs.clone())
    fresh = policy.log_prob(stored)
    assert fresh.requires_grad
    torch.testing.assert_close(fresh.detach(), stored["visible_order_log_prob"])


@pytest.mark.parametrize("name", POLICIES)
@pytest.mark.parametrize("batch_shape", [(), (3, 2)], ids=["unbatched", "2d_batch"])
def test_policy_handles_any_batch_shape(name, batch_shape):
    """Masks are ``[*batch, N]``: one clip without a batch dim, or a grid of clips."""
    torch.manual_seed(0)
    policy = make_policy(name, geometry=GEOMETRY)
    obs = TensorDict(
        {"tokens": torch.randn(*batch_shape, 64, 128), "patches": torch.randn(*batch_shape, 64, 384)}, batch_shape
    )
    mask = policy(obs).get("mask")
    assert mask.shape == (*batch_shape, 64)
    assert (mask.sum(-1) == policy.num_masked).all()


def observation(batch: int = 5) -> TensorDict:
    return TensorDict({"tokens": torch.zeros(batch, 64, 128), "patches": torch.zeros(batch, 64, 384)}, [batch])


def test_tube_masks_are_equal_at_every_time_step():
    torch.manual_seed(0)
    policy = make_policy("tube", geometry=GEOMETRY)
    assert isinstance(policy, TubeMasking)
    mask = policy(observation()).get("mask").reshape(5, 4, 16)  # [B, T', H'W']
    assert (mask == mask[:, :1]).all()
    assert (mask[:, 0].sum(-1) == 14).all()  # round(0.9 * 16) spatial positions
    assert policy.num_masked == 56 and policy.effective_mask_ratio == pytest.approx(56 / 64)
    assert not (mask[:, 0] == mask[:1, 0]).all(), "every clip gets its own spatial subset"


def test_frame_masks_whole_slices_and_reports_effective_ratio():
    torch.manual_seed(0)
    policy = make_policy("frame", geometry=GEOMETRY)
    assert isinstance(policy, FrameMasking)
    # T' = 4: 0.9 * 4 rounds to 4 slices, clamped to 3 so that one stays visible.
    assert policy.frames_masked == 3
    assert policy.effective_mask_ratio == pytest.approx(0.75)
    mask = policy(observation(8)).get("mask").reshape(8, 4, 16)
    slice_masked = mask.all(-1)
    assert ((mask.all(-1)) | (~mask).all(-1)).all(), "a temporal slice is either fully masked or fully visible"
    assert (slice_masked.sum(-1) == 3).all()
    assert policy(observation(1)).get("mask").sum().item() == 48


def test_frame_reaches_multiples_of_one_over_t():
    policy = make_policy("frame", geometry={**GEOMETRY, "mask_ratio": 0.5})
    assert policy.effective_mask_ratio == 0.5
    policy = make_policy("frame", geometry={**GEOMETRY, "mask_ratio": 0.05})
    assert policy.frames_masked == 1 and policy.effective_mask_ratio == 0.25


def test_random_masks_nominal_ratio():
    policy = make_policy("random", geometry=GEOMETRY)
    assert isinstance(policy, RandomMasking)
    assert policy.num_masked == 58


def test_adaptive_writes_logits_and_visible_order():
    torch.manual_seed(0)
    policy = make_policy("adaptive", geometry=GEOMETRY)
    assert policy.learnable and sum(p.numel() for p in policy.parameters()) > 0
    td = policy(TensorDict({"tokens": torch.randn(4, 64, 128)}, [4]))
    logits, mask, order = td.get("logits"), td.get("mask"), td.get("visible_order")
    assert logits.shape == (4, 64) and logits.requires_grad
    assert order.shape == (4, 6) and order.dtype == torch.long
    assert (~mask).gather(-1, order).all()
    assert torch.equal(torch.sort(order, -1).values, (~mask).nonzero()[:, 1].reshape(4, 6))


def test_adaptive_rejects_wrong_token_width():
    policy = make_policy("adaptive", geometry=GEOMETRY)
    with pytest.raises(ValueError, match=r"tokens must be \[B, 64, 128\], got \(2, 64, 96\)"):
        policy(TensorDict({"tokens": torch.randn(2, 64, 96)}, [2]))


@pytest.mark.parametrize(
    "name, ratio, match",
    [
        ("random", 1.0, r"mask_ratio must be in \(0, 1\), got 1.0"),
        ("random", 0.995, r"masks 64 of 64 tokens, leaving none visible"),
        ("adaptive", 0.0, r"mask_ratio must be in \(0, 1\), got 0.0"),
        ("adaptive", 0.999, r"masks 64 of 64 tokens, leaving none visible"),
        ("tube", 0.98, r"masks 16 of 16 spatial positions per time step, leaving none visible"),
        ("tube", 1.5, r"mask_ratio must be in \(0, 1\), got 1.5"),
        ("frame", 1.0, r"mask_ratio must be in \(0, 1\), got 1.0"),
        ("frame", -0.1, r"mask_ratio must be in \(0, 1\), got -0.1"),
    ],
)
def test_policies_reject_bad_ratios(name, ratio, match):
    with pytest.raises(ValueError, match=match):
        make_policy(name, geometry={**GEOMETRY, "mask_ratio": ratio})


def test_frame_needs_two_slices():
    with pytest.raises(ValueError, match=r"needs at least 2 temporal slices, the grid \(1, 4, 4\) has 1"):
        make_policy("frame", geometry={**GEOMETRY, "grid": (1, 4, 4)})


def test_adaptive_rejects_width_not_divisible_by_heads():
    with pytest.raises(ValueError, match=r"sampler width 100 is not divisible by num_heads=8"):
        make_policy("adaptive", geometry=GEOMETRY, width=100, num_heads=8)


def test_adaptive_default_heads_have_width_64():
    policy = make_policy("adaptive", geometry={**GEOMETRY, "embed_dim": 768})
    assert policy.blocks[0].attn.num_heads == 12


def test_adaptive_refuses_non_finite_tokens():
    """NaN tokens would give NaN logits and a silently fixed mask: the policy raises instead."""
    from adamae_rl.policies.base import NonFiniteError

    policy = make_policy("adaptive", geometry=GEOMETRY)
    tokens = torch.randn(2, 64, 128)
    tokens[1, 3, 0] = float("nan")
    with pytest.raises(NonFiniteError, match="non-finite logits \\(from non-finite tokens\\)"):
        policy(TensorDict({"tokens": tokens}, [2]))
