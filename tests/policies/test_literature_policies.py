"""Defining properties of motion, embedding_change and loss_predictor, and the loss_prediction objective."""

from __future__ import annotations

import math

import pytest
import torch
from tensordict import TensorDict

import adamae_rl
from adamae_rl import make_policy
from adamae_rl.objectives import LossPredictionLoss
from adamae_rl.policies import SlicedPlackettLuceMask

GRID = (4, 4, 4)
GEOMETRY = {"grid": GRID, "mask_ratio": 0.75, "embed_dim": 16, "patch_dim": 12}


def moving_square_obs(batch: int = 6) -> TensorDict:
    """Static random background patches; spatial position 5 changes at every slice (the mover)."""
    gen = torch.Generator().manual_seed(0)
    background = torch.randn(batch, 1, 16, 12, generator=gen).expand(batch, 4, 16, 12).clone()
    background[:, :, 5] = torch.randn(batch, 4, 12, generator=gen) * 3
    patches = background.reshape(batch, 64, 12)
    tokens = patches @ torch.randn(12, 16, generator=gen)  # a linear embedding, like the MAE's
    return TensorDict({"patches": patches, "tokens": tokens}, [batch])


@pytest.mark.parametrize("name", ["motion", "embedding_change"])
def test_scored_policies_show_the_changing_position_in_every_slice(name):
    torch.manual_seed(0)
    policy = make_policy(name, geometry=GEOMETRY, temperature=0.1)
    td = policy(moving_square_obs())
    visible = ~td.get("mask").reshape(6, 4, 16)
    assert visible[:, :, 5].all(), "the moving position is visible in every slice"
    assert (visible.sum(-1) == 4).all(), "every slice keeps its share: 16 visible / 4 slices"
    scores = td.get("scores").reshape(6, 4, 16)
    assert (scores.argmax(-1) == 5).all()


@pytest.mark.parametrize("name", ["motion", "embedding_change"])
def test_temperature_goes_from_greedy_to_uniform(name):
    obs = moving_square_obs(200)
    shares = {}
    for temperature in (0.05, 1000.0):
        torch.manual_seed(0)
        visible = ~make_policy(name, geometry=GEOMETRY, temperature=temperature)(obs.clone()).get("mask")
        shares[temperature] = visible.reshape(200, 4, 16)[:, :, 5].float().mean().item()
    assert shares[0.05] == 1.0
    assert shares[1000.0] == pytest.approx(4 / 16, abs=0.06), "at a high temperature every position is equally likely"


def test_global_drawing_lets_slices_differ():
    obs = moving_square_obs()
    obs.get("patches")[:, 48:] *= 0  # the last slice is all alike: no motion there... except the mover
    policy = make_policy("motion", geometry=GEOMETRY, temperature=0.05, per_slice=False)
    counts = (~policy(obs).get("mask")).reshape(6, 4, 16).sum(-1)
    assert (counts.sum(-1) == 16).all() and not (counts == 4).all()


@pytest.mark.parametrize("name", ["motion", "embedding_change"])
@pytest.mark.parametrize("temperature", [0.0, -1.0])
def test_temperature_must_be_positive(name, temperature):
    with pytest.raises(ValueError, match=rf"{name}: temperature must be > 0 .*got {temperature}"):
        make_policy(name, geometry=GEOMETRY, temperature=temperature)


def test_sliced_plackett_luce_law_sums_to_one():
    """All ordered per-slice draws of a small grid: probabilities sum to 1, and wrong quotas score -inf."""
    import itertools

    grid = (2, 1, 3)  # 2 slices of 3 positions
    logits = torch.tensor([0.3, -1.0, 1.2, 0.0, 0.5, -0.4])
    quota = torch.tensor([2, 1])
    dist = SlicedPlackettLuceMask(logits, grid, quota)
    orders = [list(a) + [3 + b] for a in itertools.permutations(range(3), 2) for b in range(3)]
    total = sum(dist.log_prob(torch.tensor(o)).exp().item() for o in orders)
    assert total == pytest.approx(1.0, abs=1e-5)
    assert dist.log_prob(torch.tensor([0, 3, 4])).item() == -math.inf
    torch.manual_seed(0)
    mask, order = dist.sample_ordered(torch.Size([500]))
    assert ((~mask).reshape(500, 2, 3).sum(-1) == quota).all()
    assert torch.isfinite(dist.log_prob(order)).all()


def test_loss_predictor_easy_to_hard_schedule():
    torch.manual_seed(0)
    policy = make_policy("loss_predictor", geometry=GEOMETRY)
    obs = TensorDict({"tokens": torch.randn(5, 64, 16)}, [5])
    assert policy.num_hard == 0
    policy.set_progress(0.5)
    assert policy.hard_share == pytest.approx(0.25) and policy.num_hard == 12  # 0.25 of 48 masked
    policy.set_progress(1.0)
    assert policy.num_hard == 24
    td = policy(obs)
    mask, predicted = td.get("mask"), td.get("predicted_error")
    assert predicted.requires_grad and (mask.sum(-1) == 48).all()
    hardest = predicted.topk(24, dim=-1).indices
    assert mask.gather(-1, hardest).all(), "the predicted-hardest tokens are masked"
    policy.set_progress(7.0)
    assert policy.progress == 1.0


def test_loss_predictor_show_hard_keeps_the_hardest_visible():
    torch.manual_seed(0)
    policy = make_policy("loss_predictor", geometry=GEOMETRY, direction="show_hard")
    policy.set_progress(1.0)
    td = policy(TensorDict({"tokens": torch.randn(5, 64, 16)}, [5]))
    hardest = td.get("predicted_error").topk(policy.num_hard, dim=-1).indices
    assert policy.num_hard == 8 and (~td.get("mask")).gather(-1, hardest).all()


@pytest.mark.parametrize(
    "options, message",
    [
        ({"end_share": 1.5}, r"end_share must be in \[0, 1\], got 1.5"),
        ({"direction": "sideways"}, "direction must be one of hide_hard, show_hard, got 'sideways'"),
    ],
)
def test_loss_predictor_rejects_bad_options(options, message):
    with pytest.raises(ValueError, match=message):
        make_policy("loss_predictor", geometry=GEOMETRY, **options)


@pytest.mark.parametrize("loss", ["ranking", "regression"])
def test_loss_prediction_learns_to_rank_rewards(loss):
    """The head learns which tokens the env finds hard, from rewards on reconstructed tokens only."""
    torch.manual_seed(0)
    policy = make_policy("loss_predictor", geometry=GEOMETRY)
    objective = LossPredictionLoss(policy, loss=loss)
    opt = torch.optim.Adam(policy.parameters(), lr=1e-2)
    tokens = torch.randn(8, 64, 16)
    hard = tokens[..., 0].exp()  # the error grows with the first embedding feature
    for _ in range(60):
        td = policy(TensorDict({"tokens": tokens}, [8]))
        rewarded = td.get("mask").clone()  # every masked token reconstructed
        td.set(("next", "reward"), (hard * rewarded).unsqueeze(-1))
        td.set(("next", "reward_mask"), rewarded)
        out = objective(td)
        opt.zero_grad()
        out["loss_prediction"].backward()
        opt.step()
    assert out["rank_accuracy"] > 0.8  # chance is 0.5


def test_loss_prediction_ignores_tokens_without_reward():
    torch.manual_seed(0)
    policy = make_policy("loss_predictor", geometry=GEOMETRY)
    td = policy(TensorDict({"tokens": torch.randn(3, 64, 16)}, [3]))
    mask = td.get("mask")
    rewarded = torch.zeros_like(mask).masked_scatter(mask, torch.arange(48).expand(3, 48) < 24)
    td.set(("next", "reward"), torch.rand(3, 64, 1) * rewarded.unsqueeze(-1))
    td.set(("next", "reward_mask"), rewarded)
    objective = LossPredictionLoss(policy)
    base = objective(td)["loss_prediction"]
    td.get(("next", "reward"))[mask & ~rewarded] = 99.0
    torch.testing.assert_close(objective(td)["loss_prediction"], base)


def test_loss_predictor_needs_its_objective():
    env = adamae_rl.make_env(model="tiny", batch_size=2, mask_ratio=0.75, img_size=32, num_frames=8)
    policy = make_policy("loss_predictor", env=env)
    with pytest.raises(ValueError, match="policy loss_predictor is trained by objective=loss_prediction, got objective=adamae"):
        adamae_rl.make_objective("adamae", policy)
    with pytest.raises(KeyError, match="loss_prediction needs 'predicted_error'"):
        LossPredictionLoss()(make_policy("adaptive", env=env)(env.reset()))


@pytest.mark.slow
def test_trainer_passes_progress_to_the_loss_predictor(tmp_path, monkeypatch):
    """The training loop calls set_progress(step / max_steps) before every step."""
    from helpers_cli import smoke_config

    from adamae_rl import train
    from adamae_rl.policies import LossPredictorMasking

    seen = []
    original = LossPredictorMasking.set_progress
    monkeypatch.setattr(LossPredictorMasking, "set_progress", lambda self, f: (seen.append(f), original(self, f)))
    cfg = smoke_config("policy=registered", "policy.name=loss_predictor", "objective=registered", "objective.name=loss_prediction")
    summary = train.run(cfg, tmp_path)
    assert summary["steps"] == 12
    assert seen == [step / 12 for step in range(12)]
