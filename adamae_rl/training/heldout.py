"""Held-out evaluation during training: reconstruction loss and foreground enrichment."""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import nullcontext
from typing import TYPE_CHECKING, Any

import torch

from adamae_rl.metrics import foreground_enrichment
from adamae_rl.schema import TrainConfig, as_config
from adamae_rl.utils.distributed import all_reduce_mean

if TYPE_CHECKING:
    from adamae_rl.builders import RunParts

# Offset of the evaluation's own seed from the run's seed (mask draws on held-out clips).
EVAL_SEED_OFFSET = 7919
# Seed of the reference masks: a constant, so every run (any policy, any seed) scores the same set.
REFERENCE_MASK_SEED = 20231


def reference_masks(batch_index: int, batch_size: int, num_tokens: int, num_masked: int, device: torch.device) -> torch.Tensor:
    """The fixed random masks of held-out batch ``batch_index``: bool ``[B, N]``, True = masked,
    ``num_masked`` per row, the same in every run (own generator, constant seed)."""
    gen = torch.Generator().manual_seed(REFERENCE_MASK_SEED + batch_index)
    ranks = torch.rand(batch_size, num_tokens, generator=gen).argsort(-1).argsort(-1)
    return (ranks < num_masked).to(device)


@torch.no_grad()
def evaluate(parts: RunParts, cfg: TrainConfig | Mapping[str, Any], precision: torch.dtype | None) -> dict:
    """``eval/loss_recon`` (mean over ``trainer.eval_batches`` held-out batches, averaged over
    processes) and, where the data marks foreground tokens, ``eval/fg_enrichment``.

    ``eval/loss_recon`` scores the MAE on its own policy's masks, which differ between policies
    (an easy mask gives a low loss); ``eval/loss_recon_reference`` scores it on one fixed set of
    uniformly random masks (:func:`reference_masks`, the nominal count), identical for every
    run, so that column compares MAEs across policies.

    The same held-out clips and the same mask draws are used at every evaluation (own RNG), and
    the training RNG is left untouched, so evaluating never changes the training trajectory.
    """
    trainer = as_config(cfg).trainer
    device = parts.env.device
    parts.val_env.seek_clips({"epoch": 0, "start": 0})
    policy = parts.policy_module
    was_training = parts.model.training, policy.training
    parts.model.eval(), policy.eval()
    autocast = torch.autocast(device.type, dtype=precision) if precision else nullcontext()
    losses, reference, masks, fgs = [], [], [], []
    devices = [device.index or 0] if device.type == "cuda" else []
    env = parts.val_env
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(trainer.seed + EVAL_SEED_OFFSET)
        for index in range(trainer.eval_batches):
            with autocast:
                obs = env.reset()
                fixed = obs.clone(False)  # same tensors, own keys: the policy's writes stay out
                td = env.step(policy(obs))
                fixed.set("mask", reference_masks(index, env.batch_size[0], env.num_tokens, env.num_masked, device))
                fixed = env.step(fixed)
            losses.append(parts.recon_loss(td)["loss_recon"])
            reference.append(parts.recon_loss(fixed)["loss_recon"])
            if "fg_tokens" in td.keys():
                masks.append(td.get("mask"))
                fgs.append(td.get("fg_tokens"))
    parts.model.train(was_training[0]), policy.train(was_training[1])
    out = {
        "eval/loss_recon": float(all_reduce_mean(torch.stack(losses).mean())),
        "eval/loss_recon_reference": float(all_reduce_mean(torch.stack(reference).mean())),
    }
    if masks:
        out["eval/fg_enrichment"] = foreground_enrichment(torch.cat(masks), torch.cat(fgs))
    return out
