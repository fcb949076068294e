"""The distance attention bias (``model.attn_bias=distance``): an option, off for every preset."""

from __future__ import annotations

import pytest
import torch

from adamae_rl.models import MAEConfig, build_mae
from adamae_rl.models.attention_bias import distance_bias, grid_coordinates, head_slopes
from adamae_rl.models.presets import mae_config


def _small(**overrides) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_mae("tiny", img_size=32, num_frames=8, **overrides)  # 4 x 4 x 4 = 64 tokens


def test_off_by_default_and_nothing_extra_is_stored() -> None:
    for preset in ("tiny", "vit_s", "vit_b", "vit_l"):
        assert mae_config(preset).attn_bias == "none"
    plain, biased = _small(), _small(attn_bias="distance")
    assert plain.attention_bias("encoder", None) is None
    assert set(plain.state_dict()) == set(biased.state_dict())  # the bias is rebuilt from the config


def test_bias_is_minus_slope_times_euclidean_distance() -> None:
    coords = grid_coordinates((2, 3, 4))
    assert coords.shape == (24, 3) and coords[23].tolist() == [1.0, 2.0, 3.0]  # (t h w) order
    bias = distance_bias(coords.unsqueeze(0), head_slopes(3))
    assert bias.shape == (1, 3, 24, 24)
    assert head_slopes(3).tolist() == [1.0, 0.5, 0.25]
    # token 0 = (0, 0, 0), token 23 = (1, 2, 3): distance sqrt(14)
    assert torch.allclose(bias[0, :, 0, 23], -torch.tensor([1.0, 0.5, 0.25]) * 14**0.5)
    assert torch.all(bias[0].diagonal(dim1=-2, dim2=-1) == 0)
    assert torch.equal(bias, bias.transpose(-1, -2))


def test_spatial_distance_ignores_time() -> None:
    """spatial_distance: the same place in any slice is at distance 0; places differ as in 2-D."""
    model = _small(attn_bias="spatial_distance")  # grid 4 x 4 x 4
    bias = model.attention_bias("decoder", None)[0]  # [2, 64, 64], slopes 1 and 1/2
    same_place_other_slice = bias[:, 0, 3 * 16]  # token (0, 0, 0) -> (3, 0, 0)
    assert torch.equal(same_place_other_slice, torch.zeros(2))
    # (0, 0, 0) -> (2, 1, 3): spatial distance sqrt(1 + 9), whatever the time
    assert torch.allclose(bias[:, 0, 2 * 16 + 1 * 4 + 3], -torch.tensor([1.0, 0.5]) * 10**0.5)
    full = _small(attn_bias="distance").attention_bias("decoder", None)[0]
    assert torch.allclose(full[:, 0, 2 * 16 + 1 * 4 + 3], -torch.tensor([1.0, 0.5]) * 14**0.5)


def test_masked_sequences_get_the_full_grid_bias_restricted_to_their_tokens() -> None:
    model = _small(attn_bias="distance")
    gen = torch.Generator().manual_seed(1)
    mask = torch.zeros(2, 64, dtype=torch.bool)
    for row in range(2):
        mask[row, torch.randperm(64, generator=gen)[:48]] = True
    full = model.attention_bias("encoder", None)  # [1, 4, 64, 64]
    enc = model.attention_bias("encoder", ~mask)
    dec = model.attention_bias("decoder", ~mask, mask)  # visible tokens first, then the decoded ones
    assert enc.shape == (2, 4, 16, 16) and dec.shape == (2, 2, 64, 64)
    full_dec = model.attention_bias("decoder", None)
    for row in range(2):
        vis = (~mask[row]).nonzero().squeeze(1)
        order = torch.cat([vis, mask[row].nonzero().squeeze(1)])
        assert torch.equal(enc[row], full[0][:, vis][:, :, vis])
        assert torch.equal(dec[row], full_dec[0][:, order][:, :, order])


def test_biased_model_trains_and_the_classifier_applies_the_same_bias() -> None:
    from adamae_rl.evaluation.encoder import VideoClassifier

    model = _small(attn_bias="distance")
    video = torch.randn(2, 3, 8, 32, 32)
    mask = torch.zeros(2, 64, dtype=torch.bool)
    mask[:, 16:] = True
    plain = _small()
    plain.load_state_dict(model.state_dict())
    errors = model.token_errors(video, mask)
    assert not torch.allclose(errors, plain.token_errors(video, mask))  # the bias changes the outputs
    errors.sum().backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)
    classifier = VideoClassifier(model, num_classes=3).eval()
    with torch.no_grad():
        expected = classifier.fc_norm(model.forward_encoder(video).mean(dim=1))
        assert torch.allclose(classifier.features(video), expected, atol=1e-5)


def test_decoder_in_token_order_matches_the_gathered_order() -> None:
    """With every masked token decoded, the distance-biased decoder runs its tokens in token order
    (one shared bias); predictions agree with the visible-then-masked sequence to round-off."""
    model = _small(attn_bias="distance")
    gen = torch.Generator().manual_seed(2)
    video = torch.randn(3, 3, 8, 32, 32, generator=gen)
    mask = torch.zeros(3, 64, dtype=torch.bool)
    for row in mask:
        row[torch.randperm(64, generator=gen)[:48]] = True
    with torch.no_grad():
        token_order = model(video, mask)
        gathered = model(video, mask, decode=mask)  # an explicit decode set keeps the gathered order
    assert token_order.shape == (3, 48, model.cfg.patch_dim)
    assert torch.allclose(token_order, gathered, atol=1e-5)


def test_unknown_kind_lists_the_known_ones() -> None:
    with pytest.raises(ValueError, match=r"attn_bias must be one of none, distance, spatial_distance; got 'alibi'"):
        MAEConfig(attn_bias="alibi")


def test_weights_keep_their_attention_bias(tmp_path) -> None:
    from adamae_rl.interop import export_weights, init_from, write_weights
    from adamae_rl.interop.weights import WeightsError

    biased = _small(attn_bias="distance")
    path = write_weights(export_weights(biased), tmp_path / "w.pt", "adamae_rl")
    init_from(_small(attn_bias="distance"), path)
    with pytest.raises(WeightsError, match=r"attn_bias: weights distance, config none"):
        init_from(_small(), path)
    with pytest.raises(WeightsError, match=r"model.attn_bias=distance; Hugging Face VideoMAE has no attention bias"):
        write_weights(export_weights(biased), tmp_path / "hf", "hf")
    # Hugging Face (and official) weights record no setting: they are VideoMAE's, without the bias.
    hf = write_weights(export_weights(_small()), tmp_path / "hf_plain", "hf")
    init_from(_small(), hf)
    with pytest.raises(WeightsError, match=r"attn_bias: weights none, config distance"):
        init_from(_small(attn_bias="distance"), hf)
