"""data.prepare: re-encoded lists keep frames, masks and labels; bad files are named; reruns resume."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
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
from adamae_rl.errors import OutputError

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

    with pytest.raises(OutputError, match=r"other options \(short_side: 32 -> 48\)"):
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


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "adamae_rl.data.prepare", *args, "--no-progress", "--workers", "1"],
                          capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})


def _one_error(result: subprocess.CompletedProcess, *needles: str) -> str:
    assert result.returncode == 2, result.stderr[-2000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in result.stderr, result.stderr[-2000:]
    for needle in needles:
        assert needle in errors[0], errors[0]
    return errors[0]


def test_never_writes_into_its_own_input(tmp_path: Path, source: Path) -> None:
    before = source.read_text()
    _one_error(_cli(str(source), str(source.parent), "--short-side", "32"), "holds the input", "own input")
    assert source.read_text() == before and not (source.parent / "videos").exists()
    out = tmp_path / "out"
    prepare(source, out, EncodeOptions(short_side=32), progress=False)
    # a rerun on OUT's own list into OUT would re-encode into videos/videos/
    _one_error(_cli(str(out / "train.txt"), str(out), "--short-side", "32"), "holds the input")
    assert not (out / "videos" / "videos").exists()


def test_never_overwrites_foreign_files(tmp_path: Path, source: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "train.txt").write_text("my own list\n")
    _one_error(_cli(str(source), str(out), "--short-side", "32"), "train.txt exists and was not written by data.prepare")
    assert (out / "train.txt").read_text() == "my own list\n"
    assert _cli(str(source), str(out), "--short-side", "32", "--force").returncode == 0
    assert (out / "train.txt").read_text().startswith("videos/train/clip_000000.mp4")


def test_same_output_name_keeps_every_video_and_label(tmp_path: Path, source: Path) -> None:
    src = source.parent / "train"
    shutil.copy(src / "clip_000000.mp4", tmp_path / "a.mp4")
    shutil.copy(src / "clip_000001.mp4", tmp_path / "a.avi")  # same stem, another container name
    listing = tmp_path / "list.txt"
    listing.write_text("a.mp4 0\na.avi 1\na.mp4 0\n")  # a.mp4 twice: one video, listed twice
    report = prepare(listing, tmp_path / "out", EncodeOptions(short_side=32), progress=False)
    assert report.done == 2 and not report.skipped
    written = sorted(p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*.mp4"))
    assert written == ["videos/a.avi.mp4", "videos/a.mp4"]
    assert report.list_file.read_text() == "videos/a.mp4 0\nvideos/a.avi.mp4 1\nvideos/a.mp4 0\n"


def test_preset_typo_is_a_setting_error_not_a_bad_video(tmp_path: Path, source: Path) -> None:
    _one_error(_cli(str(source), str(tmp_path / "out"), "--preset", "veryfsat"), "unknown x264 preset 'veryfsat'")
    assert not (tmp_path / "out").exists()


def test_full_disk_stops_with_the_reason_not_bad_video(tmp_path: Path, source: Path) -> None:
    # RLIMIT_FSIZE makes every write past 20 kB fail with EFBIG, as a full disk fails with ENOSPC.
    code = (
        "import resource, signal, sys\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, 20_000))\n"
        "from adamae_rl.data.prepare import main\n"
        f"main([{str(source)!r}, {str(tmp_path / 'out')!r}, '--short-side', '0', '--crf', '0', '--workers', '1', '--no-progress'])\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    _one_error(result, "cannot write into", "File too large")
    bad = [line for line in result.stderr.splitlines() if "bad video" in line]
    assert len(bad) == 2 and not any("clip_" in line for line in bad)  # only the broken and the missing file
