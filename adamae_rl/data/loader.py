"""An endless, resumable stream of clip batches over any map-style clip dataset.

The environment pulls one batch per ``reset()``. Order is a pure function of
``(seed, epoch, position)``, so a run resumed from a checkpoint sees exactly the clips the
uninterrupted run would have seen, with any number of loader workers.

The sampler yields *sample keys* ``(index, draw_seed)``: datasets with random augmentation seed
their per-item randomness from ``draw_seed`` (never from worker-local RNG), so the stream is
deterministic whatever ``num_workers`` is. Datasets without randomness ignore it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

SampleKey = tuple[int, int]


def split_key(key: int | SampleKey) -> SampleKey:
    """Accept a plain index or a sample key ``(index, draw_seed)``; return the key."""
    if isinstance(key, tuple):
        return int(key[0]), int(key[1])
    return int(key), int(key)


class ResumableSampler(Sampler[SampleKey]):
    """Per-epoch permutation seeded by ``(seed, epoch)``, started at ``start``."""

    def __init__(self, length: int, seed: int = 0, shuffle: bool = True) -> None:
        self.length, self.seed, self.shuffle = length, seed, shuffle
        self.epoch, self.start = 0, 0

    def _order(self) -> torch.Tensor:
        if not self.shuffle:
            return torch.arange(self.length)
        gen = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        return torch.randperm(self.length, generator=gen)

    def __iter__(self) -> Iterator[SampleKey]:
        order = self._order()
        base = (self.seed * 1_000_003 + self.epoch * 7_919) * self.length
        for pos in range(self.start, self.length):
            yield int(order[pos]), base + pos

    def __len__(self) -> int:
        return self.length - self.start


class ClipStream:
    """Endless iterator of batches ``dict[str, Tensor]``, each entry with leading dim ``batch_size``.

    Args:
        dataset: map-style dataset of clip dicts (at least ``video [C, T, H, W]``).
        batch_size: clips per batch; the last incomplete batch of an epoch is dropped.
        seed: order seed.
        shuffle: permute each epoch.
        num_workers, pin_memory, persistent_workers, prefetch_factor: passed to ``DataLoader``.
    """

    def __init__(
        self,
        dataset: Dataset,
        batch_size: int,
        seed: int = 0,
        shuffle: bool = True,
        num_workers: int = 0,
        pin_memory: bool = False,
        persistent_workers: bool = False,
        prefetch_factor: int | None = None,
        collate_fn: Any = None,
    ) -> None:
        if len(dataset) < batch_size:
            raise ValueError(f"dataset has {len(dataset)} clips, fewer than batch_size={batch_size}")
        self.dataset = dataset
        self.batch_size = batch_size
        self.sampler = ResumableSampler(len(dataset), seed=seed, shuffle=shuffle)
        extra = {}
        if num_workers > 0:
            extra["persistent_workers"] = persistent_workers
            if prefetch_factor is not None:
                extra["prefetch_factor"] = prefetch_factor
        self.loader = DataLoader(
            dataset,
            batch_size=batch_size,
            sampler=self.sampler,
            drop_last=True,
            num_workers=num_workers,
            pin_memory=pin_memory,
            collate_fn=collate_fn,
            **extra,
        )
        self._iter: Iterator | None = None
        self.batches_per_epoch = len(dataset) // batch_size

    def __iter__(self) -> ClipStream:
        return self

    def __next__(self) -> dict[str, torch.Tensor]:
        if self._iter is None:
            self._iter = iter(self.loader)
        try:
            batch = next(self._iter)
        except StopIteration:
            self.sampler.epoch += 1
            self.sampler.start = 0
            self._iter = iter(self.loader)
            batch = next(self._iter)
        self.sampler.start += self.batch_size  # counts consumed clips, not prefetched ones
        return batch

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.sampler.epoch, "start": self.sampler.start}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.sampler.epoch = int(state["epoch"])
        self.sampler.start = int(state["start"])
        self._iter = None  # the next batch is drawn from the restored position
