"""The loader benchmark runs end to end on a tiny list and prints every reader."""

from __future__ import annotations

from pathlib import Path

import pytest

from adamae_rl.data.bench import main, stream_keys


def test_stream_keys_wrap_epochs() -> None:
    keys = stream_keys(3, seed=0, count=7)
    assert len(keys) == 7 and sorted(i for i, _ in keys[:3]) == [0, 1, 2]


def test_bench_prints_each_reader(tmp_path: Path, gray_video, write_list, capsys: pytest.CaptureFixture[str]) -> None:
    list_file = write_list(tmp_path / "bench.txt", [gray_video(f"g{i}", 24) for i in range(3)])
    main([str(list_file), "--workers", "0", "1", "--batches", "1", "--rounds", "1", "--batch-size", "2",
          "--frames", "8", "--size", "32"])
    out = capsys.readouterr().out
    assert "sequential loop" in out and "decode share" in out
    assert "stream workers=0" in out and "stream workers=1" in out
