"""MaskedVideoEnv: TorchRL spec checks, action spec, rewards, gradients, extra keys, bad masks."""

from __future__ import annotations

import pytest
import torch
from torchrl.envs.utils import check_env_specs

from adamae_rl.envs import FixedCountMaskSpec, MaskedVideoEnv


@pytest.fixture
def env(make_small_env) -> MaskedVideoEnv:
    return make_small_env(batch_size=2, mask_ratio=0.9)


def test_check_env_specs(env):
    torch.manual_seed(0)
    check_env_specs(env)


def test_geometry(env):
    assert env.grid == (4, 4, 4) and env.num_tokens == 64 and env.num_masked == 58
    assert env.geometry == {"grid": (4, 4, 4), "mask_ratio": 0.9, "embed_dim": 128, "patch_dim": 384}


def test_action_spec_samples_valid_masks_and_rejects_wrong_counts(env):
    spec = env.full_action_spec["mask"]
    assert isinstance(spec, FixedCountMaskSpec)
    torch.manual_seed(0)
    masks = spec.rand()
    assert masks.shape == (2, 64) and masks.dtype == torch.bool
    assert (masks.sum(-1) == 58).all()
    assert spec.is_in(masks)
    many = spec.rand(torch.Size([50]))
    assert many.shape == (50, 2, 64) and (many.sum(-1) == 58).all()
    assert spec.is_in(many[7])
    assert len({tuple(m.flatten().tolist()) for m in many}) > 1  # random, not constant

    wrong = masks.clone()
    wrong[0, (~wrong[0]).nonzero()[0]] = True  # 59 masked in row 0
    assert not spec.is_in(wrong)
    assert not spec.is_in(torch.zeros(2, 64, dtype=torch.bool))
    # Cloning (TorchRL rebuilds specs through the class) keeps the count.
    assert (spec.clone().rand().sum(-1) == 58).all()


def test_reset_observation_and_extra_keys(env):
    td = env.reset()
    assert td.get("tokens").shape == (2, 64, 128) and not td.get("tokens").requires_grad
    assert td.get("patches").shape == (2, 64, 384)
    assert td.get("video").shape == (2, 3, 8, 32, 32)
    assert td.get("label").shape == (2,) and td.get("label").dtype == torch.long
    assert td.get("fg_tokens").shape == (2, 64) and td.get("fg_tokens").dtype == torch.bool
    assert td.get("fg_tokens").any()
    # tokens are the MAE's patch embeddings of the clip
    torch.testing.assert_close(td.get("tokens"), env.model.embed(td.get("video")).detach())


def test_step_reward_loss_and_extra_keys(env):
    torch.manual_seed(0)
    td = env.reset()
    td.set("mask", env.full_action_spec["mask"].rand())
    out = env.step(td)
    mask = out.get("mask")
    reward = out.get(("next", "reward"))
    assert reward.shape == (2, 64, 1)
    assert not reward.requires_grad
    assert (reward[~mask] == 0).all()
    assert (reward[mask] > 0).all()
    loss = out.get(("next", "loss_recon"))
    assert loss.requires_grad and loss.shape == (2,)
    # loss_recon is each clip's mean error over its masked tokens, i.e. the mean masked reward.
    torch.testing.assert_close(loss.detach(), reward.squeeze(-1).sum(-1) / 58)
    assert out.get(("next", "done")).all() and out.get(("next", "terminated")).all()
    for key in ("label", "fg_tokens"):
        assert torch.equal(out.get(("next", key)), td.get(key))


def test_consecutive_resets_give_new_clips(env):
    first = env.reset().get("video")
    second = env.reset().get("video")
    assert not torch.equal(first, second)


def test_step_rejects_masks_with_unequal_counts(env):
    td = env.reset()
    mask = env.full_action_spec["mask"].rand()
    mask[1, (~mask[1]).nonzero()[0]] = True
    td.set("mask", mask)
    with pytest.raises(ValueError, match=r"same number of tokens; got counts \[58, 59\]"):
        env.step(td)


def test_step_rejects_masks_of_wrong_shape(env):
    td = env.reset()
    td.set("mask", torch.ones(2, 65, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"mask shape \(2, 65\) does not match \[B, N\] = \[2, 64\]"):
        env.step(td)


def test_step_rejects_all_masked(env):
    td = env.reset()
    td.set("mask", torch.ones(2, 64, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"hides 64 of 64 tokens; need between 1 and 63"):
        env.step(td)


def test_step_accepts_other_uniform_counts(env):
    """Tube/frame policies round to whole units: any uniform count in [1, N-1] is a valid action."""
    td = env.reset()
    td.set("mask", (torch.arange(64) < 48).expand(2, 64).clone())
    reward = env.step(td).get(("next", "reward"))
    assert (reward[:, :48] > 0).all() and (reward[:, 48:] == 0).all()


def test_step_without_a_mask_names_the_missing_key(env):
    with pytest.raises(KeyError, match=r"env.step needs 'mask'.*policy\(env.reset\(\)\)"):
        env.step(env.reset())


def test_step_reuses_its_own_patches_only_for_the_observed_clip(env):
    """The env cuts each clip into patches once (at reset) and the step reuses them: the same
    rewards as cutting again; a step on another video tensor cuts that one, never stale patches."""
    from adamae_rl.envs.masked_video import reconstruction_step

    torch.manual_seed(0)
    td = env.reset()
    mask = env.full_action_spec["mask"].rand()
    td.set("mask", mask)
    td.set("patches", torch.zeros_like(td.get("patches")))  # what a policy writes is not trusted
    reward = env.step(td).get(("next", "reward"))
    expected, _ = reconstruction_step(env.model, td.get("video"), mask)
    torch.testing.assert_close(reward, expected, rtol=0, atol=0)

    td = env.reset()
    other = td.get("video").flip(-1)  # a different clip than the one observed
    td.set("video", other)
    td.set("mask", mask)
    reward = env.step(td).get(("next", "reward"))
    expected, _ = reconstruction_step(env.model, other, mask)
    torch.testing.assert_close(reward, expected, rtol=0, atol=0)


# --- per-clip reward and K masks per clip ------------------------------------------------------------
@pytest.mark.parametrize("direction, sign", [("show_hard", -1.0), ("hide_hard", 1.0)])
def test_mean_reward_is_the_signed_clip_error_and_keeps_token_rewards(make_small_env, direction, sign):
    env = make_small_env(batch_size=2, mask_ratio=0.75, reward_reduce="mean", reward_direction=direction)
    torch.manual_seed(0)
    check_env_specs(env)
    td = env.rand_step(env.reset())
    reward, token = td["next", "reward"], td["next", "token_reward"]
    assert reward.shape == (2, 1) and token.shape == (2, 64, 1)
    torch.testing.assert_close(reward[:, 0], sign * td["next", "loss_recon"].detach())
    assert (token[~td["mask"]] == 0).all()


def test_masks_per_clip_repeats_each_clip_in_consecutive_rows(make_small_env):
    env = make_small_env(batch_size=4, mask_ratio=0.75, masks_per_clip=2)
    torch.manual_seed(0)
    check_env_specs(env)
    video = env.reset()["video"]
    assert torch.equal(video[0], video[1]) and torch.equal(video[2], video[3])
    assert not torch.equal(video[1], video[2])


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"reward_reduce": "sum"}, "reward_reduce must be one of none, mean, got 'sum'"),
        ({"reward_direction": "up"}, "reward_direction must be one of show_hard, hide_hard, got 'up'"),
        ({"masks_per_clip": 3}, "masks_per_clip=3 must be >= 1 and divide batch_size=4"),
    ],
)
def test_bad_reward_options_are_named(make_small_env, kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_small_env(batch_size=4, **kwargs)
