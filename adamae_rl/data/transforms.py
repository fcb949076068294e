"""Pixel normalization shared by every clip source and by the MAE's targets.

Clips travel as float tensors ``[C, T, H, W]`` (one clip) or ``[B, C, T, H, W]`` (a batch),
normalized with the ImageNet mean/std, as VideoMAE does.
"""

from __future__ import annotations

import torch

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _stats(video: torch.Tensor, channel_dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    shape = [1] * video.dim()
    shape[channel_dim] = 3
    mean = torch.tensor(IMAGENET_MEAN, dtype=video.dtype, device=video.device).view(shape)
    std = torch.tensor(IMAGENET_STD, dtype=video.dtype, device=video.device).view(shape)
    return mean, std


def normalize(video: torch.Tensor, channel_dim: int | None = None) -> torch.Tensor:
    """Map pixels in [0, 1] to ImageNet-normalized values.

    Args:
        video: ``[C, T, H, W]`` or ``[B, C, T, H, W]`` with values in [0, 1].
        channel_dim: which dim holds the 3 channels (default: 0 for 4-D, 1 for 5-D).
    """
    channel_dim = _default_channel_dim(video) if channel_dim is None else channel_dim
    mean, std = _stats(video, channel_dim)
    return (video - mean) / std


def denormalize(video: torch.Tensor, channel_dim: int | None = None) -> torch.Tensor:
    """Inverse of :func:`normalize`: back to pixels in [0, 1] (not clamped)."""
    channel_dim = _default_channel_dim(video) if channel_dim is None else channel_dim
    mean, std = _stats(video, channel_dim)
    return video * std + mean


def _default_channel_dim(video: torch.Tensor) -> int:
    if video.dim() == 4:
        return 0
    if video.dim() == 5:
        return 1
    raise ValueError(f"expected a clip [C,T,H,W] or a batch [B,C,T,H,W], got shape {tuple(video.shape)}")
