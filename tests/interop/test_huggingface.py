"""Hugging Face VideoMAE: export loads in transformers, same predictions, exact round trips."""

from __future__ import annotations

import json
import sys

import pytest
import torch

from adamae_rl.interop import build_model, export_weights, read_weights, write_weights
from adamae_rl.models import build_mae
from adamae_rl.policies import build_policy

transformers = pytest.importorskip("transformers")

SMALL = dict(img_size=32, num_frames=4, patch_size=8, depth=2, decoder_depth=2)  # grid (2, 4, 4): 32 tokens


def trained_like(seed: int = 0, **overrides) -> torch.nn.Module:
    """A small MAE with every weight moved off its initial value (biases, norms, mask token)."""
    torch.manual_seed(seed)
    model = build_mae("tiny", **{**SMALL, **overrides}).eval()
    with torch.no_grad():
        for param in model.parameters():
            param.add_(0.05 * torch.randn_like(param))
    return model


def clip_and_mask(model, seed: int = 1, batch: int = 2, num_masked: int = 24):
    gen = torch.Generator().manual_seed(seed)
    cfg = model.cfg
    video = torch.randn(batch, cfg.in_chans, cfg.num_frames, cfg.img_size, cfg.img_size, generator=gen)
    mask = torch.zeros(batch, cfg.num_tokens, dtype=torch.bool)
    for row in mask:
        row[torch.randperm(cfg.num_tokens, generator=gen)[:num_masked]] = True
    return video, mask


def hf_predict(hf, video, mask):
    # Hugging Face takes frames before channels: [B, T, C, H, W].
    with torch.no_grad():
        return hf(pixel_values=video.permute(0, 2, 1, 3, 4), bool_masked_pos=mask)


def test_export_loads_in_transformers_and_predicts_the_same(tmp_path):
    model = trained_like()
    write_weights(export_weights(model), tmp_path / "hf", "hf")
    hf, info = transformers.VideoMAEForPreTraining.from_pretrained(tmp_path / "hf", output_loading_info=True)
    assert not any(info[k] for k in ("missing_keys", "unexpected_keys", "mismatched_keys")), info
    hf.eval()
    assert hf.config.layer_norm_eps == 1e-6 and hf.config.use_mean_pooling is False
    video, mask = clip_and_mask(model)
    with torch.no_grad():
        ours = model(video, mask)
        ours_loss = (model.token_errors(video, mask).sum(1) / mask[0].sum()).mean()

    # Hugging Face builds its decoder's final LayerNorm with eps 1e-5 whatever the config says
    # (VideoMAE: 1e-6). That is the only difference: with that one eps set, predictions agree.
    assert hf.decoder.norm.eps == 1e-5
    gap = (hf_predict(hf, video, mask).logits - ours).abs().max().item()
    assert 0 < gap < 1e-3
    hf.decoder.norm.eps = 1e-6
    out = hf_predict(hf, video, mask)
    torch.testing.assert_close(out.logits, ours, rtol=0, atol=1e-5)
    torch.testing.assert_close(out.loss, ours_loss, rtol=0, atol=1e-5)  # same normalized-pixel targets too


def test_round_trip_is_bit_identical(tmp_path):
    model = trained_like(seed=3)
    geometry = {"grid": model.cfg.grid, "mask_ratio": 0.75, "embed_dim": model.cfg.embed_dim}
    policy = build_policy({"name": "adaptive", "num_heads": 8, "qkv_bias": False, "dropout": 0.1, "norm_eps": 1e-5}, geometry)
    with torch.no_grad():
        for param in policy.parameters():
            param.add_(0.05 * torch.randn_like(param))
    write_weights(export_weights(model, policy), tmp_path / "hf", "hf")
    back = read_weights(tmp_path / "hf")
    again = build_model(back)
    assert again.cfg == model.cfg
    ours, theirs = model.state_dict(), again.state_dict()
    assert ours.keys() == theirs.keys()
    for key in ours:
        assert torch.equal(ours[key], theirs[key]), key
    # The sampler travels next to the Hugging Face model and comes back unchanged.
    assert back.policy.keys() == policy.state_dict().keys()
    assert all(torch.equal(back.policy[k], v) for k, v in policy.state_dict().items())
    assert back.policy_config["num_heads"] == 8 and back.policy_config["norm_eps"] == 1e-5


def test_reads_a_directory_written_by_transformers(tmp_path):
    """transformers' own save (its current parameter names) imports with the same predictions."""
    config = transformers.VideoMAEConfig(
        image_size=32, patch_size=8, num_frames=4, tubelet_size=2, hidden_size=64, num_hidden_layers=2,
        num_attention_heads=4, intermediate_size=256, decoder_hidden_size=32, decoder_num_hidden_layers=1,
        decoder_num_attention_heads=2, decoder_intermediate_size=128, layer_norm_eps=1e-6, use_mean_pooling=False,
    )
    torch.manual_seed(0)
    hf = transformers.VideoMAEForPreTraining(config).eval()
    with torch.no_grad():
        for param in hf.parameters():
            param.add_(0.05 * torch.randn_like(param))
    hf.save_pretrained(tmp_path / "saved")
    saved = json.loads((tmp_path / "saved" / "config.json").read_text())
    assert saved["model_type"] == "videomae"

    model = build_model(read_weights(tmp_path / "saved")).eval()
    assert (model.cfg.embed_dim, model.cfg.num_heads, model.cfg.decoder_num_heads) == (64, 4, 2)
    video, mask = clip_and_mask(model, seed=2)
    hf.decoder.norm.eps = 1e-6
    with torch.no_grad():
        torch.testing.assert_close(model(video, mask), hf_predict(hf, video, mask).logits, rtol=0, atol=1e-5)

    # VideoMAEModel (the encoder alone, no "videomae." prefix): every token, no mask.
    hf.videomae.save_pretrained(tmp_path / "encoder")
    encoder = read_weights(tmp_path / "encoder")
    assert not encoder.has_decoder
    fresh = build_mae("tiny", img_size=32, num_frames=4, patch_size=8, embed_dim=64, depth=2, num_heads=4,
                      decoder_embed_dim=32, decoder_depth=1, decoder_num_heads=2)
    from adamae_rl.interop import init_from

    init_from(fresh, tmp_path / "encoder")
    with torch.no_grad():
        expected = hf.videomae(pixel_values=video.permute(0, 2, 1, 3, 4)).last_hidden_state
        torch.testing.assert_close(fresh.eval().forward_encoder(video), expected, rtol=0, atol=1e-5)


def test_transformers_is_imported_only_when_used(tmp_path):
    import subprocess

    code = (
        "import sys, torch; import adamae_rl.interop as i; import adamae_rl.convert; "
        "from adamae_rl.models import build_mae; m = build_mae('tiny', img_size=32, num_frames=4); "
        f"i.write_weights(i.export_weights(m), r'{tmp_path / 'hf'}', 'hf'); i.read_weights(r'{tmp_path / 'hf'}'); "
        "print('transformers' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def test_reads_transformers5_bias_names(tmp_path):
    """q/v biases stored as ``query.bias``/``value.bias`` (transformers 5 modules) read the same."""
    from safetensors.torch import load_file, save_file

    model = trained_like(seed=4)
    write_weights(export_weights(model), tmp_path / "hf", "hf")
    file = tmp_path / "hf" / "model.safetensors"
    renamed = {k.replace("attention.q_bias", "attention.query.bias").replace("attention.v_bias", "attention.value.bias"): v
               for k, v in load_file(file).items()}
    assert any(k.endswith("query.bias") for k in renamed)
    save_file(renamed, file)
    again = build_model(read_weights(tmp_path / "hf"))
    assert all(torch.equal(v, again.state_dict()[k]) for k, v in model.state_dict().items())
