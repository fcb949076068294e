"""Video clips through ClipStream: worker determinism, repeated sampling, bad files.

Every test runs once per video decoder backend (the ``decoder`` fixture): bad files must be
skipped, named and counted the same way whichever backend reads them.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch

from adamae_rl.data.factory import ClipGeometry
from adamae_rl.data.loader import ClipStream
from adamae_rl.data.video import BadVideoError, SamplingOptions, VideoClips, read_video_list


@pytest.fixture
def dataset_for(geometry: ClipGeometry, decoder: str):
    """``dataset_for(list_file, repeat=1, **VideoClips_kwargs)``: train-mode clips of a list."""

    def make(list_file: Path, repeat: int = 1, **kwargs) -> VideoClips:
        options = SamplingOptions(repeat=repeat, decoder=decoder)
        return VideoClips(read_video_list(list_file), geometry, options, train=True, **kwargs)

    return make


@pytest.fixture
def good_list(tmp_path: Path, gray_video, write_list) -> Path:
    return write_list(tmp_path / "good.txt", [gray_video(f"g{i}", 24 + 4 * i) for i in range(4)])


def take(stream: ClipStream, batches: int) -> list[dict[str, torch.Tensor]]:
    return [next(stream) for _ in range(batches)]


def test_worker_count_does_not_change_the_stream(good_list: Path, dataset_for) -> None:
    dataset = dataset_for(good_list)
    plain = take(ClipStream(dataset, batch_size=2, seed=3, num_workers=0), 3)
    workers = take(ClipStream(dataset, batch_size=2, seed=3, num_workers=1), 3)
    for a, b in zip(plain, workers):
        assert a.keys() == b.keys() == {"video", "label"}  # the skip report never reaches the env
        assert torch.equal(a["video"], b["video"])


def test_repeat_keeps_batch_size(good_list: Path, dataset_for) -> None:
    stream = ClipStream(dataset_for(good_list, repeat=2), batch_size=4, seed=0)
    batch = next(stream)
    assert batch["video"].shape == (4, 3, 8, 32, 32) and batch["label"].shape == (4,)
    assert stream.state_dict()["start"] == 2  # two videos consumed
    with pytest.raises(ValueError, match="not divisible"):
        ClipStream(dataset_for(good_list, repeat=2), batch_size=3)


def test_each_bad_file_logged_once_and_counted(
    tmp_path: Path, gray_video, write_list, dataset_for, bad_files: dict[str, Path], bad_reasons: dict[str, str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    good = [gray_video(f"g{i}", 24) for i in range(6)]
    list_file = write_list(tmp_path / "mixed.txt", good + list(bad_files.values()))
    stream = ClipStream(dataset_for(list_file, max_skip_share=1.0), batch_size=4, seed=0, num_workers=1)
    with caplog.at_level(logging.WARNING, logger="adamae_rl.data"):
        batches = take(stream, 3 * stream.batches_per_epoch)  # every file drawn at least 3 times

    assert all(b["video"].shape == (4, 3, 8, 32, 32) for b in batches)
    lines = [r.getMessage() for r in caplog.records if r.name == "adamae_rl.data"]
    for kind, path in bad_files.items():
        named = [line for line in lines if str(path) in line]
        assert len(named) == 1, (kind, named)
        assert bad_reasons[kind] in named[0]
    assert len(lines) == stream.skipped == len(bad_files)
    assert stream.failed_reads >= 3 * len(bad_files)
    assert stream.reads == 4 * len(batches) + stream.failed_reads  # one good read per clip


def test_strict_raises_at_first_bad_file(
    tmp_path: Path, gray_video, write_list, dataset_for, bad_files: dict[str, Path]
) -> None:
    list_file = write_list(tmp_path / "strict.txt", [gray_video("g", 24), bad_files["truncated"]])
    stream = ClipStream(dataset_for(list_file, strict=True), batch_size=2, shuffle=False)
    with pytest.raises(BadVideoError, match=r"truncated\.mp4: cannot open as video"):
        next(stream)


def test_too_many_bad_files_stop_the_run(
    tmp_path: Path, gray_video, write_list, dataset_for, bad_files: dict[str, Path]
) -> None:
    list_file = write_list(tmp_path / "bad.txt", [gray_video("g", 24)] + list(bad_files.values()))
    stream = ClipStream(dataset_for(list_file, max_skip_share=0.3), batch_size=2, seed=0)
    with pytest.raises(RuntimeError, match="max_skip_share=0.3"):
        take(stream, 20)


def test_no_readable_video_at_all(tmp_path: Path, write_list, dataset_for, bad_files: dict[str, Path]) -> None:
    dataset = dataset_for(write_list(tmp_path / "all_bad.txt", list(bad_files.values())))
    with pytest.raises(BadVideoError, match="no readable video"):
        dataset[(0, 0)]


def test_skip_counters_survive_resume(
    tmp_path: Path, gray_video, write_list, dataset_for, bad_files: dict[str, Path]
) -> None:
    list_file = write_list(tmp_path / "mixed.txt", [gray_video(f"g{i}", 24) for i in range(3)] + [bad_files["empty"]])
    stream = ClipStream(dataset_for(list_file, max_skip_share=1.0), batch_size=2, seed=1)
    take(stream, 2)
    resumed = ClipStream(dataset_for(list_file, max_skip_share=1.0), batch_size=2, seed=1)
    resumed.load_state_dict(stream.state_dict())
    assert (resumed.skipped, resumed.reads) == (stream.skipped, stream.reads) and stream.skipped == 1
    assert torch.equal(next(resumed)["video"], next(stream)["video"])


def test_a_dataset_smaller_than_a_batch_cycles(caplog) -> None:
    """Three items, batches of eight: every batch is full, every item appears, with a warning."""
    from torch.utils.data import Dataset

    from adamae_rl.data.loader import ClipStream

    class Three(Dataset):
        def __len__(self) -> int:
            return 3

        def __getitem__(self, key):
            index = key[0] if isinstance(key, tuple) else key
            return {"video": torch.full((1,), float(index))}

    stream = ClipStream(Three(), batch_size=8, seed=0)
    assert "fewer than the 8 a batch needs" in caplog.text
    batches = [next(stream)["video"].flatten() for _ in range(3)]
    assert all(b.numel() == 8 for b in batches)
    assert set(torch.cat(batches).tolist()) == {0.0, 1.0, 2.0}
