"""Presets carry VideoMAE's ViT-S/B/L widths, depths and heads; overrides and unknown names."""

from __future__ import annotations

import pytest
import torch

from adamae_rl.models import build_mae, list_models, mae_config

# (embed_dim, depth, num_heads, decoder_embed_dim, decoder_depth, decoder_num_heads) of VideoMAE's
# pretrain_videomae_{small,base,large}_patch16_224.
VIDEOMAE = {
    "vit_s": (384, 12, 6, 192, 4, 3),
    "vit_b": (768, 12, 12, 384, 4, 6),
    "vit_l": (1024, 24, 16, 512, 4, 8),
}


@pytest.mark.parametrize("name", sorted(VIDEOMAE))
def test_vit_presets_match_videomae(name):
    cfg = mae_config(name)
    got = (cfg.embed_dim, cfg.depth, cfg.num_heads, cfg.decoder_embed_dim, cfg.decoder_depth, cfg.decoder_num_heads)
    assert got == VIDEOMAE[name]
    assert (cfg.img_size, cfg.num_frames, cfg.patch_size, cfg.tubelet_size) == (224, 16, 16, 2)
    assert cfg.grid == (8, 14, 14) and cfg.num_tokens == 1568


def test_list_models():
    assert list_models() == ["tiny", "vit_b", "vit_l", "vit_s"]


def test_overrides_and_unknown_fields():
    cfg = mae_config("vit_b", img_size=112, decoder_depth=2)
    assert (cfg.img_size, cfg.decoder_depth, cfg.embed_dim) == (112, 2, 768)
    with pytest.raises(ValueError, match=r"unknown MAE config field\(s\) \['emb_dim'\]"):
        mae_config("tiny", emb_dim=3)
    with pytest.raises(ValueError, match=r"unknown model preset 'vit_h'; known model presets: tiny, vit_b, vit_l, vit_s"):
        mae_config("vit_h")


def test_tiny_builds_small_model():
    model = build_mae("tiny", img_size=32, num_frames=8)
    assert model.cfg.embed_dim == 128 and len(model.blocks) == 4 and len(model.decoder_blocks) == 2
    assert sum(p.numel() for p in model.parameters()) < 2_000_000


@pytest.mark.parametrize("name", list_models())
def test_every_registered_model_keeps_the_env_contract(name: str) -> None:
    """Each registered model (at one block, small clips) runs through the env and policies."""
    import adamae_rl

    torch.manual_seed(0)
    model = build_mae(name, img_size=32, num_frames=4, depth=1, decoder_depth=1)
    env = adamae_rl.make_env(model, data="synthetic", batch_size=2, mask_ratio=0.75)
    td = env.reset()
    assert td["tokens"].shape == (2, model.cfg.num_tokens, model.cfg.embed_dim)
    td = env.step(adamae_rl.make_policy("random", env=env)(td))
    reward, loss = td["next", "reward"], td["next", "loss_recon"]
    assert reward.shape == (2, model.cfg.num_tokens, 1) and loss.shape == (2,) and loss.requires_grad
    assert bool((reward.squeeze(-1)[~td["mask"]] == 0).all())
