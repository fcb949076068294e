"""Build clip datasets and streams from a data config (``data=synthetic`` / ``data=video``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from torch.utils.data import Dataset

from adamae_rl.data.loader import ClipStream
from adamae_rl.data.synthetic import SyntheticClips

# Validation clips come from a different family than training clips.
VAL_SEED_OFFSET = 10_000


@dataclass(frozen=True)
class ClipGeometry:
    """What a clip must look like for the model: ``[3, num_frames, img_size, img_size]``."""

    num_frames: int
    img_size: int
    patch_size: int
    tubelet_size: int


def make_dataset(cfg: Mapping[str, Any], split: str, geometry: ClipGeometry, seed: int) -> Dataset:
    """Dataset for ``split`` ("train" or "val") described by a data config (``cfg["name"]``)."""
    if split not in ("train", "val"):
        raise ValueError(f"split must be 'train' or 'val', got {split!r}")
    name = cfg.get("name", "synthetic")
    if name == "synthetic":
        return SyntheticClips(
            num_clips=int(cfg.get("num_clips", 100_000) if split == "train" else cfg.get("val_clips", 256)),
            num_frames=geometry.num_frames,
            img_size=geometry.img_size,
            patch_size=geometry.patch_size,
            tubelet_size=geometry.tubelet_size,
            seed=seed if split == "train" else seed + VAL_SEED_OFFSET,
            max_shapes=int(cfg.get("max_shapes", 3)),
        )
    if name == "video":
        from adamae_rl.data.video import build_video_dataset

        return build_video_dataset(cfg, split=split, geometry=geometry, seed=seed)
    raise ValueError(f"unknown data source {name!r}; known: synthetic, video")


def make_stream(
    cfg: Mapping[str, Any],
    split: str,
    geometry: ClipGeometry,
    batch_size: int,
    seed: int,
    pin_memory: bool = False,
) -> ClipStream:
    """Endless batch stream for ``split``; loader options come from the data config."""
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
    )
