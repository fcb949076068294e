"""The clip stream's order over processes: a shared permutation per epoch, each process its own
block of every global batch, positions counted globally (so any process's state resumes all)."""

from __future__ import annotations

from collections import Counter

import torch
from torch.utils.data import Dataset

from adamae_rl.data.loader import ClipStream


class Indices(Dataset):
    """Item ``i`` is ``{"video": i, "draw": draw_seed}``."""

    def __init__(self, length: int) -> None:
        self.length = length

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, key) -> dict:
        index, draw = key
        return {"video": torch.tensor(index), "draw": torch.tensor(draw)}


def streams(length: int, batch: int, world: int, seed: int = 3) -> list[ClipStream]:
    return [ClipStream(Indices(length), batch, seed=seed, rank=r, world_size=world) for r in range(world)]


def take(stream: ClipStream, count: int) -> list[list[int]]:
    return [next(stream)["video"].tolist() for _ in range(count)]


def test_processes_split_each_epoch_and_reshuffle() -> None:
    ranks = streams(length=16, batch=2, world=2)
    assert ranks[0].batches_per_epoch == 4
    epochs = [[c for r in ranks for batch in take(r, 4) for c in batch] for _ in range(2)]
    assert all(Counter(e) == Counter(range(16)) for e in epochs)  # every clip once an epoch
    assert epochs[0] != epochs[1]


def test_the_global_batch_of_two_processes_is_the_batch_of_one() -> None:
    """Process r reads block r of each global batch: 2 processes x 3 clips read, step by step, what
    one process of 6 clips reads, with the same per-draw seeds (the same augmentation)."""
    one = ClipStream(Indices(30), 6, seed=5)
    two = streams(length=30, batch=3, world=2, seed=5)
    for _ in range(7):  # past an epoch boundary (5 global batches an epoch)
        single = next(one)
        pair = [next(r) for r in two]
        for key in ("video", "draw"):
            assert torch.equal(single[key], torch.cat([p[key] for p in pair]))


def test_a_process_state_resumes_every_process_mid_epoch() -> None:
    whole = streams(length=24, batch=2, world=2)
    expected = [take(r, 5) for r in whole]
    interrupted = streams(length=24, batch=2, world=2)
    for r in interrupted:
        take(r, 2)
    state = interrupted[0].state_dict()  # process 0 writes the checkpoint
    resumed = streams(length=24, batch=2, world=2)
    for r in resumed:
        r.load_state_dict(state)
    assert [take(r, 3) for r in resumed] == [e[2:] for e in expected]


def test_a_resume_on_another_number_of_processes_continues_the_epoch() -> None:
    """Positions are global: 2 processes stop after 1 global batch of 8, 4 processes read the rest
    of the epoch, and the epoch still holds every clip once."""
    first = streams(length=16, batch=4, world=2)
    seen = [c for r in first for c in take(r, 1)[0]]
    state = first[0].state_dict()
    second = streams(length=16, batch=2, world=4)
    for r in second:
        r.load_state_dict(state)
    seen += [c for r in second for c in take(r, 1)[0]]
    assert Counter(seen) == Counter(range(16))
