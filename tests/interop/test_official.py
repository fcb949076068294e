"""Official VideoMAE / VideoMAE V2 / AdaMAE checkpoints: every tensor accounted for, same outputs."""

from __future__ import annotations

import pytest
import torch
from interop_reference import (
    GEO,
    NUM_TOKENS,
    WIDTHS,
    finetuned_state,
    pretrain_state,
    random_mask,
    ref_finetuned,
    ref_pretrain,
    ref_sampler_logits,
    run_args,
    sinusoid,
)

from adamae_rl.interop import WeightsError, build_model, init_from, load_classifier, read_weights
from adamae_rl.models import MAEConfig, VideoMAE
from adamae_rl.policies import build_policy

GRID = (GEO["num_frames"] // GEO["tubelet_size"], GEO["img_size"] // GEO["patch_size"], GEO["img_size"] // GEO["patch_size"])


def full_config(**overrides) -> MAEConfig:
    return MAEConfig(**{**GEO, **WIDTHS, **overrides})


def video_batch(gen: torch.Generator, batch: int = 2) -> torch.Tensor:
    return torch.randn(batch, GEO["in_chans"], GEO["num_frames"], GEO["img_size"], GEO["img_size"], generator=gen)


def official_sampler() -> torch.nn.Module:
    """The ``adaptive`` policy configured as AdaMAE's code builds its sampler."""
    geometry = {"grid": GRID, "mask_ratio": 0.75, "embed_dim": WIDTHS["embed_dim"]}
    spec = {"name": "adaptive", "num_heads": 8, "qkv_bias": False, "dropout": 0.1, "norm_eps": 1e-5}
    return build_policy(spec, geometry)


# Each official layout: (how the file wraps the weights, what the state holds).
LAYOUTS = {
    "videomae": lambda gen: {"model": pretrain_state(gen), "epoch": 799, "args": run_args()},
    # VideoMAE V2 (deepspeed/DDP): under "module", keys with a DDP "module." prefix.
    "videomae_v2": lambda gen: {"module": {f"module.{k}": v for k, v in pretrain_state(gen).items()}, "args": run_args()},
    "adamae": lambda gen: {"model": pretrain_state(gen, sampler=True), "args": run_args(), "epoch": 1},
}


def raw_state(ckpt: dict) -> dict[str, torch.Tensor]:
    state = ckpt.get("model") or ckpt.get("module")
    return {k.removeprefix("module."): v for k, v in state.items()}


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_official_pretrain_layout_converts_every_tensor(layout, tmp_path):
    gen = torch.Generator().manual_seed(1)
    ckpt = LAYOUTS[layout](gen)
    path = tmp_path / "checkpoint.pth"
    torch.save(ckpt, path)
    state = raw_state(ckpt)

    weights = read_weights(path)
    model = build_model(weights)  # geometry and heads come from the tensors and args alone
    assert model.cfg == full_config(norm_target=True)
    # No key left over on either side: the model's state dict is complete, and every source
    # tensor went somewhere (the model or the sampler) with its values intact.
    assert set(weights.model) == set(model.state_dict())
    sampler_keys = [k for k in state if "token_probs" in k or "pos_embed_probs" in k]
    assert len(weights.model) + len(weights.policy or {}) == len(state)
    assert len(sampler_keys) == len(weights.policy or {})
    source_sums = sorted(float(v.double().sum()) for v in state.values())
    ours = list(weights.model.values()) + list((weights.policy or {}).values())
    assert sorted(float(v.double().sum()) for v in ours) == pytest.approx(source_sums, abs=0)

    # Same predictions as the official forward pass on the official names.
    video, mask = video_batch(gen), random_mask(2, 24, gen)
    with torch.no_grad():
        torch.testing.assert_close(model.eval()(video, mask), ref_pretrain(state, video, mask), rtol=0, atol=1e-5)

    if layout == "adamae":
        policy = official_sampler().eval()
        policy.load_state_dict(weights.policy)
        assert weights.policy_config["num_heads"] == 8 and weights.policy_config["qkv_bias"] is False
        with torch.no_grad():
            logits = policy.compute_logits(model.embed(video))
        torch.testing.assert_close(logits, ref_sampler_logits(state, video), rtol=0, atol=1e-5)


def test_finetuned_layout_converts_every_tensor(tmp_path):
    gen = torch.Generator().manual_seed(2)
    state = finetuned_state(gen)
    path = tmp_path / "finetuned.pth"
    torch.save(state, path)  # weights at the top level

    weights = read_weights(path)
    assert not weights.has_decoder and weights.final_norm is False
    assert len(weights.model) + len(weights.classifier) == len(state)
    clf = load_classifier(path, img_size=GEO["img_size"], num_frames=GEO["num_frames"], num_heads=WIDTHS["num_heads"]).eval()
    assert isinstance(clf.norm, torch.nn.Identity)  # mean pooling: no final encoder norm
    video = video_batch(gen)
    with torch.no_grad():
        torch.testing.assert_close(clf(video), ref_finetuned(state, video), rtol=0, atol=1e-5)


def test_missing_geometry_is_named(tmp_path):
    gen = torch.Generator().manual_seed(3)
    path = tmp_path / "bare.pth"
    torch.save(pretrain_state(gen), path)  # no args: clip size and heads are unknown
    with pytest.raises(WeightsError, match=r"img_size, num_frames, num_heads, decoder_num_heads.*--img-size N"):
        build_model(read_weights(path))
    model = build_model(read_weights(path), img_size=32, num_frames=4, num_heads=6, decoder_num_heads=3)
    assert model.cfg.num_tokens == NUM_TOKENS
    with pytest.raises(WeightsError, match=r"patch_size: weights 8, given 16"):
        build_model(read_weights(path), img_size=32, num_frames=4, num_heads=6, decoder_num_heads=3, patch_size=16)


def test_unknown_tensors_are_listed(tmp_path):
    gen = torch.Generator().manual_seed(4)
    state = pretrain_state(gen)
    state["encoder.blocks.0.gamma_1"] = torch.ones(WIDTHS["embed_dim"])  # layer scale: not in this MAE
    state["decoder.blocks.0.attn.scale"] = torch.ones(3, 1, 1)  # cosine attention
    path = tmp_path / "extra.pth"
    torch.save({"model": state}, path)
    with pytest.raises(WeightsError, match=r"2 tensors have no counterpart.*decoder\.blocks\.0\.attn\.scale.*encoder\.blocks\.0\.gamma_1"):
        read_weights(path)


def test_position_tables(tmp_path):
    gen = torch.Generator().manual_seed(5)
    state = pretrain_state(gen)
    state["encoder.pos_embed"] = sinusoid(NUM_TOKENS, WIDTHS["embed_dim"]).unsqueeze(0)
    torch.save({"model": state, "args": run_args()}, tmp_path / "fixed.pth")
    weights = read_weights(tmp_path / "fixed.pth")
    assert any("encoder.pos_embed" in note for note in weights.notes)  # accounted for: the model rebuilds it
    state["encoder.pos_embed"] = torch.randn(1, NUM_TOKENS, WIDTHS["embed_dim"], generator=gen)
    torch.save({"model": state}, tmp_path / "learned.pth")
    with pytest.raises(WeightsError, match="learned position table"):
        read_weights(tmp_path / "learned.pth")


def test_init_from_geometry_mismatch_names_both_values(tmp_path):
    gen = torch.Generator().manual_seed(6)
    torch.save({"model": pretrain_state(gen), "args": run_args()}, tmp_path / "ckpt.pth")
    with pytest.raises(WeightsError, match=r"geometry mismatch \(img_size: weights 32, config 64; embed_dim: weights 48, config 96\)"):
        init_from(VideoMAE(full_config(img_size=64, embed_dim=96)), tmp_path / "ckpt.pth")
    with pytest.raises(WeightsError, match=r"tubelet_size: weights 2, config 4"):
        init_from(VideoMAE(full_config(tubelet_size=4)), tmp_path / "ckpt.pth")
    model = VideoMAE(full_config())
    init_from(model, tmp_path / "ckpt.pth")
    assert torch.equal(model.mask_token, pretrain_state(torch.Generator().manual_seed(6))["mask_token"])


def test_shape_mismatch_and_missing_keys_are_listed(tmp_path):
    from adamae_rl.interop.weights import check_state

    model = VideoMAE(full_config())
    state = dict(model.state_dict())
    state["head.bias"] = torch.zeros(7)
    del state["mask_token"]
    state["extra.weight"] = torch.zeros(1)
    with pytest.raises(WeightsError, match=r"unexpected keys \['extra.weight'\], missing keys \['mask_token'\], "
                                           r"shape mismatches \[head.bias: weights \[7\], model \[384\]\]"):
        check_state(model, state, "test")


def test_sampler_options_must_match(tmp_path):
    gen = torch.Generator().manual_seed(7)
    torch.save({"model": pretrain_state(gen, sampler=True), "args": run_args()}, tmp_path / "adamae.pth")
    geometry = {"grid": GRID, "mask_ratio": 0.75, "embed_dim": WIDTHS["embed_dim"]}
    with pytest.raises(WeightsError, match=r"num_heads: weights 8, policy 1.*qkv_bias: weights False, policy True.*"
                                           r"norm_eps: weights 1e-05, policy 1e-06.*adaptive_official"):
        build_policy({"name": "adaptive", "init_from": str(tmp_path / "adamae.pth")}, geometry)
    policy = build_policy({"name": "adaptive", "num_heads": 8, "qkv_bias": False, "dropout": 0.1, "norm_eps": 1e-5,
                           "init_from": str(tmp_path / "adamae.pth")}, geometry)
    assert torch.equal(policy.pos_embed, pretrain_state(torch.Generator().manual_seed(7), sampler=True)["encoder.pos_embed_probs"])


def test_export_to_the_official_layout_round_trips_bit_identical(tmp_path):
    """toolkit -> official .pth -> toolkit: every tensor and the geometry come back unchanged, under
    exactly the official key scheme (AdaMAE's sampler included)."""
    from adamae_rl.interop import export_weights, write_weights

    torch.manual_seed(0)
    model = VideoMAE(full_config(norm_target=True))
    with torch.no_grad():
        for param in model.parameters():
            param.add_(0.05 * torch.randn_like(param))
    sampler = official_sampler()
    path = write_weights(export_weights(model, sampler), tmp_path / "checkpoint-799.pth", "official")

    stored = torch.load(path, weights_only=False)  # as the official code loads it
    assert set(stored["model"]) == set(pretrain_state(torch.Generator().manual_seed(0), sampler=True))
    back = read_weights(path)
    mine = model.state_dict()
    assert set(back.model) == set(mine) and all(torch.equal(back.model[k], mine[k]) for k in mine)
    policy = sampler.state_dict()
    assert set(back.policy) == set(policy) and all(torch.equal(back.policy[k], policy[k]) for k in policy)
    rebuilt = build_model(back)
    assert rebuilt.cfg == model.cfg


def test_official_fine_tuned_files_round_trip(tmp_path):
    from adamae_rl.interop import write_weights

    gen = torch.Generator().manual_seed(4)
    path = tmp_path / "finetuned.pth"
    torch.save({"model": finetuned_state(gen), "args": run_args()}, path)
    first = read_weights(path)
    again = read_weights(write_weights(first, tmp_path / "again.pth", "official"))
    for part in ("model", "classifier"):
        a, b = getattr(first, part), getattr(again, part)
        assert set(a) == set(b) and all(torch.equal(a[k], b[k]) for k in a)
    assert again.final_norm is False


def test_official_export_refuses_what_the_official_code_cannot_hold(tmp_path):
    from adamae_rl.interop import export_weights, write_weights

    for field, value in (("attn_bias", "distance"), ("pos_embed", "learned")):
        model = VideoMAE(full_config(**{field: value}))
        with pytest.raises(WeightsError, match=field):
            write_weights(export_weights(model), tmp_path / f"{field}.pth", "official")
