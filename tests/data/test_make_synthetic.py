"""make_synthetic writes playable mp4s, lists and masks that agree with the renderer."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from adamae_rl.data.factory import VAL_SEED_OFFSET, ClipGeometry
from adamae_rl.data.make_synthetic import main
from adamae_rl.data.synthetic import pixel_mask_to_tokens, render_clip
from adamae_rl.data.transforms import denormalize
from adamae_rl.data.video import build_video_dataset, dense_indices, load_fg_mask, read_video_list

FRAMES, SIZE = 24, 32
GEOMETRY = ClipGeometry(num_frames=8, img_size=SIZE, patch_size=8, tubelet_size=2)


@pytest.fixture(scope="module")
def synthetic_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synthetic")
    shape = ["--frames", str(FRAMES), "--size", str(SIZE)]
    main([str(out), "--num-videos", "3", "--val-videos", "2", "--seed", "5", *shape])
    return out


def test_writes_videos_masks_and_lists(synthetic_dir: Path) -> None:
    for split, count, seed in (("train", 3, 5), ("val", 2, 5 + VAL_SEED_OFFSET)):
        entries = read_video_list(synthetic_dir / f"{split}.txt")
        assert len(entries) == count
        for index, entry in enumerate(entries):
            assert Path(entry.path) == synthetic_dir / split / f"clip_{index:06d}.mp4"
            _, fg, label = render_clip(seed, index, FRAMES, SIZE)
            assert entry.label == label
            assert torch.equal(load_fg_mask(Path(entry.path).with_suffix(".fg.npz")), fg)


def test_uncropped_read_matches_renderer(synthetic_dir: Path) -> None:
    cfg = {"val_list": str(synthetic_dir / "val.txt"), "sampling_rate": 2}
    dataset = build_video_dataset(cfg, split="val", geometry=GEOMETRY, seed=0)
    frames = dense_indices(FRAMES, GEOMETRY.num_frames, 2, None)  # val: centre window, full frame
    for index in range(len(dataset)):
        item = dataset[(index, 0)]
        pixels, fg, label = render_clip(5 + VAL_SEED_OFFSET, index, FRAMES, SIZE)
        tokens = pixel_mask_to_tokens(fg[frames], GEOMETRY.patch_size, GEOMETRY.tubelet_size)
        assert (item["fg_tokens"] != tokens).float().mean() <= 0.02
        assert int(item["label"]) == label
        # H.264 at high quality: small mean error, chroma subsampling blurs shape edges a little.
        assert (denormalize(item["video"]) - pixels[:, frames]).abs().mean() < 0.03


def test_rejects_odd_size(tmp_path: Path) -> None:
    with pytest.raises(SystemExit):
        main([str(tmp_path), "--num-videos", "1", "--size", "33"])


@pytest.mark.slow
def test_cli_module_entry_point(tmp_path: Path) -> None:
    out = tmp_path / "cli"
    module = [sys.executable, "-m", "adamae_rl.data.make_synthetic"]
    args = module + [str(out), "--num-videos", "2", "--frames", "8", "--size", "16"]
    result = subprocess.run(args, capture_output=True, text=True, check=True)
    assert "train.txt" in result.stdout
    assert len(read_video_list(out / "train.txt")) == 2 and not (out / "val.txt").exists()


def _make(out: Path, *extra: str) -> subprocess.CompletedProcess:
    args = [str(out), "--num-videos", "1", "--frames", "4", "--size", "16", *extra]
    return subprocess.run([sys.executable, "-m", "adamae_rl.data.make_synthetic", *args], capture_output=True, text=True)


def test_never_overwrites_a_users_files(tmp_path: Path) -> None:
    (tmp_path / "train.txt").write_text("mine.mp4 3\n")
    result = _make(tmp_path)
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("error:") == 1 and "train.txt exists and was not written by" in result.stderr
    assert "--force" in result.stderr and "Traceback" not in result.stderr
    assert (tmp_path / "train.txt").read_text() == "mine.mp4 3\n"
    assert not (tmp_path / "train").exists()  # refused before writing anything
    # a folder of someone else's videos under the split's name is refused the same way
    other = tmp_path / "other"
    (other / "train").mkdir(parents=True)
    (other / "train" / "holiday.mp4").write_bytes(b"x")
    assert _make(other).returncode == 2 and (other / "train" / "holiday.mp4").read_bytes() == b"x"


def test_rerun_rewrites_its_own_files_and_force_overwrites(tmp_path: Path) -> None:
    assert _make(tmp_path).returncode == 0
    assert _make(tmp_path).returncode == 0  # its own files: rewritten without --force
    (tmp_path / "val.txt").write_text("mine\n")
    assert _make(tmp_path, "--val-videos", "1").returncode == 2
    assert (tmp_path / "val.txt").read_text() == "mine\n"
    assert _make(tmp_path, "--val-videos", "1", "--force").returncode == 0
    assert (tmp_path / "val.txt").read_text().startswith("val/clip_000000.mp4")


@pytest.mark.parametrize("args, needle", [
    (["--size", "100000"], "renders more than 1 GiB per video"),  # used to end in an allocator traceback
    (["--max-shapes", "0"], "--max-shapes must be >= 1"),  # used to end in a torch traceback
])
def test_bad_sizes_are_one_line(tmp_path: Path, args: list[str], needle: str) -> None:
    result = _make(tmp_path / "out", *args)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert needle in result.stderr and not (tmp_path / "out").exists()
