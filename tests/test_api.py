"""The public make_* API: the documented quick start, and bad input at construction time."""

from __future__ import annotations

import pytest
import torch

import adamae_rl
from adamae_rl import make_env, make_objective, make_policy
from adamae_rl.objectives import AdaMAELoss, PlackettLuceLoss

SMALL = dict(img_size=32, num_frames=8)


def test_quick_start_loop():
    """The loop of the package docstring, one training step of MAE and sampler."""
    env = make_env(model="tiny", data="synthetic", batch_size=2, mask_ratio=0.9, seed=0, **SMALL)
    torch.manual_seed(0)
    policy = make_policy("adaptive", env=env)
    objective = make_objective("adamae", policy=policy)
    assert isinstance(objective, AdaMAELoss)
    opt = torch.optim.AdamW([*env.model.parameters(), *policy.parameters()], lr=1e-3)
    before = [p.detach().clone() for p in (env.model.head.weight, policy.head.weight)]
    td = env.reset()
    td = policy(td)
    td = env.step(td)
    losses = objective(td)
    total = td.get(("next", "loss_recon")).mean() + sum(v for k, v in losses.items() if k.startswith("loss_"))
    opt.zero_grad()
    total.backward()
    opt.step()
    assert torch.isfinite(total)
    assert not torch.equal(before[0], env.model.head.weight) and not torch.equal(before[1], policy.head.weight)


def test_make_env_is_seeded():
    a = make_env(model="tiny", batch_size=2, seed=3, **SMALL)
    b = make_env(model="tiny", batch_size=2, seed=3, **SMALL)
    c = make_env(model="tiny", batch_size=2, seed=4, **SMALL)
    torch.testing.assert_close(a.model.head.weight, b.model.head.weight)
    assert torch.equal(a.reset().get("video"), b.reset().get("video"))
    assert not torch.equal(a.model.head.weight, c.model.head.weight)


def test_make_env_accepts_a_built_model_and_an_iterator():
    model = adamae_rl.models.build_mae("tiny", **SMALL)

    def clips():
        gen = torch.Generator().manual_seed(0)
        while True:
            yield {"video": torch.randn(3, 3, 8, 32, 32, generator=gen), "score": torch.rand(3, generator=gen)}

    env = make_env(model=model, data=clips(), batch_size=3, mask_ratio=0.5)
    assert env.model is model and env.num_masked == 32
    td = env.reset()
    assert td.get("score").shape == (3,)  # extra keys from any source ride along
    with pytest.raises(ValueError, match=r"model overrides \['img_size'\] only apply to preset names"):
        make_env(model=model, img_size=32)


def test_make_objective_plackett_luce_options():
    torch.manual_seed(0)
    policy = make_policy("adaptive", geometry={"grid": (2, 2, 2), "mask_ratio": 0.5, "embed_dim": 16}, num_heads=2)
    objective = make_objective("plackett_luce", policy=policy, baseline="ema", entropy_coef=0.01)
    assert isinstance(objective, PlackettLuceLoss) and objective.baseline == "ema"


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(num_frames=7), r"num_frames=7 is not divisible by tubelet_size=2"),
        (dict(img_size=36), r"img_size=36 is not divisible by patch_size=8"),
        (dict(mask_ratio=0.0), r"mask_ratio must be in \(0, 1\), got 0.0"),
        (dict(mask_ratio=1.0), r"mask_ratio must be in \(0, 1\), got 1.0"),
        (dict(mask_ratio=1.7), r"mask_ratio must be in \(0, 1\), got 1.7"),
        (dict(mask_ratio=0.995), r"mask_ratio=0.995 masks 64 of 64 tokens, leaving none visible"),
        (dict(batch_size=2, data={"name": "nope"}), r"unknown data source 'nope'; known data sources: synthetic, video"),
    ],
)
def test_make_env_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_env(**{"model": "tiny", "batch_size": 2, **SMALL, **kwargs})


def test_make_env_unknown_model():
    with pytest.raises(ValueError, match=r"unknown model preset 'vit_xl'; known model presets: tiny, vit_b, vit_l, vit_s"):
        make_env(model="vit_xl")


def test_make_policy_needs_geometry():
    with pytest.raises(ValueError, match="needs env=... or geometry="):
        make_policy("random")


def test_public_names():
    assert set(adamae_rl.__all__) >= {"make_env", "make_policy", "make_objective", "list_policies",
                                      "register_policy", "foreground_enrichment"}
    assert "adaptive" in adamae_rl.list_policies()
