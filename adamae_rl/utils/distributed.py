"""``torchrun`` + DistributedDataParallel support (gloo on CPU, nccl on GPU)."""

from __future__ import annotations

import gc
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
    """Leave the process group. Call it after dropping the run's DistributedDataParallel wrappers
    (``RunParts.release_ddp``): a wrapper's gradient reducer holds the group, and when the reducer
    is the group's last holder its destructor joins gloo's worker thread while holding the GIL,
    which hangs whenever that thread still needs the GIL to free a finished collective's tensors.
    Collected here, before the group is destroyed, the reducers leave the group to
    ``destroy_process_group``, which destroys it without the GIL."""
    if dist.is_initialized():
        gc.collect()  # wrappers kept alive by reference cycles go now, while the group is registered
        dist.destroy_process_group()


# Offset between the seeds of two processes of one run. Large and odd, so that the processes of
# run ``seed`` do not draw the streams of the processes of run ``seed + 1``.
RANK_SEED_STRIDE = 1_000_003


def process_seed(seed: int, rank: int) -> int:
    """The seed of process ``rank``'s own randomness (masks, augmentation, loader workers).

    Model initialisation uses ``seed`` itself on every process, so replicas start identical;
    everything drawn per step uses this one, so each process draws its own masks.
    """
    return int(seed) + RANK_SEED_STRIDE * int(rank)


def seed_process(seed: int, rank: int) -> None:
    """Give this process its own random streams, after the model was built from ``seed``.

    NumPy and Python's ``random`` are seeded with :func:`process_seed`; torch (CPU and CUDA) too
    on every process but 0. Process 0 continues the torch stream that ``torch.manual_seed(seed)``
    began before the model was built, so a one-process run is the plain seeded run (its masks
    depend on ``seed`` only, whether or not it was started as a data-parallel job); the others
    start from seeds far from it.
    """
    import random

    import numpy as np

    own = process_seed(seed, rank)
    if rank > 0:
        torch.manual_seed(own)  # also seeds every CUDA device
    np.random.seed(own % 2**32)
    random.seed(own)


def agree_any(*flags: bool) -> list[bool]:
    """For each flag, whether it is True on *any* process (one all-reduce for all of them).

    Decisions that change what a process does next (skip an update, stop, save) must be the same
    on every process, or one of them waits forever in the next collective. Single-process: the
    flags themselves.
    """
    if not dist.is_initialized():
        return [bool(f) for f in flags]
    values = torch.tensor([1.0 if f else 0.0 for f in flags], device=collective_device())
    dist.all_reduce(values, op=dist.ReduceOp.MAX)
    return [bool(v) for v in values.tolist()]


def agree_max(value: int) -> int:
    """The largest ``value`` over all processes (e.g. the number of a signal one of them received)."""
    if not dist.is_initialized():
        return int(value)
    t = torch.tensor([float(value)], device=collective_device())
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return int(t.item())


def gather_objects(obj: object) -> list[object]:
    """Every process's ``obj``, in rank order, on every process (``[obj]`` single-process)."""
    if not dist.is_initialized():
        return [obj]
    out: list[object] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


def collective_device() -> torch.device:
    """Where collective tensors live: the current CUDA device under nccl, else the CPU."""
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")
