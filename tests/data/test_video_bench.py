"""The loader benchmark runs end to end on a tiny list and prints every reader."""

from __future__ import annotations

from pathlib import Path

import pytest

from adamae_rl.data.bench import main, stream_keys
from adamae_rl.data.decoders import available_backends


def test_stream_keys_wrap_epochs() -> None:
    keys = stream_keys(3, seed=0, count=7)
    assert len(keys) == 7 and sorted(i for i, _ in keys[:3]) == [0, 1, 2]


def test_bench_prints_each_reader(tmp_path: Path, gray_video, write_list, capsys: pytest.CaptureFixture[str]) -> None:
    list_file = write_list(tmp_path / "bench.txt", [gray_video(f"g{i}", 24) for i in range(3)])
    main([str(list_file), "--decoder", "all", "--workers", "0", "1", "--batches", "1", "--rounds", "1",
          "--batch-size", "2", "--frames", "8", "--size", "32"])
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("| ") and "clips/s" not in line]
    backends = available_backends()
    assert len(rows) == 3 * len(backends)  # sequential loop, workers=0, workers=1 for each backend
    for name in backends:
        mine = [row for row in rows if row.startswith(f"| {name} ")]
        assert [r.split("|")[2].strip() for r in mine] == ["sequential loop", "stream workers=0", "stream workers=1"]
        assert mine[0].rstrip(" |").endswith("%")  # the decode share
        assert all(float(r.split("|")[3]) > 0 for r in mine)


def test_bench_names_an_unknown_decoder(tmp_path: Path, gray_video, write_list, capsys) -> None:
    list_file = write_list(tmp_path / "bench.txt", [gray_video("g", 24)])
    with pytest.raises(SystemExit) as stop:
        main([str(list_file), "--decoder", "pyav", "opencv"])
    assert stop.value.code == 2 and "unknown data.decoder 'opencv'; known: auto, decord" in capsys.readouterr().err
