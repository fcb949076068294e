"""The step's fast paths compute what the plain formulas compute."""

from __future__ import annotations

import torch
from einops import rearrange

from adamae_rl.data.transforms import denormalize
from adamae_rl.models.presets import build_mae
from adamae_rl.utils.optim import adamw, param_groups

SMALL = dict(img_size=32, num_frames=8)  # grid (4, 4, 4): 64 tokens


def test_embed_patches_equals_the_conv_embedding() -> None:
    torch.manual_seed(0)
    model = build_mae("tiny", **SMALL)
    video = torch.randn(2, 3, 8, 32, 32)
    torch.testing.assert_close(model.embed_patches(model.patchify(video)), model.embed(video), atol=1e-5, rtol=1e-4)


def test_patchify_and_targets_follow_the_reference_layout_and_formula() -> None:
    torch.manual_seed(0)
    model = build_mae("tiny", **SMALL)  # norm_target=True by default
    video = torch.randn(2, 3, 8, 32, 32)
    ref = rearrange(video, "b c (tn t) (hn p1) (wn p2) -> b (tn hn wn) (t p1 p2 c)", t=2, p1=8, p2=8)
    assert torch.equal(model.patchify(video), ref)
    pixels = rearrange(denormalize(video), "b c (tn t) (hn p1) (wn p2) -> b (tn hn wn) (t p1 p2) c", t=2, p1=8, p2=8)
    expected = (pixels - pixels.mean(2, keepdim=True)) / (pixels.var(2, unbiased=True, keepdim=True).sqrt() + 1e-6)
    torch.testing.assert_close(model.targets(video), expected.flatten(-2), atol=1e-4, rtol=1e-4)


def test_adamw_is_fused_on_cpu_and_matches_the_loop() -> None:
    torch.manual_seed(0)
    models = [build_mae("tiny", **SMALL) for _ in range(2)]
    models[1].load_state_dict(models[0].state_dict())
    fused = adamw(param_groups(models[0], 0.05), 1e-3, (0.9, 0.95))
    loop = adamw(param_groups(models[1], 0.05), 1e-3, (0.9, 0.95), fused=False)
    assert fused.defaults["fused"] and not loop.defaults["fused"]
    for model in models:
        for p in model.parameters():
            p.grad = torch.ones_like(p) * 0.1
    fused.step(), loop.step()
    for a, b in zip(models[0].parameters(), models[1].parameters()):
        torch.testing.assert_close(a, b)
