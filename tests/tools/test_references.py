"""Reference levels of the raw-pixel reconstruction loss on synthetic clips (``tools.references``)."""

from __future__ import annotations

import pytest
import torch

from adamae_rl.data.synthetic import SyntheticClips, render_background, render_clip
from tools.references import patch_errors, reference_losses, same_place_copy_errors, token_groups

GEOMETRY = dict(num_frames=8, img_size=32, patch_size=8, tubelet_size=2)


def test_reference_levels_order_and_the_background_is_exact_off_the_shapes() -> None:
    clips = SyntheticClips(num_clips=4, seed=3, **GEOMETRY)
    levels = reference_losses(clips, [0, 1, 2, 3])
    assert 0 < levels["static_background"] < levels["mean_colour"]
    pixels, _, _ = render_clip(3, 1, 8, 32)
    errors = patch_errors(render_background(3, 1, 8, 32)[None], pixels[None], 8, 2)[0]  # [N]
    fg = clips[1]["fg_tokens"]
    assert torch.all(errors[~fg] == 0) and torch.all(errors[fg] > 0)
    mask = torch.zeros(4, clips[0]["fg_tokens"].numel(), dtype=torch.bool)
    mask[:, :5] = True
    assert reference_losses(clips, [0, 1, 2, 3], mask) != levels
    with pytest.raises(ValueError, match=r"mask shape \(4, 3\) does not match"):
        reference_losses(clips, [0, 1, 2, 3], mask[:, :3])


def test_same_place_copy_takes_the_nearest_visible_slice_or_the_mean_colour() -> None:
    # 1 clip, 4 frames of 4x4 px, patch 2, tubelet 1: grid (4, 2, 2), 16 tokens; slice t has value t / 10.
    target = (torch.arange(4).float() / 10).view(1, 1, 4, 1, 1).expand(1, 3, 4, 4, 4).clone()
    mask = torch.ones(1, 4, 4, dtype=torch.bool)  # [B, T', places]
    mask[0, 0, 0] = False  # place 0 visible in slice 0 only
    mask[0, 3, 1] = mask[0, 1, 1] = False  # place 1 visible in slices 1 and 3
    errors = same_place_copy_errors(target, mask.reshape(1, 16), patch_size=2, tubelet_size=1).reshape(4, 4)
    assert torch.allclose(errors[:, 0], (torch.tensor([0.0, 0.1, 0.2, 0.3])) ** 2)  # copies slice 0
    # place 1: slice 0 <- 1, slice 2 <- 1 (tie between 1 and 3: the earlier), visible slices exact
    assert torch.allclose(errors[:, 1], torch.tensor([0.01, 0.0, 0.01, 0.0]))
    mean = 0.15  # places 2 and 3 are masked everywhere: the clip's mean colour
    assert torch.allclose(errors[:, 2], (torch.tensor([0.0, 0.1, 0.2, 0.3]) - mean) ** 2)
    clips = SyntheticClips(num_clips=4, seed=3, **GEOMETRY)
    full = torch.ones(4, clips[0]["fg_tokens"].numel(), dtype=torch.bool)
    full[:, ::3] = False
    levels = reference_losses(clips, [0, 1, 2, 3], full)
    assert levels["same_place_copy"] < levels["mean_colour"]


def test_token_groups_split_the_masked_tokens() -> None:
    # 1 clip, grid (2 slices, 3 places): 6 tokens in (t h w) order.
    mask = torch.tensor([[True, True, False, True, True, True]])  # place 2 visible in slice 0 only
    fg = torch.tensor([[True, False, False, False, True, False]])
    groups = token_groups(fg, mask, num_slices=2)
    assert groups["shape"].tolist() == [[True, False, False, False, True, False]]
    assert groups["background_seen"].tolist() == [[False, False, False, False, False, True]]  # place 2, slice 1
    assert groups["background_hidden"].tolist() == [[False, True, False, True, False, False]]  # places 1 and 0
    total = groups["shape"].int() + groups["background_seen"].int() + groups["background_hidden"].int()
    assert torch.equal(total.bool(), mask) and int(total.max()) == 1
