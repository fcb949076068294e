"""Training under ``torchrun`` with 2 processes (gloo, CPU): each process draws its own masks, the
processes split every epoch of the clip list, a resume continues the same order, and a fault on
one process (a non-finite loss, a SIGTERM) is acted on by all of them."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import torch

from helpers_cli import REPO, cli_env

from adamae_rl.utils.checkpoint import load_checkpoint

WORKER = REPO / "tests" / "torchrun_worker.py"
# 16 clips, 2 processes x 2 clips a step: 4 steps an epoch; 8 steps = 2 epochs.
CLIPS, PER_PROCESS, STEPS = 16, 2, 8
OVERRIDES = (
    "policy=random", f"data.num_clips={CLIPS}", f"trainer.batch_size={PER_PROCESS}", f"trainer.max_steps={STEPS}",
    "trainer.eval_every=8", "trainer.ckpt_every=4", "trainer.log_every=1",
)


def torchrun(out: Path, run_dir: Path, *overrides: str, env: dict | None = None, procs: int = 2) -> subprocess.CompletedProcess:
    """The worker under ``torchrun --standalone``; a hang fails the test at the timeout."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={procs}",
           str(WORKER), str(out), str(run_dir), *OVERRIDES, *overrides]
    return subprocess.run(cmd, cwd=REPO, env=cli_env(env), capture_output=True, text=True, timeout=300)


def read(out: Path, procs: int = 2) -> list[dict]:
    return [json.loads((out / f"rank{r}.json").read_text()) for r in range(procs)]


@pytest.fixture(scope="module")
def whole_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict]]:
    """An uninterrupted 2-process run."""
    tmp = tmp_path_factory.mktemp("whole")
    result = torchrun(tmp / "out", tmp / "run")
    assert result.returncode == 0, result.stderr[-3000:]
    return tmp / "run", read(tmp / "out")


@pytest.mark.slow
def test_processes_draw_their_own_masks_and_split_each_epoch(whole_run: tuple[Path, list[dict]]) -> None:
    _, ranks = whole_run
    steps_per_epoch = CLIPS // (2 * PER_PROCESS)
    for step in range(STEPS):
        assert ranks[0]["steps"][step]["mask"] != ranks[1]["steps"][step]["mask"], f"same masks at step {step + 1}"
    for epoch in range(STEPS // steps_per_epoch):
        seen = Counter(
            clip for rank in ranks for s in rank["steps"][epoch * steps_per_epoch:(epoch + 1) * steps_per_epoch]
            for clip in s["clips"]
        )
        assert seen == Counter(range(CLIPS)), f"epoch {epoch}: {seen}"
    # A new permutation each epoch.
    first = [c for s in ranks[0]["steps"][:steps_per_epoch] for c in s["clips"]]
    second = [c for s in ranks[0]["steps"][steps_per_epoch:2 * steps_per_epoch] for c in s["clips"]]
    assert first != second
    assert ranks[0]["summary"]["global_batch"] == 2 * PER_PROCESS and ranks[0]["summary"]["world_size"] == 2


@pytest.mark.slow
def test_sigterm_to_one_process_saves_once_and_the_resume_matches(whole_run: tuple[Path, list[dict]], tmp_path: Path) -> None:
    """SIGTERM to process 1 during step 2 (mid-epoch): every process stops after step 2, process 0
    writes the checkpoint; the same command then continues the same clip order and ends on the
    uninterrupted run's loss and weights."""
    whole_dir, whole = whole_run
    stopped = torchrun(tmp_path / "a", tmp_path / "run", env={"SIGTERM_AT_STEP": "2"})
    assert stopped.returncode != 0
    first = read(tmp_path / "a")
    assert [r["exit"] for r in first] == [128 + signal.SIGTERM] * 2
    assert [len(r["steps"]) for r in first] == [2, 2]
    assert load_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")["step"] == 2

    resumed = torchrun(tmp_path / "b", tmp_path / "run")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    second = read(tmp_path / "b")
    for r in range(2):
        assert first[r]["steps"] + second[r]["steps"] == whole[r]["steps"]  # same clips and masks, step by step
    assert second[0]["summary"]["final_loss_recon"] == whole[0]["summary"]["final_loss_recon"]
    a = load_checkpoint(whole_dir / "checkpoints" / "last.pt")["model"]
    b = load_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.slow
def test_nonfinite_loss_on_one_process_is_skipped_by_all(tmp_path: Path) -> None:
    """Process 1's loss is NaN in step 3 under on_nonfinite=skip: both processes skip that update and
    the job finishes (a hang would fail at the timeout)."""
    result = torchrun(tmp_path / "out", tmp_path / "run", "trainer.on_nonfinite=skip", env={"NAN_AT_STEP": "3"})
    assert result.returncode == 0, result.stderr[-3000:]
    ranks = read(tmp_path / "out")
    for r in ranks:
        assert [s["finite"] for s in r["steps"]].count(False) == 1 and not r["steps"][2]["finite"]
        assert r["summary"]["steps"] == STEPS and r["summary"]["nonfinite_skipped"] == 1
    assert "another process" in result.stderr  # process 0's line says where the loss went bad


@pytest.mark.slow
def test_nonfinite_loss_on_one_process_stops_all(tmp_path: Path) -> None:
    result = torchrun(tmp_path / "out", tmp_path / "run", env={"NAN_AT_STEP": "3"})
    assert result.returncode != 0
    assert "non-finite loss at step 3" in result.stderr
    assert [len(r["steps"]) for r in read(tmp_path / "out")] == [3, 3]
