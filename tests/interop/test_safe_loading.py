"""Checkpoints are read without running pickled code: only tensors, plain values and Namespace."""

from __future__ import annotations

import argparse
import os

import pytest
import torch
from helpers_cli import run_cli
from interop_reference import pretrain_state, run_args

from adamae_rl.interop import UnsafeCheckpointError, init_from, read_weights, safe_load
from adamae_rl.models import build_mae


class Payload:
    """Unpickling this would run ``touch SENTINEL``."""

    def __init__(self, sentinel: str) -> None:
        self.sentinel = sentinel

    def __reduce__(self):
        return (os.system, (f"touch {self.sentinel}",))


def poisoned_checkpoint(tmp_path):
    sentinel = tmp_path / "pwned"
    gen = torch.Generator().manual_seed(0)
    path = tmp_path / "poisoned.pth"
    torch.save({"model": pretrain_state(gen), "args": run_args(), "extra": Payload(str(sentinel))}, path)
    return path, sentinel


def test_namespace_args_are_allowed_and_become_a_dict(tmp_path):
    path = tmp_path / "ok.pth"
    torch.save({"model": {"w": torch.ones(2)}, "args": run_args()}, path)
    obj = safe_load(path)
    assert isinstance(obj["args"], dict) and obj["args"]["input_size"] == 32
    assert not any(isinstance(v, argparse.Namespace) for v in obj.values())


def test_pickle_payload_is_refused_and_nothing_runs(tmp_path):
    path, sentinel = poisoned_checkpoint(tmp_path)
    for load in (safe_load, read_weights, lambda p: init_from(build_mae("tiny"), p)):
        with pytest.raises(UnsafeCheckpointError, match=r"refusing to load .*poisoned\.pth: it holds a pickled posix\.system"):
            load(path)
    assert not sentinel.exists()


def test_cli_refuses_pickle_payload(tmp_path):
    path, sentinel = poisoned_checkpoint(tmp_path)
    out = run_cli("adamae_rl.convert", str(path), str(tmp_path / "out.pt"), cwd=tmp_path, timeout=120)
    assert out.returncode == 2
    assert "error: refusing to load" in out.stderr and "posix.system" in out.stderr
    assert "Traceback" not in out.stderr
    assert not sentinel.exists() and not (tmp_path / "out.pt").exists()


@pytest.mark.parametrize("content, needle", [
    (b"clip_000000.mp4 3\nclip_000001.mp4 1\n", "is a text file, not a torch checkpoint"),  # a list given as weights
    (b"\x80\x02]q\x00.", "(RuntimeError: Invalid magic number; corrupt file?)"),  # a bare pickle, no torch header
    (bytes(range(172, 256)) * 3, "(not a pickle: Unsupported operand 172)"),
])
def test_garbage_is_not_a_checkpoint_and_not_called_unsafe(tmp_path, content: bytes, needle: str) -> None:
    from adamae_rl.errors import InputFileError
    from adamae_rl.interop.safe import safe_load

    path = tmp_path / "w.pt"
    path.write_bytes(content)
    with pytest.raises(InputFileError) as err:
        safe_load(path)
    assert needle in str(err.value) and "pickled" not in str(err.value)
