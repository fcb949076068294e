"""MaskedVideoGymEnv: checkers for every option, actions, rewards, bad input, vector envs."""

from __future__ import annotations

import pickle
import sys
import warnings

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env

from adamae_rl.data import SyntheticClips
from adamae_rl.envs import FixedCountMultiBinary, MaskedVideoGymEnv, scores_to_mask
from adamae_rl.envs.gym_adapter import ACTIONS, OBSERVATIONS, REWARDS
from adamae_rl.envs.gym_spaces import embedding_bounds
from adamae_rl.models import build_mae

GEOMETRY = dict(num_frames=8, img_size=32, patch_size=8, tubelet_size=2)  # 4 x 4 x 4 = 64 tokens


def make_env(**options) -> MaskedVideoGymEnv:
    torch.manual_seed(0)
    model = build_mae("tiny", img_size=32, num_frames=8)
    clips = SyntheticClips(num_clips=8, **GEOMETRY)
    return MaskedVideoGymEnv(model, clips, mask_ratio=0.9, **options)


@pytest.fixture
def gym_env() -> MaskedVideoGymEnv:
    return make_env()


@pytest.mark.parametrize("observation", OBSERVATIONS)
@pytest.mark.parametrize("action", ACTIONS)
def test_gymnasium_check_env_without_warnings(action, observation):
    env = make_env(action=action, observation=observation, reward="show_hard_relative")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(env, skip_render_check=True)


@pytest.mark.parametrize("observation", OBSERVATIONS)
@pytest.mark.parametrize("action", ACTIONS)
def test_sb3_check_env_without_warnings(action, observation):
    sb3_checker = pytest.importorskip("stable_baselines3.common.env_checker")
    env = make_env(action=action, observation=observation)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sb3_checker.check_env(env, warn=True)


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


def test_compact_observations_are_the_mae_token_embeddings():
    tokens_env, pooled_env = make_env(observation="tokens"), make_env(observation="pooled")
    assert tokens_env.observation_space.shape == (64 * 128,) and pooled_env.observation_space.shape == (128,)
    obs, info = tokens_env.reset(seed=3)
    pooled, _ = pooled_env.reset(seed=3)
    video = tokens_env.dataset[info["index"]]["video"].unsqueeze(0)
    expected = tokens_env.model.embed(video)[0].detach().numpy()  # [N, D]
    np.testing.assert_allclose(obs.reshape(64, 128), expected, atol=1e-6)
    np.testing.assert_allclose(pooled, expected.mean(0), atol=1e-5)


def test_embedding_bounds_are_reached_by_extreme_pixels():
    model = build_mae("tiny", img_size=32, num_frames=8)
    low, high = embedding_bounds(model)
    weight = model.patch_embed.weight.detach()[0]  # channel 0: [C, t, p, p]
    mean = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1, 1)
    # The pixels (in [0, 1]) that maximize channel 0: 1 where its weight is positive.
    pixels = (weight > 0).float()
    best = float((weight * (pixels - mean) / std).sum() + model.patch_embed.bias.detach()[0])
    assert best == pytest.approx(float(high[0]), rel=1e-3, abs=1e-3)
    assert float(high[0]) >= best and float(low[0]) < best


def test_ground_truth_only_when_asked():
    _, info = make_env().reset(seed=0)
    assert set(info) == {"index"}, "an agent must not see labels or foreground"
    _, info = make_env(ground_truth=True).reset(seed=0)
    assert {"index", "label", "fg_tokens"} <= set(info) and info["fg_tokens"].shape == (64,)


def test_step_reward_and_token_rewards(gym_env):
    obs, info = gym_env.reset(seed=0)
    assert gym_env.observation_space.contains(obs)
    gym_env.action_space.seed(0)
    action = gym_env.action_space.sample()
    obs2, reward, terminated, truncated, info = gym_env.step(action)
    token_reward = info["token_reward"]
    assert terminated and not truncated
    assert token_reward.shape == (64,)
    np.testing.assert_array_equal(info["mask"], action.astype(bool))
    assert (token_reward[action == 0] == 0).all() and (token_reward[action == 1] > 0).all()
    assert reward == pytest.approx(token_reward.sum() / 58, rel=1e-5)
    np.testing.assert_array_equal(obs, obs2)


def test_score_action_shows_the_highest_scores():
    env = make_env(action="scores")
    assert env.action_space == gym.spaces.Box(-1, 1, (64,), np.float32)
    env.reset(seed=0)
    scores = np.linspace(-1, 1, 64, dtype=np.float32)[::-1].copy()  # token 0 highest
    _, reward, _, _, info = env.step(scores)
    expected = np.ones(64, dtype=bool)
    expected[:6] = False  # N_v = 64 - 58 = 6 visible: the six highest scores
    np.testing.assert_array_equal(info["mask"], expected)
    assert reward == pytest.approx(info["token_reward"].sum() / 58, rel=1e-5)


def test_tied_scores_give_a_uniform_random_mask():
    rng = np.random.default_rng(0)
    counts = np.zeros(16)
    for _ in range(4000):
        counts += ~scores_to_mask(np.ones(16), 4, rng)  # every score tied (e.g. all clipped at 1)
    # Each token visible with probability 4/16; 4000 draws: sd of a share ~0.007.
    np.testing.assert_allclose(counts / 4000, 0.25, atol=0.03)
    partly = np.array([1.0] * 6 + [0.0] * 10)
    for _ in range(50):
        visible = ~scores_to_mask(partly, 4, rng)
        assert visible.sum() == 4 and visible[:6].sum() == 4  # ties only among the top scores


@pytest.mark.parametrize("action", ACTIONS)
def test_rewards_have_the_named_direction(action):
    draws = {}
    for reward in REWARDS:
        env = make_env(action=action, reward=reward)
        env.reset(seed=1)
        env.action_space.seed(1)
        _, value, _, _, info = env.step(env.action_space.sample())
        draws[reward] = (value, info)
    error = draws["hide_hard"][1]["token_reward"].sum() / 58
    assert draws["hide_hard"][0] == pytest.approx(error, rel=1e-5)
    assert draws["show_hard"][0] == pytest.approx(-error, rel=1e-5)
    for direction, sign in (("hide_hard", 1), ("show_hard", -1)):
        value, info = draws[f"{direction}_relative"]
        e_random = info["random_error"]
        assert e_random > 0
        assert value == pytest.approx(sign * (error - e_random) / e_random, rel=1e-4, abs=1e-6)


def test_relative_reward_is_zero_on_average_for_random_masks():
    env = make_env(action="scores", reward="show_hard_relative")
    env.action_space.seed(0)
    values = []
    for seed in range(40):
        env.reset(seed=seed)
        values.append(env.step(env.action_space.sample())[1])
    values = np.array(values)
    assert abs(values.mean()) < 3 * values.std() / np.sqrt(len(values)) + 1e-3


def test_step_rejects_bad_actions(gym_env):
    gym_env.reset(seed=0)
    with pytest.raises(ValueError, match=r"shape \(64,\), got \(63,\)"):
        gym_env.step(np.zeros(63, dtype=np.int8))
    with pytest.raises(ValueError, match="only 0 and 1"):
        gym_env.step(np.full(64, 2, dtype=np.int8))
    bad = np.ones(64, dtype=np.int8)
    with pytest.raises(ValueError, match=r"action masks 64 tokens; this environment masks exactly 58 .*action='scores'"):
        gym_env.step(bad)
    bad = np.zeros(64, dtype=np.int8)
    bad[: gym_env.num_masked - 1] = 1  # one short of the action space's count
    with pytest.raises(ValueError, match=f"action masks {gym_env.num_masked - 1} tokens"):
        gym_env.step(bad)


def test_step_rejects_bad_scores():
    env = make_env(action="scores")
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"scores action must have shape \(64,\), got \(8, 8\)"):
        env.step(np.zeros((8, 8), dtype=np.float32))
    scores = np.zeros(64, dtype=np.float32)
    scores[[3, 10]] = [np.nan, np.inf]
    with pytest.raises(ValueError, match=r"must be finite; got \[nan, inf\] at tokens \[3, 10\]"):
        env.step(scores)
    with pytest.raises(ValueError, match="must be real numbers, got dtype <U1"):
        env.step(np.array(["a"] * 64))


def test_step_before_reset_is_an_error(gym_env):
    with pytest.raises(RuntimeError, match=r"call reset\(\) before step\(\)"):
        gym_env.step(np.zeros(64, dtype=np.int8))


@pytest.mark.parametrize(
    "option, value, expected",
    [
        ("action", "bits", "unknown action option 'bits'; expected one of: mask, scores"),
        ("observation", "pixels", "unknown observation option 'pixels'; expected one of: patches, tokens, pooled"),
        ("reward", "error", "unknown reward option 'error'; expected one of: hide_hard, show_hard, hide_hard_relative, show_hard_relative"),
    ],
)
def test_unknown_options_are_rejected(option, value, expected):
    with pytest.raises(ValueError, match=f"^{expected}$"):
        make_env(**{option: value})


def test_bad_ratio_is_rejected():
    model = build_mae("tiny", img_size=32, num_frames=8)
    clips = SyntheticClips(num_clips=1, **GEOMETRY)
    with pytest.raises(ValueError, match=r"mask_ratio must be in \(0, 1\), got 1.2"):
        MaskedVideoGymEnv(model, clips, mask_ratio=1.2)


def test_env_survives_pickling():
    # AsyncVectorEnv under the "spawn" start method sends the environment factory by pickle.
    env = make_env(action="scores", observation="pooled")
    clone = pickle.loads(pickle.dumps(env))
    obs, _ = env.reset(seed=5)
    obs2, _ = clone.reset(seed=5)
    np.testing.assert_array_equal(obs, obs2)


def _tiny_env(seed: int) -> MaskedVideoGymEnv:
    # The same MAE in every copy (the embedding bounds, hence the spaces, follow its weights);
    # each copy draws its own clips.
    torch.manual_seed(0)
    model = build_mae("tiny", img_size=16, num_frames=4, depth=1, decoder_depth=1)
    clips = SyntheticClips(num_clips=4, num_frames=4, img_size=16, patch_size=8, tubelet_size=2, seed=seed)
    return MaskedVideoGymEnv(model, clips, mask_ratio=0.75, action="scores", observation="pooled", ground_truth=True)


@pytest.mark.parametrize("vector", ["sync", "async"])
def test_vector_envs_reset_and_step(vector):
    fns = [lambda i=i: _tiny_env(i) for i in range(2)]  # 2 x 2 x 2 = 8 tokens each
    if vector == "sync":
        envs = gym.vector.SyncVectorEnv(fns)
    else:
        # TorchRL makes "spawn" the default start method; fork skips re-importing torch per worker.
        envs = gym.vector.AsyncVectorEnv(fns, context="fork" if sys.platform.startswith("linux") else None)
    try:
        obs, info = envs.reset(seed=[0, 1])
        assert obs.shape == (2, 128) and info["fg_tokens"].shape == (2, 8)
        for _ in range(2):  # the second step starts new episodes (autoreset)
            actions = envs.action_space.sample()
            obs, reward, terminated, truncated, info = envs.step(actions)
        envs.action_space.seed(0)
        obs, reward, terminated, truncated, info = envs.step(envs.action_space.sample())
        assert obs.shape == (2, 128) and reward.shape == (2,) and terminated.all() and not truncated.any()
        token_reward, mask = info["token_reward"], info["mask"]
        assert token_reward.shape == (2, 8) and mask.shape == (2, 8) and mask.sum(1).tolist() == [6, 6]
        assert (token_reward[~mask] == 0).all() and (token_reward[mask] > 0).all()
        np.testing.assert_allclose(reward, token_reward.sum(1) / 6, rtol=1e-5)
    finally:
        envs.close()


def test_hostile_construction_and_actions_are_named() -> None:
    model = build_mae("tiny", img_size=32, num_frames=4)
    with pytest.raises(ValueError, match="the dataset holds no clips"):
        MaskedVideoGymEnv(model, [], 0.5)  # numpy's "high <= 0" before
    other = MaskedVideoGymEnv(model, SyntheticClips(num_clips=2, num_frames=8, img_size=32), 0.5)
    with pytest.raises(ValueError, match=r"clip \d has shape \(3, 8, 32, 32\); the MAE takes \(3, 4, 32, 32\)"):
        other.reset(seed=0)  # a broadcast error deep in the MAE before
    env = MaskedVideoGymEnv(model, SyntheticClips(num_clips=2, num_frames=4, img_size=32), 0.5)
    env.reset(seed=0)
    action = np.zeros(model.cfg.num_tokens)
    action[: env.num_masked] = 1
    with pytest.raises(ValueError, match="got dtype complex128"):
        env.step(action.astype(complex))  # silently cast (with a ComplexWarning) before
    assert env.step(action.astype(bool))[2]


def test_registered_id_and_same_step_autoreset():
    """gymnasium.make / make_vec by id; one-step episodes: every vector step returns a reward."""
    import adamae_rl  # noqa: F401  (registers the id)

    options = dict(model_options=dict(img_size=16, num_frames=4, depth=1, decoder_depth=1), action="scores", observation="pooled")
    env = gym.make("adamae_rl/MaskedVideo-v0", **options)
    obs, info = env.reset(seed=0)
    assert env.observation_space.contains(obs) and set(info) == {"index"}
    envs = gym.make_vec("adamae_rl/MaskedVideo-v0", num_envs=2, **options)
    try:
        assert envs.metadata["autoreset_mode"] == gym.vector.AutoresetMode.SAME_STEP
        envs.reset(seed=0)
        for _ in range(3):  # NEXT_STEP would answer every second step with a reset and reward 0
            _, reward, terminated, _, info = envs.step(envs.action_space.sample())
            assert terminated.all() and (reward != 0).all()
            assert "final_obs" in info
    finally:
        envs.close()
