"""An endless, resumable stream of clip batches over any map-style clip dataset.

The environment pulls one batch per ``reset()``. Order is a pure function of
``(seed, epoch, position)``, so a run resumed from a checkpoint sees exactly the clips the
uninterrupted run would have seen, with any number of loader workers.

The sampler yields *sample keys* ``(index, draw_seed)``: datasets with random augmentation seed
their per-item randomness from ``draw_seed`` (never from worker-local RNG), so the stream is
deterministic whatever ``num_workers`` is. Datasets without randomness ignore it.

Optional dataset hooks (used by the video dataset):

- ``dataset.clips_per_item = R`` (repeated sampling): each item holds ``R`` clips stacked on a
  leading dim; the loader then batches ``batch_size // R`` items and flattens, so every batch
  still holds exactly ``batch_size`` clips.
- items may carry ``SKIPPED_KEY``: a list of ``(path, reason)`` for the bad files skipped while
  producing them. Worker processes cannot log for the run, so the report travels with the batch;
  the stream pops it in the main process, logs each bad file once (logger ``adamae_rl.data``),
  counts it in ``stream.skipped`` and stops the run when the share of failed reads exceeds
  ``max_skip_share`` (default: ``dataset.max_skip_share``, else no limit).
- ``dataset.decode_in_main_process = True`` (decoding on a CUDA device): no worker processes and
  no pinned memory, since CUDA cannot run in forked workers and its tensors cannot be pinned.

The stream also measures how long the training loop waits for data: ``wait_seconds`` adds up the
time each ``next()`` blocked, and ``take_wait_seconds()`` reads and resets it, so the trainer can
report the share of each step spent waiting (``train/data_wait_share``). ``check_wait_share``
warns once, with the remedies, when that share stays high.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, Sampler, default_collate

from adamae_rl.errors import ConfigError, InputFileError, UserError
from adamae_rl.utils.distributed import process_seed

SampleKey = tuple[int, int]
SkipReport = tuple[str, str]  # (path, reason)

# Non-tensor item entry listing the files skipped while producing the item.
SKIPPED_KEY = "skipped"
# The skip share is judged only after this many reads: one bad file among the first few reads
# says nothing about the data set.
MIN_READS_FOR_SHARE = 20
# The loop waits for data "too long" when more than this share of its steps is spent waiting, in
# this many logging windows in a row (the first window, with the workers' start-up, not counted).
WAIT_SHARE_WARN = 1 / 3
WAIT_WINDOWS_TO_WARN = 2

log = logging.getLogger("adamae_rl.data")


class DataError(UserError, RuntimeError):
    """A data problem the user must fix: bad video files, too many failed reads."""


def split_key(key: int | SampleKey) -> SampleKey:
    """Accept a plain index or a sample key ``(index, draw_seed)``; return the key."""
    if isinstance(key, tuple):
        return int(key[0]), int(key[1])
    return int(key), int(key)


class ResumableSampler(Sampler[SampleKey]):
    """Per-epoch permutation seeded by ``(seed, epoch)``, started at ``start``, sharded over processes.

    Every process computes the same permutation. One epoch is ``length * cycles`` positions of it;
    each *global batch* takes the next ``world_size * per_rank`` positions, of which process
    ``rank`` reads the ``rank``-th block of ``per_rank``. So the processes together read every
    position once per epoch (a last global batch that would be incomplete is dropped on all of
    them), and the global batch of W processes is the batch one process of ``W * per_rank`` reads.
    ``start`` counts the positions consumed by all processes together, so the position saved by
    one process resumes every process, with any world size.

    ``cycles`` > 1 makes one epoch ``cycles`` permutations back to back, so that a dataset
    smaller than a global batch still fills batches (each item then appears more than once an epoch).
    Draw seeds are ``base(seed, epoch) + position``: the same clip at the same place of the
    epoch gets the same augmentation whichever process reads it.
    """

    def __init__(
        self, length: int, seed: int = 0, shuffle: bool = True, cycles: int = 1,
        rank: int = 0, world_size: int = 1, per_rank: int = 1,
    ) -> None:
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is outside world size {world_size}")
        self.length, self.seed, self.shuffle, self.cycles = length, seed, shuffle, cycles
        self.rank, self.world_size, self.per_rank = rank, world_size, max(int(per_rank), 1)
        self.epoch, self.start = 0, 0

    @property
    def global_batch(self) -> int:
        """Positions one global batch consumes (all processes together)."""
        return self.world_size * self.per_rank

    @property
    def total(self) -> int:
        """Positions in one epoch."""
        return self.length * self.cycles

    def _order(self) -> torch.Tensor:
        if not self.shuffle:
            return torch.arange(self.length).repeat(self.cycles)
        gen = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        return torch.cat([torch.randperm(self.length, generator=gen) for _ in range(self.cycles)])

    def _global_batches_left(self) -> int:
        return max(self.total - self.start, 0) // self.global_batch

    def __iter__(self) -> Iterator[SampleKey]:
        order = self._order()
        base = (self.seed * 1_000_003 + self.epoch * 7_919) * self.total
        start = self.start  # read once: the stream advances self.start as it consumes batches
        for k in range(self._global_batches_left()):
            first = start + k * self.global_batch + self.rank * self.per_rank
            for pos in range(first, first + self.per_rank):
                yield int(order[pos]), base + pos

    def __len__(self) -> int:
        return self._global_batches_left() * self.per_rank


def _worker_context() -> str | None:
    """Start loader workers by fork on Linux, PyTorch's own default there.

    Importing TorchRL switches the global start method to "spawn", with which every worker
    re-imports torch and TorchRL (seconds each). Loader workers only decode and transform on the
    CPU, so forking them is safe; elsewhere the global method stays in charge.
    """
    return "fork" if sys.platform.startswith("linux") else None


class StreamCollate:
    """Collate items into one batch dict; runs in the loader workers, so it must pickle.

    Pops each item's ``SKIPPED_KEY`` report and re-attaches the batch's reports under the same
    key, keeps the entries that every item has (a foreground mask may exist for some videos
    only), and flattens ``[B, R, ...]`` to ``[B * R, ...]`` for repeated sampling.
    """

    def __init__(self, collate_fn: Callable | None = None, clips_per_item: int = 1) -> None:
        self.collate_fn = collate_fn or default_collate
        self.clips_per_item = clips_per_item

    def __call__(self, items: Sequence[Any]) -> Any:
        if not items or not all(isinstance(item, dict) for item in items):
            return self.collate_fn(items)
        skipped: list[SkipReport] = [r for item in items for r in item.get(SKIPPED_KEY, ())]
        shared = set.intersection(*(set(item) for item in items)) - {SKIPPED_KEY}
        batch = self.collate_fn([{k: v for k, v in item.items() if k in shared} for item in items])
        if self.clips_per_item > 1:
            batch = {k: v.flatten(0, 1) for k, v in batch.items()}
        batch[SKIPPED_KEY] = skipped
        return batch


class ClipStream:
    """Endless iterator of batches ``dict[str, Tensor]``, each entry with leading dim ``batch_size``.

    Args:
        dataset: map-style dataset of clip dicts (at least ``video [C, T, H, W]``); see the module
            docstring for the optional ``clips_per_item`` and ``SKIPPED_KEY`` hooks.
        batch_size: clips per batch; the last incomplete batch of an epoch is dropped.
        seed: order seed.
        shuffle: permute each epoch.
        num_workers, pin_memory, persistent_workers, prefetch_factor: passed to ``DataLoader``.
        collate_fn: collates the tensor entries of a list of items (default: ``default_collate``).
        multiprocessing_context: how workers start; default "fork" on Linux (see ``_worker_context``).
        rank, world_size: this process's share of the data under ``torchrun`` (see
            :class:`ResumableSampler`): every process passes the same ``seed`` and reads its own
            block of each global batch of ``world_size * batch_size`` clips.
        max_skip_share: stop with ``RuntimeError`` when more than this share of video reads
            failed (default: ``dataset.max_skip_share``, else 1.0 = never).

    Attributes:
        skipped: distinct bad files skipped so far (each logged once).
        failed_reads: failed reads so far (a bad file drawn twice counts twice).
        reads: all reads so far, good and failed.
        wait_seconds: seconds ``next()`` blocked since the last ``take_wait_seconds()``.
        num_workers: loader worker processes actually used.
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
        max_skip_share: float | None = None,
        multiprocessing_context: str | None = None,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        self.clips_per_item = int(getattr(dataset, "clips_per_item", 1))
        if batch_size % self.clips_per_item:
            raise ConfigError(
                f"batch_size={batch_size} is not divisible by the clips per video "
                f"(repeat={self.clips_per_item})"
            )
        self.items_per_batch = batch_size // self.clips_per_item
        if len(dataset) == 0:
            raise InputFileError("the dataset holds no items")
        # A dataset smaller than a global batch cycles: each epoch repeats it until a batch is full.
        global_items = self.items_per_batch * world_size
        cycles = -(-global_items // len(dataset))
        if cycles > 1:
            log.warning(
                "dataset has %d items, fewer than the %d a batch needs: each batch repeats items "
                "(fine for a smoke test; unusual for training or evaluation)", len(dataset), global_items,
            )
        self.dataset = dataset
        self.batch_size = batch_size
        if max_skip_share is None:
            max_skip_share = float(getattr(dataset, "max_skip_share", 1.0))
        self.max_skip_share = max_skip_share
        self.skipped, self.failed_reads, self.reads = 0, 0, 0
        self._bad_files: set[str] = set()
        self.sampler = ResumableSampler(len(dataset), seed=seed, shuffle=shuffle, cycles=cycles,
                                        rank=rank, world_size=world_size, per_rank=self.items_per_batch)
        if getattr(dataset, "decode_in_main_process", False):
            num_workers, pin_memory = 0, False
        self.num_workers = num_workers
        self.wait_seconds = 0.0
        self._high_wait_windows = -1  # -1: the first window is not judged
        self._wait_warned = False
        extra = {}
        if num_workers > 0:
            extra["persistent_workers"] = persistent_workers
            if prefetch_factor is not None:
                extra["prefetch_factor"] = prefetch_factor
            extra["multiprocessing_context"] = multiprocessing_context or _worker_context()
        self.loader = DataLoader(
            dataset,
            batch_size=self.items_per_batch,
            sampler=self.sampler,
            drop_last=True,
            num_workers=num_workers,
            pin_memory=pin_memory,
            collate_fn=StreamCollate(collate_fn, self.clips_per_item),
            # A private generator: starting a loader iterator draws worker seeds from it, never from
            # torch's global RNG, so seeking the stream (resume) does not shift the training RNG.
            # Each process its own, so workers of different processes are seeded apart.
            generator=torch.Generator().manual_seed(process_seed(seed, rank)),
            **extra,
        )
        self._iter: Iterator | None = None
        # Batches each process reads per epoch = global batches per epoch.
        self.batches_per_epoch = len(dataset) * cycles // global_items

    def __iter__(self) -> ClipStream:
        return self

    def __next__(self) -> dict[str, torch.Tensor]:
        start = time.perf_counter()
        try:
            batch = self._next_batch()
        finally:
            self.wait_seconds += time.perf_counter() - start
        if isinstance(batch, dict):
            self._record_skips(batch.pop(SKIPPED_KEY, ()))
        return batch

    def _next_batch(self) -> Any:
        if self._iter is None:
            self._iter = iter(self.loader)
        try:
            batch = next(self._iter)
        except StopIteration:
            self.sampler.epoch += 1
            self.sampler.start = 0
            self._iter = iter(self.loader)
            batch = next(self._iter)
        # Counts the items all processes consumed (not prefetched ones): one global batch.
        self.sampler.start += self.sampler.global_batch
        return batch

    def take_wait_seconds(self) -> float:
        """Seconds ``next()`` blocked since the last call (or the start); resets the count."""
        waited, self.wait_seconds = self.wait_seconds, 0.0
        return waited

    def check_wait_share(self, share: float) -> bool:
        """Judge one logging window's share of step time spent waiting for data.

        Logs one warning per stream, with the remedies, when the share exceeds ``WAIT_SHARE_WARN``
        in ``WAIT_WINDOWS_TO_WARN`` windows in a row (the first window, which includes starting
        the workers, is not judged). Returns True when it warned now.
        """
        if self._high_wait_windows < 0:
            self._high_wait_windows = 0
            return False
        self._high_wait_windows = self._high_wait_windows + 1 if share > WAIT_SHARE_WARN else 0
        if self._wait_warned or self._high_wait_windows < WAIT_WINDOWS_TO_WARN:
            return False
        self._wait_warned = True
        log.warning("%s", self.wait_advice(share))
        return True

    def wait_advice(self, share: float) -> str:
        """The warning text: how much the loop waits and what makes the data come faster."""
        workers, cpus = self.num_workers, os.cpu_count() or 1
        remedies = [f"more loader workers (data.num_workers={workers} now, {cpus} CPUs here)"]
        decoder = getattr(self.dataset, "decoder", None)
        if decoder is not None:  # a video dataset
            remedies += [
                "videos re-encoded once to the size and frame rate training needs "
                "(python -m adamae_rl.data.prepare LIST OUT --short-side 160, then train on OUT's list)",
                "data.decode_short_side=<about 1.15 x the model's img_size> (scale while decoding)",
                "data.repeat=2 or more (several clips from each decoded video)",
                f"another decoder (data.decoder={decoder} now; compare them with python -m adamae_rl.data.bench "
                "LIST --decoder decord torchcodec pyav), or data.decoder=torchcodec data.decode_device=cuda on a GPU",
            ]
        return (
            f"the training loop spent {share:.0%} of its step time waiting for data (more than "
            f"{WAIT_SHARE_WARN:.0%} for {WAIT_WINDOWS_TO_WARN} logging windows in a row): the model idles while "
            "clips are decoded. Remedies: " + "; ".join(remedies)
        )

    def _record_skips(self, reports: Sequence[SkipReport]) -> None:
        """Log each new bad file once, count reads, stop when too many of them failed."""
        for path, reason in reports:
            self.failed_reads += 1
            if path not in self._bad_files:
                self._bad_files.add(path)
                self.skipped += 1
                log.warning("skipped bad video %s: %s", path, reason)
        self.reads += self.items_per_batch + len(reports)  # every item ends in one good read
        share = self.failed_reads / self.reads
        if self.reads >= MIN_READS_FOR_SHARE and share > self.max_skip_share:
            raise DataError(
                f"{self.failed_reads} of {self.reads} video reads failed ({share:.0%}), more than "
                f"max_skip_share={self.max_skip_share}; {self.skipped} bad files, e.g. "
                f"{sorted(self._bad_files)[:3]}: check the list file and the video folder"
            )

    def state_dict(self) -> dict[str, int]:
        return {
            "epoch": self.sampler.epoch,
            "start": self.sampler.start,
            "skipped": self.skipped,
            "failed_reads": self.failed_reads,
            "reads": self.reads,
        }

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.sampler.epoch = int(state["epoch"])
        self.sampler.start = int(state["start"])
        # The skip counters are optional in a stored state: missing ones start at 0.
        self.skipped = int(state.get("skipped", 0))
        self.failed_reads = int(state.get("failed_reads", 0))
        self.reads = int(state.get("reads", 0))
        self._iter = None  # the next batch is drawn from the restored position
