"""DistributedDataParallel on CPU (gloo): replicas stay identical while reading different clips."""

from __future__ import annotations

import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from helpers_cli import smoke_config

from adamae_rl import train
from adamae_rl.builders import build_run
from adamae_rl.utils.distributed import init_process, shutdown


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _worker(rank: int, world: int, port: int, cfg: dict, out: dict) -> None:
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    proc, device = init_process("cpu")
    parts = build_run(cfg, device, proc)
    losses = []
    for _ in range(3):
        metrics, _, finite = train.train_step(parts, cfg, None)
        assert finite
        losses.append(float(metrics["train/loss_recon"]))
    flat = torch.cat([p.detach().flatten() for p in parts.model.parameters()] +
                     [p.detach().flatten() for p in parts.policy_module.parameters()])
    gathered = [torch.zeros_like(flat) for _ in range(world)]
    dist.all_gather(gathered, flat)
    out[rank] = {"max_diff": float((gathered[0] - gathered[1]).abs().max()), "losses": losses}
    shutdown()


@pytest.mark.slow
def test_ddp_replicas_stay_in_sync() -> None:
    cfg = smoke_config()
    with mp.Manager() as manager:
        out = manager.dict()
        mp.start_processes(_worker, args=(2, _free_port(), cfg, out), nprocs=2, start_method="fork")
        results = dict(out)
    assert results[0]["max_diff"] == 0.0 and results[1]["max_diff"] == 0.0
    # Each process reads its own clips, so their losses differ while their weights do not.
    assert results[0]["losses"] != results[1]["losses"]
