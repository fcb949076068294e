"""One process of a ``torchrun`` training job for the multi-process tests (tests/test_train_distributed.py).

Usage: ``python -m torch.distributed.run --standalone --nproc_per_node=W tests/torchrun_worker.py
OUT_DIR RUN_DIR [OVERRIDE ...]``. Trains the smoke config plus the overrides with
``adamae_rl.train.run`` and writes ``OUT_DIR/rank<R>.json``: per step, the indices of the clips
this process trained on and a digest of its masks; the run's summary (or the exit code).

Faults, for the process whose rank is ``FAULT_RANK`` (default 1):
- ``SIGTERM_AT_STEP=k``: the process sends itself SIGTERM during its k-th step;
- ``NAN_AT_STEP=k``: its reconstruction loss is NaN in its k-th step.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sys
from pathlib import Path

import torch

from helpers_cli import smoke_config

from adamae_rl import train
from adamae_rl.data.loader import split_key
from adamae_rl.data.synthetic import SyntheticClips
from adamae_rl.objectives.reconstruction import ReconstructionLoss


def tag_clips_with_their_index() -> None:
    """Each synthetic item carries ``clip_index``, so the step's td says which clips it trained on."""
    batched = SyntheticClips.__getitems__

    def getitems(self, keys):
        items = batched(self, keys)
        for item, key in zip(items, keys):
            item["clip_index"] = torch.tensor(split_key(key)[0])
        return items

    SyntheticClips.__getitems__ = getitems


def record_steps(steps: list[dict], rank: int) -> None:
    """Wrap ``train.train_step``: note each call's clips and masks; inject the requested faults."""
    real_step = train.train_step
    fault_rank = int(os.environ.get("FAULT_RANK", "1"))
    sigterm_at = int(os.environ.get("SIGTERM_AT_STEP", "0")) if rank == fault_rank else 0
    nan_at = int(os.environ.get("NAN_AT_STEP", "0")) if rank == fault_rank else 0
    real_recon = ReconstructionLoss.forward

    def poisoned_recon(self, td):
        out = real_recon(self, td)
        if len(steps) + 1 == nan_at:
            out.set("loss_recon", out.get("loss_recon") * float("nan"))
        return out

    ReconstructionLoss.forward = poisoned_recon

    def step(parts, cfg, precision):
        if len(steps) + 1 == sigterm_at:
            os.kill(os.getpid(), signal.SIGTERM)  # the handler sets a flag; the step completes
        metrics, td, finite = real_step(parts, cfg, precision)
        mask = td.get("mask").to(torch.uint8).numpy().tobytes()
        steps.append({"clips": td.get("clip_index").tolist(), "mask": hashlib.sha1(mask).hexdigest(), "finite": finite})
        return metrics, td, finite

    train.train_step = step


def main() -> None:
    out_dir, run_dir, overrides = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3:]
    rank = int(os.environ["RANK"])
    torch.set_num_threads(1)
    tag_clips_with_their_index()
    steps: list[dict] = []
    record_steps(steps, rank)
    result: dict = {"rank": rank, "steps": steps}
    try:
        result["summary"] = train.run(smoke_config(*overrides), run_dir)
    except SystemExit as stop:
        result["exit"] = stop.code
        raise
    finally:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / f"rank{rank}.json").write_text(json.dumps(result))


if __name__ == "__main__":
    main()
