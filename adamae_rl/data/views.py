"""Multi-view testing clips: ``T`` temporal x ``S`` spatial views of every video (VideoMAE's protocol).

A video is decoded once; view ``(t, s)`` is the ``t``-th of ``T`` temporal windows, evenly spread,
cut at the ``s``-th of ``S`` square crops of side ``short side``, evenly spread along the long side,
and resized to the model's size (= resize the short side, then crop; VideoMAE's test crops).

- ``dense`` sampling (Kinetics): window ``t`` starts at ``round(t * slack / (T - 1))`` (the centre
  window when ``T = 1``), ``slack`` being the frames left over by one window.
- ``segments`` sampling (SSv2): one frame per segment, at fraction ``(t + 1/2) / T`` of it (the
  segment's middle frame, as validation reads it, when ``T = 1``).

Items are ``{"video": [V, C, T, H, W], "label": int64}`` with ``V = T * S`` views in ``(t, s)``
row-major order.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset

from adamae_rl.data.decoders import open_video, read_frames
from adamae_rl.data.video import CropBox, VideoClips, VideoEntry, require_frames, transform_frames
from adamae_rl.errors import ConfigError
from adamae_rl.geometry import ClipGeometry


@dataclass(frozen=True)
class ViewSpec:
    """``temporal`` x ``spatial`` test views per video (``2x3``: SSv2; ``5x3``: Kinetics-400)."""

    temporal: int = 1
    spatial: int = 1

    def __post_init__(self) -> None:
        if self.temporal < 1 or self.spatial < 1:
            raise ConfigError(f"test views need at least 1 temporal and 1 spatial view, got {self.temporal}x{self.spatial}")

    @classmethod
    def parse(cls, text: str) -> ViewSpec:
        """``"TxS"`` (``x``, ``X`` or ``×``), e.g. ``"2x3"``."""
        match = re.fullmatch(r"\s*(\d+)\s*[xX×]\s*(\d+)\s*", str(text))
        if not match:
            raise ConfigError(f"test views must look like TxS (e.g. 2x3), got {text!r}")
        return cls(int(match.group(1)), int(match.group(2)))

    @property
    def count(self) -> int:
        return self.temporal * self.spatial

    def __str__(self) -> str:
        return f"{self.temporal}x{self.spatial}"


def dense_views(video_frames: int, num_frames: int, sampling_rate: int, count: int) -> list[np.ndarray]:
    """``count`` windows of ``num_frames`` frames ``sampling_rate`` apart, evenly spread; int64 ``[num_frames]`` each.

    A video shorter than one window is read at the largest stride that fits (as training does).
    """
    require_frames(video_frames, num_frames)
    stride = min(sampling_rate, video_frames // num_frames)
    slack = video_frames - ((num_frames - 1) * stride + 1)
    starts = [slack // 2] if count == 1 else [round(t * slack / (count - 1)) for t in range(count)]
    return [start + stride * np.arange(num_frames, dtype=np.int64) for start in starts]


def segment_views(video_frames: int, num_frames: int, count: int) -> list[np.ndarray]:
    """``count`` picks of one frame per segment, at fraction ``(t + 1/2) / count`` of each segment."""
    require_frames(video_frames, num_frames)
    edges = np.arange(num_frames + 1, dtype=np.int64) * video_frames // num_frames
    lo, length = edges[:-1], edges[1:] - edges[:-1]
    # (length * (2t + 1) - 1) // 2T: with one view, (lo + hi - 1) // 2, the validation clip's middle frame
    return [lo + (length * (2 * t + 1) - 1) // (2 * count) for t in range(count)]


def spatial_views(height: int, width: int, count: int) -> list[CropBox]:
    """``count`` squares of side ``min(height, width)``, evenly spread along the long side."""
    short = min(height, width)
    slack = max(height, width) - short
    offsets = [slack // 2] if count == 1 else [round(s * slack / (count - 1)) for s in range(count)]
    if height >= width:
        return [CropBox(o, 0, short, short) for o in offsets]
    return [CropBox(0, o, short, short) for o in offsets]


class MultiViewClips(Dataset):
    """Every test view of each video of a list, from one decode per video.

    Args:
        clips: the validation :class:`~adamae_rl.data.video.VideoClips` (its entries, decoder,
            geometry and temporal sampling are used; its random training transforms are not).
        views: how many views per video.

    A video that cannot be read raises (a test score over a list must not skip videos silently).
    """

    def __init__(self, clips: VideoClips, views: ViewSpec) -> None:
        self.clips, self.views = clips, views

    @property
    def entries(self) -> list[VideoEntry]:
        return self.clips.entries

    @property
    def geometry(self) -> ClipGeometry:
        return self.clips.geometry

    def __len__(self) -> int:
        return len(self.clips.entries)

    def windows(self, video_frames: int) -> list[np.ndarray]:
        opts, frames = self.clips.options, self.geometry.num_frames
        if opts.temporal_mode == "segments":
            return segment_views(video_frames, frames, self.views.temporal)
        return dense_views(video_frames, frames, opts.sampling_rate, self.views.temporal)

    def __getitem__(self, key: int | Sequence[int]) -> dict[str, torch.Tensor]:
        index = int(key[0]) if isinstance(key, (tuple, list)) else int(key)
        entry, opts = self.clips.entries[index], self.clips.options
        with open_video(entry.path, self.clips.decoder, opts.decode_short_side, opts.decode_threads, opts.decode_device) as video:
            windows = self.windows(video.num_frames)
            wanted = np.unique(np.concatenate(windows))
            frames = read_frames(video, wanted.tolist())  # uint8 [F, H, W, 3]
        boxes = spatial_views(frames.shape[1], frames.shape[2], self.views.spatial)
        size = self.geometry.img_size
        views = []
        for window in windows:
            rows = torch.from_numpy(np.searchsorted(wanted, window)).to(frames.device)
            views += [transform_frames(frames[rows], box, size, flip=False) for box in boxes]
        return {"video": torch.stack(views), "label": torch.tensor(entry.label, dtype=torch.long)}
