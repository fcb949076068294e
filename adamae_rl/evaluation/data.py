"""Labelled clips for evaluation: the run's own data source, or separate labelled lists.

Synthetic clips carry the label set chosen by ``label`` (default: motion direction, 8 classes;
see ``adamae_rl.data.synthetic.LABELS``); ``data=video`` lists carry a label per line (``path label``). Training clips are the first ``train_clips`` of the training
family, validation clips the first ``val_clips`` of the held-out family, so every evaluation of a
run sees the same clips.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, default_collate

from adamae_rl.data.factory import make_dataset
from adamae_rl.errors import ConfigError, InputFileError
from adamae_rl.geometry import ClipGeometry
from adamae_rl.data.synthetic import LABELS


@dataclass
class LabelledSplit:
    """A dataset and the sample keys ``(index, draw_seed)`` to read from it."""

    dataset: Dataset
    indices: list[int]

    def __len__(self) -> int:
        return len(self.indices)

    def keys(self, epoch: int = 0) -> list[tuple[int, int]]:
        """Sample keys for one pass. Epoch 0 is the same for every caller (features, scores);
        later epochs give augmenting datasets (video crops) new draws."""
        offset = epoch * 1_000_003
        return [(i, i + offset) for i in self.indices]


def labelled_splits(
    data_cfg: Mapping[str, Any],
    geometry: ClipGeometry,
    seed: int,
    train_clips: int | None,
    val_clips: int | None,
    train_list: str | None = None,
    val_list: str | None = None,
    label: str | None = None,
) -> tuple[LabelledSplit, LabelledSplit]:
    """Train and validation splits from a run's data config, or from separate labelled lists.

    Args:
        data_cfg: the run's ``data`` config (``synthetic`` or ``video``).
        train_clips, val_clips: use the first this many clips of each split (None = all).
        train_list, val_list: labelled VideoMAE lists that replace the run's data (``data=video``).
        label: the synthetic label set (None = the run's own ``data.label``); lists have their own.
    """
    cfg = dict(data_cfg)
    if label is not None:
        if label not in LABELS:
            raise ConfigError(f"label must be one of {', '.join(LABELS)}; got {label!r}")
        if train_list or cfg.get("name") != "synthetic":
            raise ConfigError(f"label={label!r} chooses a label set of synthetic clips; video lists carry their own labels")
        cfg["label"] = label
    if train_list or val_list:
        if not (train_list and val_list):
            raise ConfigError("give both --train-list and --val-list (a labelled list for each split)")
        cfg = {**cfg, "name": "video", "train_list": train_list, "val_list": val_list}
    if cfg.get("name") == "synthetic":
        # The index space of synthetic clips is huge: only the clips we read need to exist.
        cfg = {**cfg, "num_clips": max(int(train_clips or 1), 1), "val_clips": max(int(val_clips or 1), 1)}
    train = make_dataset(cfg, "train", geometry, seed)
    val = make_dataset(cfg, "val", geometry, seed)
    return _first(train, train_clips, "train"), _first(val, val_clips, "validation")


def _first(dataset: Dataset, count: int | None, what: str) -> LabelledSplit:
    size = len(dataset)
    if count is not None and count > size:
        raise ConfigError(f"asked for {count} {what} clips, but the {what} set has only {size}")
    return LabelledSplit(dataset, list(range(size if count is None else count)))


def num_classes_of(data_cfg: Mapping[str, Any], *splits: LabelledSplit) -> int:
    """Class count: the label set's for synthetic clips, else the largest list label + 1."""
    if data_cfg.get("name") == "synthetic" and not any(hasattr(s.dataset, "entries") for s in splits):
        return int(splits[0].dataset.num_classes)
    labels = [entry.label for s in splits for entry in getattr(s.dataset, "entries", [])]
    if not labels:
        raise ConfigError("cannot tell the number of classes; pass --num-classes")
    if min(labels) < 0:
        raise InputFileError("the video list has unlabelled lines (label -1); evaluation needs 'path label' lines")
    return max(labels) + 1


def batches(split: LabelledSplit, batch_size: int, epoch: int = 0, shuffle_seed: int | None = None,
            num_workers: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield ``(video [B, C, T, H, W], label [B])`` over one pass of ``split``.

    Items holding ``R`` repeated clips (``[R, C, T, H, W]``) are flattened into the batch.
    ``shuffle_seed`` shuffles the clip order (fine-tuning); None keeps it fixed.
    """
    keys: Sequence[tuple[int, int]] = split.keys(epoch)
    if shuffle_seed is not None:
        gen = torch.Generator().manual_seed(shuffle_seed * 7_919 + epoch)
        keys = [keys[i] for i in torch.randperm(len(keys), generator=gen).tolist()]
    loader = DataLoader(
        split.dataset, batch_size=batch_size, sampler=keys, num_workers=num_workers,
        collate_fn=_collate, multiprocessing_context="fork" if num_workers else None,
    )
    for batch in loader:
        video, label = batch["video"], batch["label"]
        if video.dim() == 6:  # [B, R, C, T, H, W] repeated sampling
            video, label = video.flatten(0, 1), label.flatten(0, 1)
        if bool((label < 0).any()):
            raise InputFileError("a clip has no label (-1); evaluation needs labelled data ('path label' lines)")
        yield video, label


def _collate(items: list[dict]) -> dict:
    # Only what evaluation needs: the video reader's skip report is a list that default_collate rejects.
    return default_collate([{"video": it["video"], "label": it["label"]} for it in items])
