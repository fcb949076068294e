"""``python -m adamae_rl.finetune``: probe and fine-tuning of a pre-training run, eval.json."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers_cli import run_cli, smoke_run

from adamae_rl.evaluation.finetuning import FinetuneSettings
from adamae_rl.evaluation.probe import ProbeSettings
from adamae_rl.evaluation.run_eval import EvalOptions, evaluate_run

# A few seconds of evaluation on the smoke run's 32 px, 8-frame clips.
QUICK = dict(train_clips=24, val_clips=16, progress=False, probe=ProbeSettings(batch_size=8),
             finetune=FinetuneSettings(steps=3, batch_size=8, warmup_steps=1))


@pytest.fixture(scope="module")
def smoke_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return smoke_run(tmp_path_factory.mktemp("smoke"))


def _check_scores(scores: dict) -> None:
    assert 0.0 <= scores["top1"] <= scores["top5"] <= 1.0


def test_probe_and_finetune_write_eval_json(smoke_dir: Path) -> None:
    report = evaluate_run(smoke_dir, EvalOptions(random_init=True, **QUICK))
    on_disk = json.loads((smoke_dir / "eval.json").read_text())
    assert on_disk["top1"] == report["top1"] and on_disk["primary"] == "finetune"
    assert on_disk["num_classes"] == 8 and on_disk["train_clips"] == 24 and on_disk["val_clips"] == 16
    assert on_disk["step"] == 12
    for encoder in ("pretrained", "random_init"):
        assert sorted(on_disk[encoder]) == ["finetune", "probe"]
        for scores in on_disk[encoder].values():
            _check_scores(scores)
    assert on_disk["pretrained"]["finetune"]["settings"]["steps"] == 3


def test_evaluation_is_deterministic(smoke_dir: Path, tmp_path: Path) -> None:
    options = EvalOptions(**QUICK)
    first = evaluate_run(smoke_dir, options, tmp_path / "a.json")
    second = evaluate_run(smoke_dir, options, tmp_path / "b.json")
    for protocol in ("probe", "finetune"):
        assert first["pretrained"][protocol]["top1"] == second["pretrained"][protocol]["top1"]
    assert first["pretrained"]["finetune"]["final_train_loss"] == second["pretrained"]["finetune"]["final_train_loss"]


def test_errors_name_the_problem(smoke_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="last.pt does not exist"):
        evaluate_run(tmp_path, EvalOptions(**QUICK))
    with pytest.raises(ValueError, match="protocols must be"):
        EvalOptions(protocols=("knn",))
    with pytest.raises(ValueError, match="give both --train-list and --val-list"):
        evaluate_run(smoke_dir, EvalOptions(train_list="x.txt", **QUICK))


def test_labelled_video_lists(smoke_dir: Path, tmp_path: Path) -> None:
    """``data=video`` lists with labels replace the run's synthetic clips (decord-decoded mp4s)."""
    from adamae_rl.data.make_synthetic import write_split

    train_list = write_split(tmp_path, "train", 12, seed=0, frames=32, size=32, max_shapes=1)
    val_list = write_split(tmp_path, "val", 6, seed=10_000, frames=32, size=32, max_shapes=1)
    labels = [int(line.split()[1]) for f in (train_list, val_list) for line in f.read_text().splitlines()]
    options = EvalOptions(protocols=("probe",), train_list=str(train_list), val_list=str(val_list),
                          **{**QUICK, "train_clips": None, "val_clips": None})
    report = evaluate_run(smoke_dir, options, tmp_path / "eval.json")
    assert report["data"] == "video" and report["num_classes"] == max(labels) + 1
    assert report["train_clips"] == 12 and report["val_clips"] == 6
    _check_scores(report["pretrained"]["probe"])
    unlabelled = tmp_path / "unlabelled.txt"
    unlabelled.write_text("".join(f"{line.split()[0]} 0 -1\n" for line in train_list.read_text().splitlines()))
    lists = dict(train_list=str(unlabelled), val_list=str(unlabelled))
    with pytest.raises(ValueError, match="unlabelled lines"):
        evaluate_run(smoke_dir, EvalOptions(protocols=("probe",), **lists, **{**QUICK, "train_clips": None, "val_clips": None}))


@pytest.mark.slow
def test_cli_prints_and_writes(smoke_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    result = run_cli("adamae_rl.finetune", str(smoke_dir), "--protocol", "probe", "--random-init", "--train-clips", "24",
                     "--val-clips", "16", "--no-progress", "--out", str(out), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "pretrained  probe    top1=" in result.stdout and "random_init probe    top1=" in result.stdout
    report = json.loads(out.read_text())
    _check_scores(report["pretrained"]["probe"])
    _check_scores(report["random_init"]["probe"])
    missing = run_cli("adamae_rl.finetune", str(tmp_path / "nope"), cwd=tmp_path)
    assert missing.returncode == 2 and "nope does not exist: give a pre-training run directory" in missing.stderr
    assert "Traceback" not in missing.stderr


def test_report_states_chance_and_standard_error() -> None:
    from adamae_rl.finetune import format_report

    report = {"run_dir": "r", "step": 5, "policy": "random", "mask_ratio": 0.9, "train_clips": 64, "val_clips": 100,
              "num_classes": 8, "pretrained": {"probe": {"top1": 0.5, "top5": 0.9}}}
    text = format_report(report)
    assert "chance top1=0.1250" in text
    assert "top1=0.5000 (s.e. 0.0500)" in text  # sqrt(0.5 * 0.5 / 100)


@pytest.mark.slow
def test_two_process_fine_tuning_scores_like_one(smoke_dir: Path, tmp_path: Path) -> None:
    """torchrun with 2 processes x 4 clips = 1 process x 8 clips: the same optimizer steps (DDP
    averages the halves' gradients), the validation clips split and gathered (11: uneven halves),
    so the same accuracy over the whole list."""
    import subprocess
    import sys

    from helpers_cli import cli_env

    common = [str(smoke_dir), "--protocol", "finetune", "--steps", "3", "--train-clips", "24", "--val-clips", "11",
              "--device", "cpu", "--no-progress"]
    one = run_cli("adamae_rl.finetune", *common, "--batch-size", "8", "--out", str(tmp_path / "one.json"), cwd=tmp_path)
    assert one.returncode == 0, one.stderr[-2000:]
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m",
                          "adamae_rl.finetune", *common, "--batch-size", "4", "--out", str(tmp_path / "two.json")],
                         cwd=tmp_path, env=cli_env(), capture_output=True, text=True, timeout=300)
    assert two.returncode == 0, two.stderr[-2000:]
    a = json.loads((tmp_path / "one.json").read_text())
    b = json.loads((tmp_path / "two.json").read_text())
    assert (a["world_size"], b["world_size"], b["val_clips"]) == (1, 2, 11)
    for key in ("top1", "top5"):
        assert a["pretrained"]["finetune"][key] == b["pretrained"]["finetune"][key]
    assert a["pretrained"]["finetune"]["final_train_loss"] == pytest.approx(b["pretrained"]["finetune"]["final_train_loss"], rel=1e-4)


def test_cli_recipe_with_overrides() -> None:
    from adamae_rl.finetune import finetune_settings, options_from_args, parse_args

    args = parse_args(["src", "--recipe", "ssv2_vit_b", "--steps", "5", "--mixup", "0", "--test-views", "1x1"])
    settings = finetune_settings(args)
    assert (settings.steps, settings.epochs, settings.mixup, settings.cutmix, settings.test_views) == (5, None, 0.0, 1.0, "1x1")
    assert settings.schedule(steps_per_epoch=100) == (5, 5)  # 5 warmup epochs, capped at the length
    options = options_from_args(args)
    assert options.temporal_mode == "segments" and options.finetune is not None
    assert options_from_args(parse_args(["src", "--recipe", "k400_vit_b"])).sampling_rate == 4
    with pytest.raises(SystemExit):
        parse_args(["src", "--steps", "5", "--epochs", "2"])
    with pytest.raises(ValueError, match="must look like TxS"):
        finetune_settings(parse_args(["src", "--test-views", "2by3"]))


def test_report_says_plainly_when_pretraining_does_not_show() -> None:
    from adamae_rl.finetune import format_report

    report = {"run_dir": "r", "step": 400, "policy": "random", "mask_ratio": 0.9, "train_clips": 1024, "val_clips": 256,
              "num_classes": 8, "pretrained": {"probe": {"top1": 0.117, "top5": 0.66}},
              "random_init": {"probe": {"top1": 0.199, "top5": 0.71}}}
    text = format_report(report)
    assert "probe: pre-trained - random init = -8.2 points (-2.6 s.e., unpaired)" in text
    assert "not above its random initialisation" in text and "after 400 pre-training steps" in text
    report["pretrained"]["probe"]["top1"] = 0.45
    assert "not above" not in format_report(report)
