"""``torchrun`` + DistributedDataParallel support (gloo on CPU, nccl on GPU)."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from adamae_rl.errors import ConfigError


@dataclass(frozen=True)
class Process:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def init_process(device_request: str) -> tuple[Process, torch.device]:
    """Read torchrun's environment, start the process group, pick this process's device."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(device_request, local if world > 1 else None)
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend=backend)
    return Process(rank, world, local), device


def resolve_device(request: str, local_rank: int | None = None) -> torch.device:
    """``auto`` -> cuda when available, else cpu; ``cuda`` under torchrun -> ``cuda:LOCAL_RANK``."""
    request = str(request)
    if request == "auto":
        request = "cuda" if torch.cuda.is_available() else "cpu"
    if request.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"trainer.device={request} but no CUDA device is available; use trainer.device=cpu")
    if request == "cuda" and local_rank is not None:
        request = f"cuda:{local_rank}"
    if request not in ("cpu",) and not request.startswith("cuda"):
        raise ConfigError(f"trainer.device must be auto, cpu, cuda or cuda:N, got {request!r}")
    return torch.device(request)


def all_reduce_mean(value: torch.Tensor) -> torch.Tensor:
    if dist.is_initialized():
        value = value.clone()
        dist.all_reduce(value)
        value /= dist.get_world_size()
    return value


def shutdown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()
