"""``model.init_from=`` a converted checkpoint: ``python -m adamae_rl.train`` continues from it."""

from __future__ import annotations

import json

import pytest
import torch
from helpers_cli import run_cli, smoke_config

from adamae_rl.builders import build_model as build_from_config
from adamae_rl.interop import WeightsError, export_weights, write_weights
from adamae_rl.models import build_mae
from adamae_rl.builders import build_run
from adamae_rl.utils.distributed import Process

# The smoke experiment's MAE: tiny widths on 32 px, 8-frame clips, raw-pixel targets.
SMOKE_MAE = dict(img_size=32, num_frames=8, norm_target=False)


def source_model() -> torch.nn.Module:
    """A "pre-trained" MAE: tiny weights moved far from any fresh initialisation."""
    torch.manual_seed(123)
    model = build_mae("tiny", **SMOKE_MAE)
    with torch.no_grad():
        for param in model.parameters():
            param.add_(0.1 * torch.randn_like(param))
    return model.eval()


def first_batch_loss(cfg: dict, model: torch.nn.Module | None = None) -> float:
    """``loss_recon`` of the trainer's first batch and mask, as ``train_step`` draws them.

    With ``model`` given, that model scores the batch instead of the run's own MAE.
    """
    parts = build_run(cfg, torch.device("cpu"), Process())
    td = parts.policy(parts.env.reset())
    scorer = model or parts.model
    with torch.no_grad():
        errors = scorer.token_errors(td.get("video"), td.get("mask"))
    return float((errors.sum(1) / td.get("mask")[0].sum()).mean())


@pytest.mark.slow
def test_train_continues_from_a_converted_checkpoint(tmp_path):
    source = source_model()
    write_weights(export_weights(source), tmp_path / "hf", "hf")  # a published-style directory
    converted = run_cli("adamae_rl.convert", "hf", "pretrained.pt", cwd=tmp_path, timeout=120)
    assert converted.returncode == 0, converted.stderr

    # VideoMAE weights need VideoMAE's attention (the tiny app config's default is the distance bias).
    overrides = [f"model.init_from={tmp_path / 'pretrained.pt'}", "model.attn_bias=none", "trainer.max_steps=2", "trainer.log_every=1",
                 "trainer.eval_every=100", f"run_dir={tmp_path / 'run'}"]
    cfg = smoke_config(*overrides)
    expected = first_batch_loss(cfg, model=source)
    assert first_batch_loss(cfg) == pytest.approx(expected, rel=1e-6)  # the run's MAE is the source
    fresh = first_batch_loss(smoke_config(*overrides[1:]))
    assert abs(fresh - expected) > 1e-3  # so the comparison below can tell a fresh start apart

    out = run_cli("adamae_rl.train", *overrides, "experiment=smoke", cwd=tmp_path, timeout=300)
    assert out.returncode == 0, out.stderr
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    step1 = next(r for r in records if r.get("step") == 1 and "train/loss_recon" in r)
    assert step1["train/loss_recon"] == pytest.approx(expected, rel=1e-5)


def test_init_from_geometry_mismatch_through_config(tmp_path):
    write_weights(export_weights(source_model()), tmp_path / "src.pt", "adamae_rl")
    cfg = smoke_config(f"model.init_from={tmp_path / 'src.pt'}", "model.img_size=64", "model.tubelet_size=4")
    with pytest.raises(WeightsError, match=r"img_size: weights 32, config 64; tubelet_size: weights 2, config 4"):
        build_from_config(cfg["model"])
    assert build_from_config(cfg["model"], load_weights=False).cfg.img_size == 64


def test_policy_init_from_through_config(tmp_path):
    from adamae_rl.builders import build_policy_from_config

    model = source_model()
    cfg = smoke_config("policy=adaptive_official")
    assert cfg["policy"]["num_heads"] == 8 and cfg["policy"]["qkv_bias"] is False
    torch.manual_seed(5)
    sampler = build_policy_from_config(cfg["policy"], model, cfg["mask_ratio"])
    write_weights(export_weights(model, sampler), tmp_path / "with_sampler.pt", "adamae_rl")

    cfg = smoke_config("policy=adaptive_official", f"policy.init_from={tmp_path / 'with_sampler.pt'}")
    loaded = build_policy_from_config(cfg["policy"], model, cfg["mask_ratio"])
    assert all(torch.equal(v, loaded.state_dict()[k]) for k, v in sampler.state_dict().items())
    cfg = smoke_config(f"+policy.init_from={tmp_path / 'with_sampler.pt'}")  # the default sampler: 2 heads, q/v bias
    with pytest.raises(WeightsError, match=r"num_heads: weights 8, policy 2; qkv_bias: weights False, policy True"):
        build_policy_from_config(cfg["policy"], model, cfg["mask_ratio"])


def test_a_run_checkpoint_carries_its_presets_heads(tmp_path):
    # A tiny run records model.preset=tiny but not num_heads (the preset's 4); no tensor shape
    # tells heads, so loading into 8 heads used to succeed with different outputs.
    from adamae_rl.interop import init_from
    from adamae_rl.interop.weights import WeightsError
    from adamae_rl.models.presets import build_mae

    small = dict(img_size=32, num_frames=4)
    source = build_mae("tiny", **small)
    run_cfg = {"model": {"preset": "tiny", **small, "init_from": None}, "policy": {"name": "random"}}
    torch.save({"config": run_cfg, "model": source.state_dict(), "step": 1}, tmp_path / "last.pt")
    with pytest.raises(WeightsError, match="num_heads: weights 4, config 8"):
        init_from(build_mae("tiny", num_heads=8, **small), tmp_path / "last.pt")
    with pytest.raises(WeightsError, match="decoder_num_heads: weights 2, config 4"):
        init_from(build_mae("tiny", decoder_num_heads=4, **small), tmp_path / "last.pt")
    target = build_mae("tiny", **small)
    init_from(target, tmp_path / "last.pt")
    assert all(torch.equal(a, b) for a, b in zip(source.state_dict().values(), target.state_dict().values()))


def test_non_finite_weights_are_named_as_the_files_fault(tmp_path):
    from adamae_rl.interop import init_from
    from adamae_rl.interop.weights import WeightsError
    from adamae_rl.models.presets import build_mae

    small = dict(img_size=32, num_frames=4)
    state = build_mae("tiny", **small).state_dict()
    state["blocks.0.attn.proj.weight"][0, 0] = float("nan")
    run_cfg = {"model": {"preset": "tiny", **small}, "policy": {"name": "random"}}
    torch.save({"config": run_cfg, "model": state, "step": 1}, tmp_path / "nan.pt")
    with pytest.raises(WeightsError, match=r"non-finite values \(NaN or inf\) in 1 tensors \['blocks.0.attn.proj.weight'\]"):
        init_from(build_mae("tiny", **small), tmp_path / "nan.pt")
