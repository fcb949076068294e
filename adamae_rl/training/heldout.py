"""Held-out evaluation during training: reconstruction loss and foreground enrichment."""

from __future__ import annotations

from contextlib import nullcontext
from typing import TYPE_CHECKING

import torch

from adamae_rl.metrics import foreground_enrichment
from adamae_rl.utils.distributed import all_reduce_mean

if TYPE_CHECKING:
    from adamae_rl.builders import RunParts

# Offset of the evaluation's own seed from the run's seed (mask draws on held-out clips).
EVAL_SEED_OFFSET = 7919


@torch.no_grad()
def evaluate(parts: RunParts, cfg: dict, precision: torch.dtype | None) -> dict:
    """``eval/loss_recon`` (mean over ``trainer.eval_batches`` held-out batches, averaged over
    processes) and, where the data marks foreground tokens, ``eval/fg_enrichment``.

    The same held-out clips and the same mask draws are used at every evaluation (own RNG), and
    the training RNG is left untouched, so evaluating never changes the training trajectory.
    """
    device = parts.env.device
    parts.val_env.seek_clips({"epoch": 0, "start": 0})
    policy = parts.policy_module
    was_training = parts.model.training, policy.training
    parts.model.eval(), policy.eval()
    autocast = torch.autocast(device.type, dtype=precision) if precision else nullcontext()
    losses, masks, fgs = [], [], []
    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(cfg["trainer"]["seed"] + EVAL_SEED_OFFSET)
        for _ in range(int(cfg["trainer"]["eval_batches"])):
            with autocast:
                td = parts.val_env.step(policy(parts.val_env.reset()))
            losses.append(parts.recon_loss(td)["loss_recon"])
            if "fg_tokens" in td.keys():
                masks.append(td.get("mask"))
                fgs.append(td.get("fg_tokens"))
    parts.model.train(was_training[0]), policy.train(was_training[1])
    out = {"eval/loss_recon": float(all_reduce_mean(torch.stack(losses).mean()))}
    if masks:
        out["eval/fg_enrichment"] = foreground_enrichment(torch.cat(masks), torch.cat(fgs))
    return out
