"""Reference levels of the raw-pixel reconstruction loss on synthetic clips.

Two predictions that need no learning, scored like the MAE (mean squared error in [0, 1] pixels
per token, averaged over the masked tokens):

- ``mean_colour``: every pixel of a clip predicted as the clip's mean colour (per channel, over all
  its pixels) -- what an MAE that has learned nothing but colour reaches;
- ``static_background``: every pixel predicted as the clip's static background, rendered without
  the moving shapes -- the level of copying the background perfectly from anywhere in the clip and
  knowing nothing about the shapes.

An MAE whose held-out loss falls clearly below ``static_background`` predicts moving content too.
"""

from __future__ import annotations

import torch
from einops import rearrange

from adamae_rl.data.synthetic import SyntheticClips, render_background, render_clip_facts


def patch_errors(pred: torch.Tensor, target: torch.Tensor, patch_size: int, tubelet_size: int) -> torch.Tensor:
    """Per-token mean squared error: pixels ``[B, C, T, H, W]`` twice -> ``[B, N]`` in ``(t h w)`` order."""
    sq = (pred - target).pow(2)
    tokens = rearrange(sq, "b c (tn t) (hn p1) (wn p2) -> b (tn hn wn) (t p1 p2 c)",
                       t=tubelet_size, p1=patch_size, p2=patch_size)
    return tokens.mean(dim=-1)


def reference_losses(clips: SyntheticClips, indices: list[int], mask: torch.Tensor | None = None) -> dict[str, float]:
    """Reference levels on ``clips[indices]``.

    Args:
        clips: synthetic clips (their seed, sizes and shape count define the pixels).
        indices: which clips.
        mask: bool ``[len(indices), N]``, True = masked: the tokens scored (None = every token,
            the expectation under uniformly random masking).
    Returns:
        ``{"mean_colour": float, "static_background": float}``.
    """
    pixels, background = [], []
    for index in indices:
        clip, _, _ = render_clip_facts(clips.seed, index, clips.num_frames, clips.img_size, clips.max_shapes)
        pixels.append(clip)
        background.append(render_background(clips.seed, index, clips.num_frames, clips.img_size))
    target = torch.stack(pixels)  # [B, 3, T, H, W]
    mean = target.mean(dim=(2, 3, 4), keepdim=True).expand_as(target)
    out = {}
    for name, pred in (("mean_colour", mean), ("static_background", torch.stack(background))):
        errors = patch_errors(pred, target, clips.patch_size, clips.tubelet_size)  # [B, N]
        if mask is not None:
            if tuple(mask.shape) != tuple(errors.shape):
                raise ValueError(f"mask shape {tuple(mask.shape)} does not match [clips, N] = {list(errors.shape)}")
            errors = errors[mask]
        out[name] = float(errors.mean())
    return out
