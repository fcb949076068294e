"""Position-table kinds of the MAE: VideoMAE's 1-D table (default), separable space-time, learned."""

from __future__ import annotations

import pytest
import torch

from adamae_rl.models import MAEConfig, build_mae, sinusoid_table
from adamae_rl.models.presets import mae_config
from adamae_rl.models.videomae import POS_EMBEDS, separable_sinusoid_table


def test_default_is_videomae_1d_table_for_every_preset():
    for preset in ("tiny", "vit_s", "vit_b", "vit_l"):
        assert mae_config(preset).pos_embed == "sincos_1d"
    model = build_mae("tiny", img_size=32, num_frames=8)
    assert torch.equal(model.pos_embed, sinusoid_table(model.cfg.num_tokens, model.cfg.embed_dim))
    assert "pos_embed" not in model.state_dict()  # fixed tables are rebuilt, never stored


def test_separable_table_shares_features_at_the_same_place():
    grid, dim = (4, 3, 5), 64
    table = separable_sinusoid_table(grid, dim).reshape(*grid, dim)
    d_t = 2 * (dim // 6)
    # Same (h, w) in another time slice: only the time features differ.
    assert torch.equal(table[0, 1, 2, d_t:], table[3, 1, 2, d_t:])
    assert not torch.equal(table[0, 1, 2, :d_t], table[3, 1, 2, :d_t])
    # Width features depend on w only, and equal the 1-D table of the width axis.
    assert torch.equal(table[2, 0, :, 2 * d_t:], sinusoid_table(5, dim - 2 * d_t))
    assert torch.unique(table.reshape(-1, dim), dim=0).shape[0] == 4 * 3 * 5  # every token distinct


def test_pos_embed_kinds_build_and_train():
    video = torch.randn(2, 3, 8, 32, 32)
    mask = torch.zeros(2, 64, dtype=torch.bool)
    mask[:, 8:] = True
    for kind in POS_EMBEDS:
        torch.manual_seed(0)
        model = build_mae("tiny", img_size=32, num_frames=8, pos_embed=kind)
        assert model.pos_embed.shape == (64, 128) and model.decoder_pos_embed.shape == (64, 64)
        model.token_errors(video, mask).sum().backward()
        learned = kind == "learned"
        assert isinstance(model.pos_embed, torch.nn.Parameter) == learned
        assert ("pos_embed" in model.state_dict()) == learned
        if learned:
            assert model.pos_embed.grad is not None and model.decoder_pos_embed.grad is not None


def test_unknown_pos_embed_lists_known_kinds():
    with pytest.raises(ValueError, match=r"pos_embed must be one of sincos_1d, sincos_3d, learned; got 'sincos'"):
        MAEConfig(pos_embed="sincos")
    with pytest.raises(ValueError, match=r"separable position table needs width >= 6"):
        separable_sinusoid_table((2, 2, 2), 4)


def test_weights_keep_their_position_table_kind(tmp_path) -> None:
    from adamae_rl.interop import export_weights, init_from, write_weights
    from adamae_rl.interop.weights import WeightsError

    separable = build_mae("tiny", img_size=32, num_frames=8, pos_embed="sincos_3d")
    path = write_weights(export_weights(separable), tmp_path / "w.pt", "adamae_rl")
    init_from(build_mae("tiny", img_size=32, num_frames=8, pos_embed="sincos_3d"), path)  # same kind: fine
    with pytest.raises(WeightsError, match=r"pos_embed: weights sincos_3d, config sincos_1d"):
        init_from(build_mae("tiny", img_size=32, num_frames=8), path)
    with pytest.raises(WeightsError, match=r"uses model.pos_embed=sincos_3d; Hugging Face VideoMAE rebuilds the sincos_1d table"):
        write_weights(export_weights(separable), tmp_path / "hf", "hf")


def test_classifier_fine_tunes_a_learned_table_and_keeps_a_fixed_one() -> None:
    from adamae_rl.evaluation.encoder import VideoClassifier

    learned = VideoClassifier(build_mae("tiny", img_size=32, num_frames=8, pos_embed="learned"), num_classes=3)
    fixed = VideoClassifier(build_mae("tiny", img_size=32, num_frames=8, pos_embed="sincos_3d"), num_classes=3)
    assert "pos_embed" in dict(learned.named_parameters())
    assert "pos_embed" not in dict(fixed.named_parameters())
    assert torch.equal(fixed.pos_embed, separable_sinusoid_table((4, 4, 4), 128))
