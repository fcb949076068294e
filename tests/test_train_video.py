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
