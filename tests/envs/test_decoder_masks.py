"""Decoder masking (VideoMAE V2's dual masking): the running cell, exact counts, rewards, training."""

from __future__ import annotations

import pytest
import torch
from helpers_cli import smoke_config

import adamae_rl
from adamae_rl.builders import build_run
from adamae_rl.envs.decoder_masks import RunningCellDecoderMask, make_decoder_mask
from adamae_rl.objectives import AdaMAELoss, PlackettLuceLoss
from adamae_rl.schema import ConfigError, validate_config
from adamae_rl.train import train_step
from adamae_rl.utils.distributed import Process

GRID = (4, 4, 4)


@pytest.mark.parametrize("ratio, dropped", [(0.25, 1), (0.5, 2), (0.75, 3)])
def test_running_cell_drops_quarters_and_runs_one_position_per_slice(ratio, dropped):
    keep = RunningCellDecoderMask(GRID, ratio, 58).keep.reshape(4, 4, 4)  # [T', H', W']
    cells = keep.reshape(4, 2, 2, 2, 2).permute(0, 1, 3, 2, 4).reshape(4, 4, 4)  # [T', cell, position in cell]
    assert ((~cells).sum(-1) == dropped).all(), "every 2x2 cell drops the same share in every slice"
    assert not torch.equal(keep[0], keep[1]), "the pattern moves between slices"
    assert (keep.sum(0) == 4 - dropped).all(), "over four slices every position is reconstructed equally often"


def test_select_is_a_subset_with_exact_counts_preferring_the_running_cell():
    torch.manual_seed(0)
    decoder = make_decoder_mask({"name": "running_cell", "ratio": 0.5}, GRID, 48)
    tube = adamae_rl.make_policy("tube", geometry={"grid": GRID, "mask_ratio": 0.75})
    mask = tube(_obs(8)).get("mask")
    decode = decoder.select(mask)
    assert (decode & ~mask).sum() == 0
    assert (decode.sum(-1) == 24).all()
    kept = decoder.keep.expand_as(mask)
    # Rows reconstruct the running cell's positions first: where a row has at least N_d masked
    # tokens on kept positions, every reconstructed token is on one.
    enough = (mask & kept).sum(-1) >= 24
    assert enough.any()
    assert ((decode & ~kept).sum(-1)[enough] == 0).all()


def _obs(batch):
    from tensordict import TensorDict

    return TensorDict({"tokens": torch.zeros(batch, 64, 8), "patches": torch.zeros(batch, 64, 8)}, [batch])


@pytest.mark.parametrize(
    "spec, grid, message",
    [
        ({"name": "running_cell", "ratio": 0.3}, GRID, "ratio must be 0.25, 0.5 or 0.75, got 0.3"),
        ({"name": "running_cell", "ratio": 0.5}, (4, 3, 4), "needs an even spatial grid for 2x2 cells, got 3x4"),
        ({"name": "random", "ratio": 0.995}, GRID, "leaving none to reconstruct"),
        ({"name": "random", "ratio": 1.0}, GRID, r"decoder_mask.ratio must be in \(0, 1\), got 1.0"),
        ({"name": "bogus"}, GRID, "unknown decoder_mask 'bogus'; known: none, running_cell, random"),
    ],
)
def test_bad_decoder_masks_fail_with_one_line(spec, grid, message):
    with pytest.raises(ValueError, match=message):
        make_decoder_mask(spec, grid, 58)


def test_env_rewards_only_reconstructed_tokens_and_decoder_sees_fewer_tokens():
    torch.manual_seed(0)
    env = adamae_rl.make_env(model="tiny", batch_size=3, mask_ratio=0.75, img_size=32, num_frames=8,
                             decoder_mask={"name": "running_cell", "ratio": 0.5})
    lengths = []
    env.model.decoder_blocks[0].register_forward_hook(lambda m, i, o: lengths.append(i[0].shape[1]))
    td = env.step(adamae_rl.make_policy("random", env=env)(env.reset()))
    mask, rewarded = td.get("mask"), td.get(("next", "reward_mask"))
    reward = td.get(("next", "reward")).squeeze(-1)
    assert (rewarded & ~mask).sum() == 0 and (rewarded.sum(-1) == 24).all()
    assert (reward[~rewarded] == 0).all() and (reward[rewarded] > 0).all()
    torch.testing.assert_close(td.get(("next", "loss_recon")), reward.sum(-1) / 24)
    assert lengths == [16 + 24], "the decoder runs on the visible tokens plus the reconstructed ones"


def test_without_decoder_mask_reward_mask_is_the_mask():
    env = adamae_rl.make_env(model="tiny", batch_size=2, mask_ratio=0.75, img_size=32, num_frames=8)
    td = env.step(adamae_rl.make_policy("random", env=env)(env.reset()))
    assert torch.equal(td.get(("next", "reward_mask")), td.get("mask"))


@pytest.mark.parametrize("objective", [AdaMAELoss, PlackettLuceLoss])
def test_policy_objectives_read_only_reconstructed_tokens(objective):
    """Rewards of masked tokens the decoder left out are unknown: changing them changes nothing."""
    torch.manual_seed(0)
    env = adamae_rl.make_env(model="tiny", batch_size=3, mask_ratio=0.75, img_size=32, num_frames=8, decoder_mask="random")
    policy = adamae_rl.make_policy("adaptive", env=env)
    td = env.step(policy(env.reset()))
    loss = objective(policy)
    base = loss(td)["loss_policy"]
    left_out = td.get("mask") & ~td.get(("next", "reward_mask"))
    poisoned = td.clone()
    poisoned.get(("next", "reward"))[left_out] = 1e6
    torch.testing.assert_close(loss(poisoned)["loss_policy"], base)
    changed = td.clone()
    changed.get(("next", "reward"))[td.get(("next", "reward_mask"))] *= 3.0
    assert not torch.allclose(loss(changed)["loss_policy"], base)


def test_adaptive_with_running_cell_trains_and_its_loss_sees_only_reconstructed_tokens():
    cfg = smoke_config("policy=adaptive", "decoder_mask=running_cell", "mask_ratio=0.75")
    validate_config(cfg)
    torch.manual_seed(0)
    parts = build_run(cfg, torch.device("cpu"), Process())
    seen = []
    original = parts.policy_loss.forward

    def spy(td):
        seen.append((td.get("mask").clone(), td.get(("next", "reward_mask")).clone()))
        return original(td)

    parts.policy_loss.forward = spy
    before = [p.detach().clone() for p in parts.policy_module.parameters()]
    for _ in range(3):
        metrics, td, finite = train_step(parts, cfg, None)
        assert finite
    assert any(not torch.equal(a, b) for a, b in zip(before, parts.policy_module.parameters()))
    for mask, rewarded in seen:
        assert (rewarded & ~mask).sum() == 0 and (rewarded.sum(-1) == mask.sum(-1) // 2).all()
    # The loss equals AdaMAE's formula over the reconstructed tokens only.
    mask, rewarded = seen[-1]
    reward = td.get(("next", "reward")).squeeze(-1)
    log_p = torch.log_softmax(td.get("logits").float(), -1)
    expected = 1e-4 * (-(log_p * reward).masked_fill(~rewarded, 0).sum(-1) / rewarded[0].sum()).mean()
    torch.testing.assert_close(metrics["train/loss_policy"], expected.detach())


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["decoder_mask=running_cell", "decoder_mask.ratio=0.6"], "ratio must be 0.25, 0.5 or 0.75, got 0.6"),
        (["decoder_mask=random", "decoder_mask.ratio=1.5"], "decoder_mask.ratio: input should be less than 1 (got 1.5)"),
        (["decoder_mask=running_cell", "+decoder_mask.bogus=1"], "decoder_mask.bogus: unknown setting"),
        (["decoder_mask=running_cell", "model.img_size=48", "model.patch_size=16"], "even spatial grid for 2x2 cells, got 3x3"),
        (["decoder_mask=running_cell", "decoder_mask.name=fancy"], "decoder_mask.name: input should be 'none', 'running_cell' or 'random'"),
    ],
)
def test_config_rejects_bad_decoder_masks(overrides, message):
    with pytest.raises(ConfigError) as info:
        validate_config(smoke_config(*overrides))
    assert message in str(info.value) and "\n" not in str(info.value)


def test_config_accepts_every_decoder_mask():
    for choice in ("none", "running_cell", "random"):
        validate_config(smoke_config(f"decoder_mask={choice}"))
    assert "decoder_mask" not in smoke_config()
