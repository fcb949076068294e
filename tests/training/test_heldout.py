"""Held-out evaluation: a reference loss on one fixed mask set, the same for every run."""

from __future__ import annotations


import torch

from helpers_cli import smoke_config

from adamae_rl.builders import build_run
from adamae_rl.training.heldout import evaluate, reference_masks
from adamae_rl.utils.distributed import Process


def test_reference_masks_are_fixed_and_valid():
    first = reference_masks(0, 4, 64, 48, torch.device("cpu"))
    torch.manual_seed(123)  # the global RNG plays no part
    assert torch.equal(first, reference_masks(0, 4, 64, 48, torch.device("cpu")))
    assert (first.sum(-1) == 48).all()
    assert not torch.equal(first, reference_masks(1, 4, 64, 48, torch.device("cpu")))


def test_reference_loss_is_policy_independent_own_mask_loss_is_not():
    """Same MAE and clips, different policies: the own-mask losses differ, the reference ones agree."""
    results = {}
    for policy in ("random", "frame", "adaptive"):
        cfg = smoke_config(f"policy={policy}")
        parts = build_run(cfg, torch.device("cpu"), Process())
        results[policy] = evaluate(parts, cfg, None)
    ref = results["random"]["eval/loss_recon_reference"]
    for policy, out in results.items():
        assert out["eval/loss_recon_reference"] == ref, policy
    assert results["frame"]["eval/loss_recon"] != results["random"]["eval/loss_recon"]
