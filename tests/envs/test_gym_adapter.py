"""MaskedVideoGymEnv passes gymnasium's checker without warnings; actions and rewards."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env

from adamae_rl.data import SyntheticClips
from adamae_rl.envs import FixedCountMultiBinary, MaskedVideoGymEnv
from adamae_rl.models import build_mae


@pytest.fixture
def gym_env() -> MaskedVideoGymEnv:
    torch.manual_seed(0)
    model = build_mae("tiny", img_size=32, num_frames=8)
    clips = SyntheticClips(num_clips=8, num_frames=8, img_size=32, patch_size=8, tubelet_size=2)
    return MaskedVideoGymEnv(model, clips, mask_ratio=0.9)


def test_check_env_without_warnings(gym_env):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(gym_env, skip_render_check=True)


def test_spaces(gym_env):
    assert isinstance(gym_env.action_space, FixedCountMultiBinary)
    assert gym_env.action_space.n == 64 and gym_env.action_space.num_ones == 58
    assert gym_env.observation_space.shape == (64 * 384,)
    gym_env.action_space.seed(0)
    action = gym_env.action_space.sample()
    assert action.shape == (64,) and action.sum() == 58
    assert gym_env.action_space.contains(action)
    wrong = action.copy()
    wrong[np.flatnonzero(wrong == 0)[0]] = 1
    assert not gym_env.action_space.contains(wrong)


def test_step_reward_and_token_rewards(gym_env):
    obs, info = gym_env.reset(seed=0)
    assert gym_env.observation_space.contains(obs)
    assert {"index", "label", "fg_tokens"} <= set(info) and info["fg_tokens"].shape == (64,)
    gym_env.action_space.seed(0)
    action = gym_env.action_space.sample()
    obs2, reward, terminated, truncated, info = gym_env.step(action)
    token_reward = info["token_reward"]
    assert terminated and not truncated
    assert token_reward.shape == (64,)
    assert (token_reward[action == 0] == 0).all() and (token_reward[action == 1] > 0).all()
    assert reward == pytest.approx(token_reward.sum() / 58, rel=1e-5)
    np.testing.assert_array_equal(obs, obs2)


def test_step_rejects_bad_actions(gym_env):
    gym_env.reset(seed=0)
    with pytest.raises(ValueError, match=r"shape \(64,\), got \(63,\)"):
        gym_env.step(np.zeros(63, dtype=np.int8))
    with pytest.raises(ValueError, match="only 0 and 1"):
        gym_env.step(np.full(64, 2, dtype=np.int8))
    bad = np.zeros(64, dtype=np.int8)
    bad[:64] = 1
    with pytest.raises(ValueError, match=r"action masks 64 tokens; this environment masks exactly \d+"):
        gym_env.step(bad)
    bad = np.zeros(64, dtype=np.int8)
    bad[: gym_env.num_masked - 1] = 1  # one short of the action space's count
    with pytest.raises(ValueError, match=f"action masks {gym_env.num_masked - 1} tokens"):
        gym_env.step(bad)


def test_bad_ratio_is_rejected():
    model = build_mae("tiny", img_size=32, num_frames=8)
    clips = SyntheticClips(num_clips=1, num_frames=8, img_size=32, patch_size=8, tubelet_size=2)
    with pytest.raises(ValueError, match=r"mask_ratio must be in \(0, 1\), got 1.2"):
        MaskedVideoGymEnv(model, clips, mask_ratio=1.2)
