"""Build clip datasets and streams from a data config (``data=synthetic`` / ``data=video``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch.utils.data import Dataset

from adamae_rl.data import synthetic as _synthetic  # noqa: F401  (registers "synthetic")
from adamae_rl.data import video as _video  # noqa: F401  (registers "video")
from adamae_rl.data.loader import ClipStream
from adamae_rl.data.sources import DATA_SOURCES, LOADER_KEYS
from adamae_rl.data.synthetic import VAL_SEED_OFFSET
from adamae_rl.geometry import ClipGeometry

__all__ = ["ClipGeometry", "VAL_SEED_OFFSET", "make_dataset", "make_stream"]


def make_dataset(cfg: Mapping[str, Any], split: str, geometry: ClipGeometry, seed: int) -> Dataset:
    """Dataset for ``split`` ("train" or "val") from the data source ``cfg["name"]`` (a registry name)."""
    if split not in ("train", "val"):
        raise ValueError(f"split must be 'train' or 'val', got {split!r}")
    factory = DATA_SOURCES.get(str(cfg.get("name", "synthetic")))
    options = {k: v for k, v in cfg.items() if k not in LOADER_KEYS}
    return factory(split=split, geometry=geometry, seed=seed, **options)


def make_stream(
    cfg: Mapping[str, Any],
    split: str,
    geometry: ClipGeometry,
    batch_size: int,
    seed: int,
    pin_memory: bool = False,
    rank: int = 0,
    world_size: int = 1,
) -> ClipStream:
    """Endless batch stream for ``split``; loader options come from the data config.

    ``rank``/``world_size``: this process's share of the data (every process passes the same
    ``seed``; see :class:`~adamae_rl.data.loader.ResumableSampler`).
    """
    dataset = make_dataset(cfg, split, geometry, seed)
    workers = int(cfg.get("num_workers", 0))
    return ClipStream(
        dataset,
        batch_size=batch_size,
        seed=seed,
        shuffle=split == "train",
        num_workers=workers,
        pin_memory=pin_memory,
        persistent_workers=bool(cfg.get("persistent_workers", workers > 0)),
        rank=rank,
        world_size=world_size,
    )
