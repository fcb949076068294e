"""All-token encoding, the fine-tuning classifier and its layer-wise learning rates."""

from __future__ import annotations

import pytest
import torch

from adamae_rl.evaluation.encoder import VideoClassifier, encode_all_tokens, pooled_features
from adamae_rl.evaluation.finetuning import FinetuneSettings, layer_decay_param_groups, lr_factor
from adamae_rl.models.presets import build_mae

SMALL = dict(img_size=32, num_frames=8)  # grid (4, 4, 4): 64 tokens


def test_all_token_encoding_matches_the_masked_path_without_attention() -> None:
    """With no blocks, tokens do not see each other: the all-token pass restricted to the visible
    tokens must equal ``forward_encoder`` (same embedding, position table and final norm)."""
    torch.manual_seed(0)
    mae = build_mae("tiny", depth=0, **SMALL).eval()
    video = torch.randn(2, 3, 8, 32, 32)
    mask = torch.zeros(2, 64, dtype=torch.bool)
    mask[:, ::2] = True
    with torch.no_grad():
        full = encode_all_tokens(mae, video)
        visible = mae.forward_encoder(video, mask)
    assert full.shape == (2, 64, mae.cfg.embed_dim)
    torch.testing.assert_close(full[~mask].reshape(2, 32, -1), visible)


def test_pooled_features_and_classifier_shapes() -> None:
    torch.manual_seed(0)
    mae = build_mae("tiny", **SMALL).eval()
    video = torch.randn(3, 3, 8, 32, 32)
    assert pooled_features(mae, video).shape == (3, mae.cfg.embed_dim)
    per_slice = pooled_features(mae, video, pool="time")
    assert per_slice.shape == (3, 4 * mae.cfg.embed_dim)  # 4 temporal slices
    # The per-slice means average back to the mean over all tokens (every slice has 16 tokens).
    torch.testing.assert_close(per_slice.reshape(3, 4, -1).mean(1), pooled_features(mae, video))
    with pytest.raises(ValueError, match="pool must be one of"):
        pooled_features(mae, video, pool="max")
    tokens = mae.forward_encoder(video).reshape(3, 4, 4, 4, -1)  # [B, T', H', W', D]
    cells = pooled_features(mae, video, pool="grid")  # a 4x4x4 token grid: one token per cell
    torch.testing.assert_close(cells, tokens.flatten(1))
    big = build_mae("tiny").eval()  # 8x8x8 tokens: a cell is 2x2x2 tokens
    clip = torch.randn(1, 3, 16, 64, 64)
    tokens = big.forward_encoder(clip).reshape(1, 8, 8, 8, -1)
    first_cell = tokens[:, :2, :2, :2].mean(dim=(1, 2, 3))
    last_cell = tokens[:, 6:, 6:, 6:].mean(dim=(1, 2, 3))
    grid = pooled_features(big, clip, pool="grid").reshape(1, 64, -1)
    torch.testing.assert_close(grid[:, 0], first_cell)
    torch.testing.assert_close(grid[:, 63], last_cell)
    clf = VideoClassifier(mae, num_classes=8)
    assert clf(video).shape == (3, 8)
    # The classifier owns copies: training it never changes the pre-trained MAE.
    assert clf.blocks[0].mlp[0].weight is not mae.blocks[0].mlp[0].weight
    with pytest.raises(ValueError, match="video must be"):
        clf(torch.randn(1, 3, 4, 32, 32))


def test_layer_decay_scales() -> None:
    """VideoMAE: block i at decay^(depth - i), patch embed at decay^(depth + 1), head at 1."""
    torch.manual_seed(0)
    clf = VideoClassifier(build_mae("tiny", **SMALL), num_classes=8)
    depth, decay = clf.depth, 0.75
    groups = layer_decay_param_groups(clf, weight_decay=0.05, layer_decay=decay)
    scale = {name: g["lr_scale"] for g in groups for name in g["names"]}
    wd = {name: g["weight_decay"] for g in groups for name in g["names"]}
    assert scale["patch_embed.weight"] == pytest.approx(decay ** (depth + 1))
    for i in range(depth):
        assert scale[f"blocks.{i}.attn.qkv.weight"] == pytest.approx(decay ** (depth - i))
        assert scale[f"blocks.{i}.norm1.bias"] == pytest.approx(decay ** (depth - i))
    for name in ("head.weight", "head.bias", "fc_norm.weight", "norm.weight"):
        assert scale[name] == 1.0
    # Every parameter in exactly one group; decay on matrices only.
    assert sorted(scale) == sorted(n for n, _ in clf.named_parameters())
    assert wd["blocks.0.attn.qkv.weight"] == 0.05 and wd["blocks.0.attn.q_bias"] == 0.0 and wd["head.bias"] == 0.0


def test_lr_factor_warms_up_then_decays_to_the_floor() -> None:
    total, warmup = FinetuneSettings(steps=100, warmup_steps=10).schedule(steps_per_epoch=7)
    assert (total, warmup) == (100, 10)
    assert lr_factor(0, total, warmup, 1e-3, 1e-5) == pytest.approx(0.1)
    assert lr_factor(9, total, warmup, 1e-3, 1e-5) == pytest.approx(1.0)
    assert lr_factor(100, total, warmup, 1e-3, 1e-5) == pytest.approx(1e-2)
    # In epochs: 3 epochs of 7 steps, warmup 1 epoch.
    assert FinetuneSettings(steps=None, epochs=3, warmup_steps=None, warmup_epochs=1).schedule(7) == (21, 7)
    factors = [lr_factor(i, total, warmup, 1e-3, 1e-5) for i in range(10, 101)]
    assert all(a >= b for a, b in zip(factors, factors[1:]))
