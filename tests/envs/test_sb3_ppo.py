"""Stable-Baselines3 PPO acts in and learns from the gymnasium adapter (the ``sb3`` extra)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

from adamae_rl.data import SyntheticClips
from adamae_rl.envs import MaskedVideoGymEnv
from adamae_rl.models import build_mae

sb3 = pytest.importorskip("stable_baselines3")
from stable_baselines3.common.env_util import make_vec_env  # noqa: E402

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "sb3_ppo.py"


def load_example():
    spec = importlib.util.spec_from_file_location("sb3_ppo_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def small_env(**options) -> MaskedVideoGymEnv:
    torch.manual_seed(0)
    model = build_mae("tiny", img_size=32, num_frames=4, depth=1, decoder_depth=1)
    clips = SyntheticClips(num_clips=16, num_frames=4, img_size=32, patch_size=8, tubelet_size=2)
    return MaskedVideoGymEnv(model, clips, mask_ratio=0.75, **options)


@pytest.mark.parametrize("observation", ["tokens", "pooled"])
def test_ppo_trains_a_few_hundred_steps(observation):
    envs = make_vec_env(lambda: small_env(action="scores", observation=observation, reward="show_hard_relative"), n_envs=2, seed=0)
    agent = sb3.PPO("MlpPolicy", envs, n_steps=64, batch_size=64, n_epochs=2, seed=0, device="cpu")
    before = [p.detach().clone() for p in agent.policy.parameters()]
    agent.learn(total_timesteps=256)
    assert agent.num_timesteps == 256
    assert any(not torch.equal(a, b) for a, b in zip(before, agent.policy.parameters()))
    env = small_env(action="scores", observation=observation)
    obs, _ = env.reset(seed=0)
    action, _ = agent.predict(obs, deterministic=True)
    assert env.step(action)[4]["mask"].sum() == 24  # 32 tokens, 75% masked


def test_ppo_on_the_strict_mask_action_gets_a_pointer_to_scores():
    # A MultiBinary policy samples bits independently: the strict action says what to use instead.
    envs = make_vec_env(lambda: small_env(action="mask", observation="pooled"), n_envs=1, seed=0)
    agent = sb3.PPO("MlpPolicy", envs, n_steps=16, batch_size=16, seed=0, device="cpu")
    with pytest.raises(ValueError, match=r"masks exactly 24 .*action='scores'"):
        agent.learn(total_timesteps=16)


def test_example_runs_and_reports_enrichment(capsys):
    result = load_example().run(ppo_steps=128, mae_steps=2, eval_clips=4, n_envs=2)
    assert result["ppo_steps"] == 128
    assert np.isfinite(result["enrichment_before"]) and np.isfinite(result["enrichment_after"])
    assert "foreground enrichment on 4 held-out clips" in capsys.readouterr().out


@pytest.mark.slow
def test_ppo_raises_foreground_enrichment_on_held_out_clips():
    result = load_example().run(ppo_steps=16384, seed=0)
    assert result["enrichment_before"] < 1.1
    assert result["enrichment_after"] > 1.2, result
