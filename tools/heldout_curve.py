"""Held-out reconstruction curve of a short MAE run on synthetic clips, next to its reference levels.

    python -m tools.heldout_curve --attn-bias distance --lr 3e-3 --steps 600

Trains the ``tiny`` MAE with random masking and raw-pixel targets (AdamW betas 0.9/0.95, weight
decay 0.05, linear warm-up then cosine decay), and scores it every ``--eval-every`` steps on the
same held-out clips with the same masks. Before training it prints the reference levels on those
clips and masks (:mod:`tools.references`): the clip's mean colour, copying from the same place in
another slice, and its static background. A loss at the mean-colour level means the MAE has
learned colour only. Each figure is also given per group of masked tokens
(:func:`tools.references.token_groups`): on a moving shape, background at a place visible in
another slice, background at a place hidden in every slice. The model is built with VideoMAE's
layout unless ``--pos-embed`` or ``--attn-bias`` say otherwise (the training app's ``tiny``
config uses ``--attn-bias distance``).
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, dataclass

import torch

from adamae_rl.cli import ArgumentParser, run_command
from adamae_rl.data.synthetic import BACKGROUNDS, VAL_SEED_OFFSET, SyntheticClips
from adamae_rl.errors import ConfigError
from adamae_rl.models import build_mae
from adamae_rl.models.attention_bias import ATTN_BIASES
from adamae_rl.models.videomae import POS_EMBEDS
from adamae_rl.utils.files import atomic_write_text, claim_file
from adamae_rl.utils.optim import param_groups, warmup_cosine_factor

from tools.references import reference_token_errors, token_groups


@dataclass
class CurveSettings:
    """One short run (see the module docstring). ``mask_ratio_start`` ramps the ratio linearly to
    ``mask_ratio`` over ``ramp_steps`` (None = fixed ratio)."""

    pos_embed: str = "sincos_1d"
    attn_bias: str = "none"
    mask_ratio: float = 0.9
    mask_ratio_start: float | None = None
    ramp_steps: int = 0
    steps: int = 400
    lr: float = 1e-3
    min_lr: float = 1e-5
    warmup_steps: int = 40
    batch_size: int = 16
    decoder_embed_dim: int = 64
    decoder_depth: int = 2
    decoder_num_heads: int = 2
    max_shapes: int = 3
    background: str = "smooth"
    val_clips: int = 64
    eval_every: int = 100
    seed: int = 0


def random_masks(count: int, num_tokens: int, num_masked: int, gen: torch.Generator) -> torch.Tensor:
    """bool ``[count, N]``, True = masked, exactly ``num_masked`` per row, uniformly at random."""
    order = torch.rand(count, num_tokens, generator=gen).argsort(dim=1)[:, :num_masked]
    return torch.zeros(count, num_tokens, dtype=torch.bool).scatter_(1, order, True)


def heldout_curve(s: CurveSettings) -> dict:
    """Run it; returns ``{"references": {...}, "curve": {step: loss}, "settings": {...}}``."""
    torch.manual_seed(s.seed)
    model = build_mae("tiny", norm_target=False, pos_embed=s.pos_embed, attn_bias=s.attn_bias, decoder_embed_dim=s.decoder_embed_dim,
                      decoder_depth=s.decoder_depth, decoder_num_heads=s.decoder_num_heads)
    n = model.cfg.num_tokens
    geometry = dict(num_frames=model.cfg.num_frames, img_size=model.cfg.img_size,
                    patch_size=model.cfg.patch_size, tubelet_size=model.cfg.tubelet_size, max_shapes=s.max_shapes,
                    background=s.background)
    train = SyntheticClips(num_clips=100_000, seed=s.seed, **geometry)
    val = SyntheticClips(num_clips=s.val_clips, seed=VAL_SEED_OFFSET, **geometry)
    val_video = torch.stack([val[i]["video"] for i in range(s.val_clips)])
    val_mask = _fixed_masks(s.val_clips, n, round(s.mask_ratio * n))
    groups = token_groups(torch.stack([val[i]["fg_tokens"] for i in range(s.val_clips)]), val_mask, model.cfg.grid[0])
    references = reference_token_errors(val, list(range(s.val_clips)), val_mask)
    out = {
        "references": {name: float(e[val_mask].mean()) for name, e in references.items()},
        "group_shares": {g: float(m.sum() / val_mask.sum()) for g, m in groups.items()},
        "reference_groups": {name: _group_means(e, groups) for name, e in references.items()},
        "curve": {}, "groups": {}, "settings": asdict(s),
    }
    print(json.dumps({k: out[k] for k in ("references", "group_shares", "reference_groups")}), flush=True)

    opt = torch.optim.AdamW(param_groups(model, 0.05), lr=s.lr, betas=(0.9, 0.95))
    gen = torch.Generator().manual_seed(s.seed + 1)
    start = time.perf_counter()
    for step in range(1, s.steps + 1):
        for group in opt.param_groups:
            group["lr"] = s.lr * warmup_cosine_factor(step - 1, s.warmup_steps, s.steps, s.min_lr / s.lr)
        ratio = s.mask_ratio
        if s.mask_ratio_start is not None and s.ramp_steps:
            ratio = s.mask_ratio_start + (s.mask_ratio - s.mask_ratio_start) * min(1.0, (step - 1) / s.ramp_steps)
        index = torch.randint(len(train), (s.batch_size,), generator=gen)
        video = torch.stack([train[int(i)]["video"] for i in index])
        mask = random_masks(s.batch_size, n, round(ratio * n), gen)
        loss = model.token_errors(video, mask)[mask].mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step % s.eval_every == 0 or step == s.steps:
            errors = _heldout_errors(model, val_video, val_mask)
            out["curve"][step] = float(errors[val_mask].mean())
            out["groups"][step] = _group_means(errors, groups)
            print(json.dumps({"step": step, "heldout_loss": round(out["curve"][step], 5),
                              **{g: round(v, 5) for g, v in out["groups"][step].items()},
                              "seconds": round(time.perf_counter() - start)}), flush=True)
    return out


def _fixed_masks(count: int, num_tokens: int, num_masked: int, seed: int = 123) -> torch.Tensor:
    """The held-out masks: bool ``[count, N]``, True = masked, one permutation per clip from ``seed``."""
    gen = torch.Generator().manual_seed(seed)
    mask = torch.zeros(count, num_tokens, dtype=torch.bool)
    for row in range(count):  # one permutation per clip, so a clip's mask does not depend on the count
        mask[row, torch.randperm(num_tokens, generator=gen)[:num_masked]] = True
    return mask


@torch.no_grad()
def _heldout_errors(model, video: torch.Tensor, mask: torch.Tensor, batch: int = 16) -> torch.Tensor:
    """Raw-pixel error per token ``[M, N]`` (0 where visible) of the held-out clips (video
    ``[M, C, T, H, W]``, mask ``[M, N]``)."""
    model.eval()
    errors = [model.token_errors(video[i:i + batch], mask[i:i + batch]) for i in range(0, len(video), batch)]
    model.train()
    return torch.cat(errors)


def _group_means(errors: torch.Tensor, groups: dict[str, torch.Tensor]) -> dict[str, float]:
    """Mean of ``errors`` ``[M, N]`` over each group's tokens (NaN for an empty group)."""
    return {name: float(errors[members].mean()) if members.any() else float("nan") for name, members in groups.items()}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    d = CurveSettings()
    p = ArgumentParser(prog="python -m tools.heldout_curve", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pos-embed", choices=POS_EMBEDS, default=d.pos_embed)
    p.add_argument("--attn-bias", choices=ATTN_BIASES, default=d.attn_bias)
    p.add_argument("--mask-ratio", type=float, default=d.mask_ratio)
    p.add_argument("--mask-ratio-start", type=float, default=None, help="ramp from this ratio ...")
    p.add_argument("--ramp-steps", type=int, default=d.ramp_steps, help="... over this many steps")
    for name in ("steps", "warmup_steps", "batch_size", "decoder_embed_dim", "decoder_depth", "decoder_num_heads",
                 "max_shapes", "val_clips", "eval_every", "seed"):
        p.add_argument("--" + name.replace("_", "-"), type=int, default=getattr(d, name))
    p.add_argument("--background", choices=BACKGROUNDS, default=d.background,
                   help="the clips' background (fine: the ablation benchmark's)")
    p.add_argument("--lr", type=float, default=d.lr)
    p.add_argument("--out", help="also write the result as JSON here")
    p.add_argument("--force", action="store_true", help="overwrite an --out file this command did not write")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    def body() -> None:
        args = parse_args(argv)
        settings = CurveSettings(**{k: v for k, v in vars(args).items() if k not in ("out", "force", "debug")})
        if not 0 < settings.mask_ratio < 1:
            raise ConfigError(f"--mask-ratio must be in (0, 1), got {settings.mask_ratio}")
        target = claim_file(args.out, "heldout_curve", args.force) if args.out else None  # before the work
        result = heldout_curve(settings)
        if target is not None:
            atomic_write_text(target, json.dumps(result, indent=1))

    run_command(body)


if __name__ == "__main__":
    main()
