"""Reference levels of the raw-pixel reconstruction loss on synthetic clips.

Two predictions that need no learning, scored like the MAE (mean squared error in [0, 1] pixels
per token, averaged over the masked tokens):

- ``mean_colour``: every pixel of a clip predicted as the clip's mean colour (per channel, over all
  its pixels) -- what an MAE that has learned nothing but colour reaches;
- ``static_background``: every pixel predicted as the clip's static background, rendered without
  the moving shapes -- the level of copying the background perfectly from anywhere in the clip and
  knowing nothing about the shapes;
- ``same_place_copy`` (only with a mask): each masked token copied from the nearest visible token
  at the same place (same ``h, w``) in another temporal slice, the clip's mean colour where that
  place is masked in every slice -- what "copy static content from other frames" reaches with
  the mask actually drawn.

An MAE whose held-out loss falls clearly below ``static_background`` predicts moving content too.

:func:`token_groups` splits the masked tokens where these levels differ: tokens on a moving shape
(all of ``static_background``'s error), background at a place visible in another slice (where
copying over time works) and background at a place hidden in every slice (where it must be
inferred from other places).
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
        clips: synthetic clips (their seed, sizes, shape count and background define the pixels).
        indices: which clips.
        mask: bool ``[len(indices), N]``, True = masked: the tokens scored (None = every token,
            the expectation under uniformly random masking).
    Returns:
        ``{"mean_colour": float, "static_background": float}``, and ``"same_place_copy"`` with a mask.
    """
    errors = reference_token_errors(clips, indices, mask)
    return {name: float((e if mask is None else e[mask]).mean()) for name, e in errors.items()}


def reference_token_errors(
    clips: SyntheticClips, indices: list[int], mask: torch.Tensor | None = None
) -> dict[str, torch.Tensor]:
    """Per-token errors ``[len(indices), N]`` of each reference (see :func:`reference_losses`)."""
    pixels, background = [], []
    for index in indices:
        clip, _, _ = render_clip_facts(clips.seed, index, clips.num_frames, clips.img_size, clips.max_shapes, clips.background)
        pixels.append(clip)
        background.append(render_background(clips.seed, index, clips.num_frames, clips.img_size, clips.background))
    target = torch.stack(pixels)  # [B, 3, T, H, W]
    mean = target.mean(dim=(2, 3, 4), keepdim=True).expand_as(target)
    out = {}
    for name, pred in (("mean_colour", mean), ("static_background", torch.stack(background))):
        out[name] = patch_errors(pred, target, clips.patch_size, clips.tubelet_size)  # [B, N]
    if mask is not None:
        if tuple(mask.shape) != tuple(out["mean_colour"].shape):
            raise ValueError(f"mask shape {tuple(mask.shape)} does not match [clips, N] = {list(out['mean_colour'].shape)}")
        out["same_place_copy"] = same_place_copy_errors(target, mask, clips.patch_size, clips.tubelet_size)
    return out


def token_groups(fg_tokens: torch.Tensor, mask: torch.Tensor, num_slices: int) -> dict[str, torch.Tensor]:
    """The masked tokens in three groups, each bool ``[B, N]`` (together exactly ``mask``).

    Args:
        fg_tokens: bool ``[B, N]``, True = the token covers a moving shape; mask: bool ``[B, N]``,
            True = masked; num_slices: temporal slices ``T'`` of the ``(t h w)`` token order.
    Returns:
        ``shape``: masked tokens on a moving shape; ``background_seen``: masked background tokens
        whose place is visible in another slice; ``background_hidden``: masked background tokens
        whose place is masked in every slice.
    """
    batch, tokens = mask.shape
    visible = ~mask.reshape(batch, num_slices, tokens // num_slices)
    seen = visible.any(dim=1, keepdim=True).expand_as(visible).reshape(batch, tokens)
    background = mask & ~fg_tokens
    return {"shape": mask & fg_tokens, "background_seen": background & seen, "background_hidden": background & ~seen}


def same_place_copy_errors(target: torch.Tensor, mask: torch.Tensor, patch_size: int, tubelet_size: int) -> torch.Tensor:
    """Per-token error of copying each token from the nearest visible slice at the same place.

    Args:
        target: pixels ``[B, C, T, H, W]`` in [0, 1]; mask: bool ``[B, N]``, True = masked.
    Returns:
        ``[B, N]`` mean squared error of the copy (nearest visible slice in time, the earlier one on
        a tie; the clip's mean colour where the place is masked in every slice); visible tokens
        are copies of themselves (error 0).
    """
    tokens = rearrange(target, "b c (tn t) (hn p1) (wn p2) -> b tn (hn wn) (t p1 p2 c)",
                       t=tubelet_size, p1=patch_size, p2=patch_size)  # [B, T', S, P]
    batch, slices, places, _ = tokens.shape
    visible = ~mask.reshape(batch, slices, places)
    gap = (torch.arange(slices).view(-1, 1) - torch.arange(slices).view(1, -1)).abs().float()  # [T', T'] |t - t'|
    # Cost of copying slice t' into slice t at each place; a masked source costs infinity.
    cost = gap.view(1, slices, slices, 1) + torch.where(visible, 0.0, float("inf")).unsqueeze(1)  # [B, T, T', S]
    source = cost.argmin(dim=2)  # [B, T, S]: the first (earliest) minimum on a tie
    copied = tokens.gather(1, source.unsqueeze(-1).expand_as(tokens))
    # The mean colour as a token: channels are the fastest axis of the (t p p c) layout.
    flat = target.mean(dim=(2, 3, 4)).repeat(1, tokens.shape[-1] // target.shape[1])  # [B, P]
    nowhere = ~visible.any(dim=1, keepdim=True).expand_as(visible)  # [B, T', S]
    pred = torch.where(nowhere.unsqueeze(-1), flat.view(batch, 1, 1, -1), copied)
    return (pred - tokens).pow(2).mean(dim=-1).reshape(batch, -1)
