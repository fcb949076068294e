"""Checkpoint files: atomic writes, safe loads, RNG round trips, pruning."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch

from adamae_rl.utils import checkpoint as ckpt_io


def test_atomic_save_keeps_the_old_file_when_writing_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "last.pt"
    ckpt_io.atomic_save({"step": 1, "w": torch.ones(3)}, path)

    def explode(obj, handle):
        handle.write(b"partial bytes")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", explode)
    with pytest.raises(OSError, match="disk full"):
        ckpt_io.atomic_save({"step": 2}, path)
    monkeypatch.undo()
    assert ckpt_io.load_checkpoint(path)["step"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]  # no temporary file left behind


def test_load_checkpoint_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nope.pt"):
        ckpt_io.load_checkpoint(tmp_path / "nope.pt")
    torn = tmp_path / "torn.pt"
    torn.write_bytes(b"not a checkpoint")
    with pytest.raises(ckpt_io.CheckpointError, match="torn.pt is torn or not a checkpoint"):
        ckpt_io.load_checkpoint(torn)


def test_rng_state_round_trip_through_a_weights_only_file(tmp_path: Path) -> None:
    torch.manual_seed(3), random.seed(3), np.random.seed(3)
    ckpt_io.atomic_save({"rng": ckpt_io.rng_state()}, tmp_path / "r.pt")
    expected = (torch.rand(4), random.random(), np.random.rand())
    ckpt_io.set_rng_state(ckpt_io.load_checkpoint(tmp_path / "r.pt")["rng"])
    again = (torch.rand(4), random.random(), np.random.rand())
    assert torch.equal(expected[0], again[0]) and expected[1:] == again[1:]


def test_prune_periodic_keeps_the_newest(tmp_path: Path) -> None:
    for step in (10, 20, 30, 40):
        (tmp_path / f"step_{step:06d}.pt").write_bytes(b"x")
    (tmp_path / "last.pt").write_bytes(b"x")
    ckpt_io.prune_periodic(tmp_path, keep=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt", "step_000030.pt", "step_000040.pt"]


@pytest.mark.parametrize("content, needle", [(b"", "is empty"), (b"PK\x03\x04 torn", "torn or not a checkpoint")])
def test_unreadable_checkpoint_is_named(tmp_path: Path, content: bytes, needle: str) -> None:
    path = tmp_path / "last.pt"
    path.write_bytes(content)
    with pytest.raises(ckpt_io.CheckpointError, match=needle) as info:
        ckpt_io.load_checkpoint(path)
    assert str(path) in str(info.value) and "weights_only=False" not in str(info.value)


def test_load_newest_skips_unreadable_files(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    assert ckpt_io.load_newest(tmp_path) is None  # nothing to resume
    for step in (2, 4):
        ckpt_io.atomic_save({"step": step}, tmp_path / f"step_{step:06d}.pt")
    (tmp_path / "last.pt").write_bytes(b"garbage")
    path, state = ckpt_io.load_newest(tmp_path)
    assert path.name == "step_000004.pt" and state["step"] == 4
    assert "last.pt is torn or not a checkpoint (cannot be read); resuming from step_000004.pt instead" in caplog.text
    for p in tmp_path.iterdir():
        p.write_bytes(b"")
    with pytest.raises(ckpt_io.CheckpointError, match="no readable checkpoint to resume from: .*last.pt is empty"):
        ckpt_io.load_newest(tmp_path)


def test_full_disk_is_one_clear_error_and_keeps_the_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import errno

    path = tmp_path / "last.pt"
    ckpt_io.atomic_save({"step": 1}, path)

    def full(obj, handle):
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError:  # torch's zip writer re-raises the OS error as a RuntimeError
            raise RuntimeError("PytorchStreamWriter failed writing file") from None

    monkeypatch.setattr(torch, "save", full)
    with pytest.raises(ckpt_io.CheckpointError, match=r"cannot write checkpoint .*last.pt: no space left on device \(errno ENOSPC\); last.pt still holds the previous checkpoint"):
        ckpt_io.atomic_save({"step": 2}, path)
    monkeypatch.undo()
    assert ckpt_io.load_checkpoint(path)["step"] == 1


def test_stale_temporaries_are_removed(tmp_path: Path) -> None:
    (tmp_path / ".last.pt.tmp123").write_bytes(b"x")
    (tmp_path / ".config.yaml.tmp").write_bytes(b"x")
    (tmp_path / "last.pt").write_bytes(b"x")
    removed = ckpt_io.remove_stale_temporaries(tmp_path)
    assert sorted(p.name for p in removed) == [".config.yaml.tmp", ".last.pt.tmp123"]
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]
