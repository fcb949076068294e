"""data.prepare: re-encoded lists keep frames, masks and labels; bad files are named; reruns resume."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from helpers_cli import smoke_run

from adamae_rl.data.decoders import open_video, read_frames
from adamae_rl.data.make_synthetic import main as make_synthetic
from adamae_rl.data.prepare import EncodeOptions, kept_frames, main, prepare
from adamae_rl.data.synthetic import render_clip
from adamae_rl.data.video import load_fg_mask, read_video_list

FRAMES, SIZE, VIDEOS = 24, 64, 5


@pytest.fixture
def source(tmp_path: Path) -> Path:
    """``VIDEOS`` synthetic mp4s (24 frames, 64 px, masks beside them) plus a truncated and a missing file."""
    make_synthetic([str(tmp_path / "src"), "--num-videos", str(VIDEOS), "--frames", str(FRAMES),
                    "--size", str(SIZE)])
    data = (tmp_path / "src" / "train" / "clip_000000.mp4").read_bytes()
    (tmp_path / "src" / "broken.mp4").write_bytes(data[: len(data) // 3])
    list_file = tmp_path / "src" / "train.txt"
    list_file.write_text(list_file.read_text() + "broken.mp4 1\nnothing_here.mp4 0 -1\n")
    return list_file


def test_kept_frames() -> None:
    assert kept_frames(6, 1.0) == [0, 1, 2, 3, 4, 5]
    assert kept_frames(24, 2.0) == list(range(0, 24, 2))
    assert kept_frames(10, 2.5) == [0, 2, 5, 7]  # floor(j * 2.5)


def test_prepare_scales_resamples_and_keeps_masks(tmp_path: Path, source: Path, capsys) -> None:
    main([str(source), str(tmp_path / "out"), "--short-side", "48", "--fps", "12.5", "--workers", "2", "--no-progress"])
    out = capsys.readouterr()
    assert "prepared 5 videos, 0 already done, 2 bad files skipped" in out.out
    assert "broken.mp4: cannot open as video" in out.err and "nothing_here.mp4: missing file" in out.err
    skipped = (tmp_path / "out" / "skipped.txt").read_text().splitlines()
    assert sorted(line.split("\t")[0].rsplit("/", 1)[-1] for line in skipped) == ["broken.mp4", "nothing_here.mp4"]

    entries = read_video_list(tmp_path / "out" / "train.txt")
    originals = read_video_list(source)[:VIDEOS]
    assert [e.label for e in entries] == [e.label for e in originals]
    for index, entry in enumerate(entries):
        pixels, fg, _ = render_clip(0, index, FRAMES, SIZE, 3)  # make_synthetic's train clips: seed 0
        with open_video(entry.path, "pyav") as video:
            assert video.num_frames == FRAMES // 2  # 25 fps -> 12.5 fps: every second frame
            frames = read_frames(video, list(range(FRAMES // 2)))
        assert frames.shape == (FRAMES // 2, 48, 48, 3)
        # Output frame j shows source frame 2j, scaled: compare with the rendered frame, area-scaled.
        want = F.interpolate(pixels[:, ::2].permute(1, 0, 2, 3), size=(48, 48), mode="area") * 255
        diff = (frames.permute(0, 3, 1, 2).float() - want).abs().mean()
        assert diff < 8, float(diff)
        assert torch.equal(load_fg_mask(Path(entry.path).with_suffix(".fg.npz")), fg[::2])


def test_rerun_skips_finished_videos_and_refuses_other_options(tmp_path: Path, source: Path, capsys) -> None:
    out = tmp_path / "out"
    options = EncodeOptions(short_side=32)
    first = prepare(source, out, options, progress=False)
    assert (first.done, first.already, len(first.skipped)) == (VIDEOS, 0, 2)
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*.mp4")}
    victim = next(iter(sorted(stamps)))
    victim.unlink()  # as if a run had stopped before this video

    again = prepare(source, out, options, progress=False)
    assert (again.done, again.already, len(again.skipped)) == (1, VIDEOS - 1, 2)
    assert all(p.stat().st_mtime_ns == t for p, t in stamps.items() if p != victim)
    assert victim.exists() and (out / "train.txt").read_text() == first.list_file.read_text()

    with pytest.raises(ValueError, match=r"other options \(short_side: 32 -> 48\)"):
        prepare(source, out, EncodeOptions(short_side=48), progress=False)
    assert json.loads((out / "prepare.json").read_text())["options"]["short_side"] == 32


def test_prepared_list_trains(tmp_path: Path, source: Path) -> None:
    report = prepare(source, tmp_path / "out", EncodeOptions(short_side=40, fps=12.5), progress=False)
    summary = smoke_run(
        tmp_path / "run", "data=video", f"data.train_list={report.list_file}", "data.num_workers=0",
        "trainer.max_steps=3", "trainer.eval_every=3", "trainer.tensorboard=false", "trainer.progress=false",
    )
    result = json.loads((summary / "summary.json").read_text())
    assert result["steps"] == 3 and result["data_skipped"] == 0 and result["fg_enrichment"] is not None


def test_help_and_bad_arguments(capsys) -> None:
    with pytest.raises(SystemExit) as done:
        main(["--help"])
    assert done.value.code == 0 and "--short-side" in capsys.readouterr().out
    with pytest.raises(SystemExit) as bad:
        main(["x.txt", "out", "--workers", "0"])
    assert bad.value.code == 2 and "--workers >= 1" in capsys.readouterr().err
