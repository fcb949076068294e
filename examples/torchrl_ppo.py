"""TorchRL's collector, ClipPPOLoss and a critic train the masking policy while the MAE trains.

    python examples/torchrl_ppo.py                                  # PPO with a critic, seed 0
    python examples/torchrl_ppo.py --compare --seeds 0 1 2          # docs/results/estimators.md

Every estimator here learns from what a TorchRL ``Collector`` gathers (no graph: the objectives
re-run the policy on the stored observation and score the stored action), and the MAE learns from
the same collected clips and masks (its reconstruction is re-run with gradient):

- ``adamae``: AdaMAE's per-token loss (the toolkit's objective);
- ``plackett_luce``: REINFORCE on the exact log-probability of the ordered visible draw, batch-mean
  baseline (the toolkit's objective);
- ``rloo``: the same with a leave-one-out baseline over K = 4 masks of each clip (the env's
  ``masks_per_clip``: 16 rows are 4 clips x 4 masks, so every estimator pays the same MAE compute);
- ``ppo``: TorchRL's ``ClipPPOLoss`` on the env's per-clip reward (``reward_reduce="mean"``, minus
  the mean masked error) with a critic over pooled tokens (``objectives.actor_critic``), 4 epochs per
  collected batch.

After the same number of env steps it reports held-out foreground enrichment (share of visible
tokens on a moving shape / share of all tokens on one; 1.0 = chance) and the gradient noise of each
estimator: the policy gradient on 16 fresh batches at the same parameters, ``E|g - mean g|^2 /
|mean g|^2`` (scale-free, so AdaMAE's 1e-4 coefficient does not matter), at the start and the end.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time

import torch
from torchrl.collectors import Collector
from torchrl.envs.utils import ExplorationType, set_exploration_type

from adamae_rl import foreground_enrichment, make_env, make_objective, make_policy
from adamae_rl.envs.masked_video import reconstruction_step
from adamae_rl.objectives.actor_critic import make_torchrl_loss
from adamae_rl.utils.optim import param_groups, warmup_cosine

ESTIMATORS = ("adamae", "plackett_luce", "rloo", "ppo")
# The training app's demo model (configs/model/tiny.yaml): the tiny preset on 64 px, 16 frames
# (8 x 8 x 8 = 512 tokens), raw-pixel targets, distance-biased attention (without which this small
# MAE learns only each clip's mean colour and its errors say nothing about the moving shapes).
MODEL = dict(img_size=64, num_frames=16, norm_target=False, attn_bias="distance")
MASK_RATIO = 0.9
ROWS = 16  # masks per env step (clips x masks per clip)
K = 4  # masks per clip for rloo
PPO_EPOCHS = 4
NOISE_BATCHES = 16
# The training app's optimizers (optim.* defaults): AdamW betas 0.9/0.95 at lr 1e-3 (blr 0.016 x 16 /
# 256), 40 warmup steps then cosine decay to 1e-5; weight decay 0.05 on the MAE's matrices; the
# sampler's AdamW with epsilon 1e-12 and no weight decay.
LR, MIN_LR, WARMUP, BETAS = 1e-3, 1e-5, 40, (0.9, 0.95)


def build(estimator: str, seed: int, model: dict, mask_ratio: float):
    """The env (and its MAE), held-out clips, the policy and the policy's loss for one run."""
    reduce = "mean" if estimator == "ppo" else "none"
    k = K if estimator == "rloo" else 1
    env = make_env("tiny", "synthetic", batch_size=ROWS, mask_ratio=mask_ratio, seed=seed,
                   reward_reduce=reduce, masks_per_clip=k, **model)
    val = make_env(env.model, "synthetic", batch_size=64, mask_ratio=mask_ratio, seed=seed, split="val")
    torch.manual_seed(seed + 1)
    policy = make_policy("adaptive", env=env)
    if estimator == "ppo":
        # No entropy bonus: TorchRL's default weight (0.01) against a per-clip reward of a few
        # hundredths holds the sampler near uniform.
        loss, collect = make_torchrl_loss("ppo", policy, entropy_coeff=0.0)
    elif estimator == "rloo":
        loss, collect = make_objective("plackett_luce", policy=policy, baseline="rloo", group_size=K), policy
    else:
        loss, collect = make_objective(estimator, policy=policy), policy
    return env, val, policy, loss, collect


def policy_loss(loss, data) -> torch.Tensor:
    out = loss(data)
    return sum(v for key, v in out.items() if key.startswith("loss_") and key != "loss_critic")


def total_loss(loss, data) -> torch.Tensor:
    out = loss(data)
    return sum(v for key, v in out.items() if key.startswith("loss_"))


def gradient_noise(env, policy, loss, collect, batches: int = NOISE_BATCHES) -> float:
    """``E|g - mean g|^2 / |mean g|^2`` over ``batches`` fresh batches at fixed parameters.

    The MAE does not change in between; the env's clip stream moves on (fresh clips per batch).
    """
    grads = []
    params = list(policy.parameters())
    for _ in range(batches):
        # Sampled masks, as the collector draws them (a TorchRL actor's default is its mode).
        with torch.no_grad(), set_exploration_type(ExplorationType.RANDOM):
            data = env.step(collect(env.reset()))
        g = torch.autograd.grad(policy_loss(loss, data), params, allow_unused=True)
        grads.append(torch.cat([(x if x is not None else torch.zeros_like(p)).flatten() for x, p in zip(g, params)]))
    stacked = torch.stack(grads)
    mean = stacked.mean(0)
    return float((stacked - mean).pow(2).sum(-1).mean() / mean.pow(2).sum().clamp(min=1e-30))


def enrichment(policy, held_out) -> float:
    """Pooled over 4 mask draws on each held-out clip (own seed: the training RNG is saved and restored)."""
    state = torch.get_rng_state()
    torch.manual_seed(12345)
    with torch.no_grad():
        masks = torch.cat([policy(held_out.clone()).get("mask") for _ in range(4)])
    torch.set_rng_state(state)
    return foreground_enrichment(masks, held_out.get("fg_tokens").repeat(4, 1))


def run(estimator: str, seed: int, steps: int, model: dict | None = None, mask_ratio: float = MASK_RATIO,
        noise_batches: int = NOISE_BATCHES, verbose: bool = True) -> dict:
    """Train MAE and policy together for ``steps`` collected batches; return the figures."""
    torch.manual_seed(seed)
    start = time.perf_counter()
    env, val, policy, loss, collect = build(estimator, seed, model or MODEL, mask_ratio)
    held_out = val.reset()
    mae_opt = torch.optim.AdamW(param_groups(env.model, 0.05), lr=LR, betas=BETAS)
    # A tiny epsilon makes the sampler's step scale-free (AdaMAE's loss is 1e-4 x errors of 1e-2).
    trained = loss if estimator == "ppo" else policy  # PPO's loss module also holds the critic
    pol_opt = torch.optim.AdamW(param_groups(trained, 0.0), lr=LR, betas=BETAS, eps=1e-12)
    schedules = [warmup_cosine(opt, WARMUP, steps, MIN_LR) for opt in (mae_opt, pol_opt)]
    noise_start = gradient_noise(env, policy, loss, collect, noise_batches)
    before = enrichment(policy, held_out)
    collector = Collector(env, collect, frames_per_batch=ROWS, total_frames=ROWS * steps, auto_register_policy_transforms=False)
    for data in collector:
        data = data.reshape(-1)
        # The MAE learns from the collected clips and masks: re-run its reconstruction with gradient.
        _, loss_recon = reconstruction_step(env.model, data["video"], data["mask"])
        mae_opt.zero_grad()
        loss_recon.mean().backward()
        mae_opt.step()
        for _ in range(PPO_EPOCHS if estimator == "ppo" else 1):
            pol_opt.zero_grad()
            total_loss(loss, data).backward()
            pol_opt.step()
        for schedule in schedules:
            schedule.step()
    collector.shutdown()
    result = {
        "estimator": estimator, "seed": seed, "steps": steps,
        "enrichment_before": before, "enrichment": enrichment(policy, held_out),
        "grad_noise_start": noise_start, "grad_noise_end": gradient_noise(env, policy, loss, collect, noise_batches),
        "wall_s": time.perf_counter() - start,
    }
    if verbose:
        print(json.dumps(result), flush=True)
    return result


def summarize(results: list[dict]) -> str:
    """A markdown table: mean ± standard error over seeds per estimator."""

    def cell(values: list[float], fmt: str) -> str:
        mean = statistics.fmean(values)
        if len(values) < 2:
            return format(mean, fmt)
        return f"{format(mean, fmt)} ± {format(statistics.stdev(values) / math.sqrt(len(values)), fmt)}"

    lines = ["| estimator | enrichment | gradient noise (start) | gradient noise (end) | per seed |", "|---|---|---|---|---|"]
    for name in ESTIMATORS:
        rows = [r for r in results if r["estimator"] == name]
        if not rows:
            continue
        seeds = ", ".join(f"{r['enrichment']:.2f}" for r in rows)
        lines.append(
            f"| {name} | {cell([r['enrichment'] for r in rows], '.2f')} | {cell([r['grad_noise_start'] for r in rows], '.2g')} "
            f"| {cell([r['grad_noise_end'] for r in rows], '.2g')} | {seeds} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--estimator", choices=ESTIMATORS, default="ppo")
    parser.add_argument("--compare", action="store_true", help="run every estimator")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--steps", type=int, default=150, help=f"collected batches of {ROWS} masks")
    parser.add_argument("--img-size", type=int, default=MODEL["img_size"])
    parser.add_argument("--num-frames", type=int, default=MODEL["num_frames"])
    parser.add_argument("--mask-ratio", type=float, default=MASK_RATIO)
    parser.add_argument("--noise-batches", type=int, default=NOISE_BATCHES, help="batches per gradient-noise estimate")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    names = ESTIMATORS if args.compare else (args.estimator,)
    model = {**MODEL, "img_size": args.img_size, "num_frames": args.num_frames}
    results = [run(name, seed, args.steps, model, args.mask_ratio, args.noise_batches) for seed in args.seeds for name in names]
    print(summarize(results))
    return results


if __name__ == "__main__":
    main()
