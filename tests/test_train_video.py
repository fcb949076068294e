"""End to end: the training app on real mp4 files written by make_synthetic, with a bad file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers_cli import run_cli


def make_set_with_broken_file(tmp_path: Path) -> tuple[Path, Path]:
    """12 train + 4 val mp4 clips from make_synthetic, plus a broken file in the train list."""
    made = run_cli(
        "adamae_rl.data.make_synthetic", "shapes", "--num-videos", "12", "--val-videos", "4",
        "--frames", "24", "--size", "32", cwd=tmp_path,
    )
    assert made.returncode == 0, made.stderr[-2000:]
    train_list = tmp_path / "shapes" / "train.txt"
    (tmp_path / "shapes" / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 truncated")
    train_list.write_text(train_list.read_text() + "broken.mp4 0\n")
    return train_list, tmp_path / "shapes" / "val.txt"


@pytest.mark.slow
def test_train_on_generated_mp4_set_with_a_bad_file(tmp_path: Path) -> None:
    train_list, val_list = make_set_with_broken_file(tmp_path)
    result = run_cli(
        "adamae_rl.train", "experiment=smoke", "data=video", f"data.train_list={train_list}",
        f"data.val_list={val_list}", "data.num_workers=1", "run_dir=run", "trainer.max_steps=30", cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["data"] == "video" and summary["steps"] == 30
    assert summary["data_skipped"] == 1  # 30 steps x 4 clips cover every file of the 13 several times
    assert summary["fg_enrichment"] is not None and summary["fg_enrichment"] > 0  # from the on-disk masks
    warnings = [line for line in (tmp_path / "run" / "train.log").read_text().splitlines() if "skipped bad video" in line]
    assert len(warnings) == 1 and "broken.mp4" in warnings[0]

    strict = run_cli(
        "adamae_rl.train", "experiment=smoke", "data=video", f"data.train_list={train_list}",
        f"data.val_list={val_list}", "data.num_workers=1", "data.strict=true", "run_dir=strict",
        "trainer.max_steps=30", cwd=tmp_path,
    )
    assert strict.returncode == 2
    assert "Traceback" not in strict.stderr
    errors = [line for line in strict.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "broken.mp4" in errors[0]


# The official AdaMAE ViT-B pre-training recipes (docs/pretraining.md): SSv2 and Kinetics-400 differ
# only in the frame stride.
PAPER_PRESETS = {"paper_ssv2_vit_b": 2, "paper_k400_vit_b": 4}


@pytest.mark.parametrize("preset, stride", PAPER_PRESETS.items())
def test_paper_presets_hold_the_official_recipe(preset: str, stride: int) -> None:
    from hydra import compose, initialize_config_dir

    from adamae_rl.builders import plan_run
    from adamae_rl.config import plain
    from adamae_rl.schema import validate_config
    from adamae_rl.train import CONFIG_DIR

    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = plain(compose("config", overrides=[f"experiment={preset}", "data.train_list=x.txt"]))
    validate_config(cfg)
    assert cfg["model"]["preset"] == "vit_b" and cfg["mask_ratio"] == 0.95
    assert cfg["policy"] == {**cfg["policy"], "name": "adaptive", "depth": 1, "num_heads": 8, "qkv_bias": False, "dropout": 0.1}
    assert cfg["objective"] == {"name": "adamae", "coef": 1e-4}
    assert (cfg["data"]["temporal_mode"], cfg["data"]["sampling_rate"], cfg["data"]["flip"]) == ("dense", stride, False)
    assert cfg["data"]["scales"] == [1.0, 0.875, 0.75, 0.66]
    # 8 GPUs on SSv2's 168,913 videos: 32 per GPU x 8 accumulated = 2,048; 82 steps an epoch.
    plan = plan_run(cfg, world_size=8, batches_per_epoch=168_913 // (32 * 8))
    assert (plan.global_batch, plan.accum_steps, plan.max_steps, plan.warmup_steps) == (2048, 8, 800 * 82, 40 * 82)
    assert plan.lr == pytest.approx(1.5e-4 * 2048 / 256) and plan.min_lr == pytest.approx(1e-5 * 2048 / 256)
    optim = cfg["optim"]
    assert (optim["weight_decay"], optim["betas"], optim["clip_grad"], optim["eps"]) == (0.05, [0.9, 0.95], None, 1e-8)


@pytest.mark.slow
@pytest.mark.parametrize("preset", PAPER_PRESETS)
def test_paper_presets_run_two_steps_of_vit_b_on_cpu(tmp_path: Path, preset: str) -> None:
    made = run_cli(
        "adamae_rl.data.make_synthetic", "clips", "--num-videos", "4", "--val-videos", "2",
        "--frames", "70", "--size", "64", cwd=tmp_path,
    )
    assert made.returncode == 0, made.stderr[-2000:]
    result = run_cli(
        "adamae_rl.train", f"experiment={preset}", "data.train_list=clips/train.txt", "data.val_list=clips/val.txt",
        "trainer.max_epochs=null", "trainer.max_steps=2", "trainer.batch_size=1", "trainer.global_batch_size=2",
        "data.num_workers=0", "trainer.eval_batches=1", "trainer.device=cpu", "trainer.precision=fp32",
        "run_dir=run", cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert (summary["model"], summary["steps"], summary["accum_steps"], summary["global_batch"]) == ("vit_b", 2, 2, 2)
    assert 0 < summary["final_loss_recon"] < 10
