"""Pixel conventions shared by every clip source, the MAE's targets and the figures.

Clips travel as float tensors ``[C, T, H, W]`` (one clip) or ``[B, C, T, H, W]`` (a batch),
normalized with the ImageNet mean/std, as VideoMAE does. The MAE's per-patch normalized target
(each channel's mean and variance over a patch's pixels, VideoMAE's ``normlize_target``) and its
inverse for figures live here too, so training and rendering use the same arithmetic.
"""

from __future__ import annotations

import torch

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# Added to a patch's standard deviation before dividing (as VideoMAE's targets).
PATCH_STD_EPS = 1e-6


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


def patch_stats(patches: torch.Tensor, channels: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-patch, per-channel mean and (unbiased) standard deviation + eps.

    Args:
        patches: ``[..., N, P]`` pixels in ``(t p p c)`` layout, ``P = t*p*p*channels``.
    Returns:
        ``mean``, ``std``: ``[..., N, 1, channels]``.
    """
    per_channel = patches.unflatten(-1, (-1, channels))  # [..., N, t*p*p, C]
    mean = per_channel.mean(dim=-2, keepdim=True)
    # Unbiased variance from the centred values, written out: two elementwise passes that vectorize,
    # where torch.var's Welford reduction over this strided axis can be slower.
    var = (per_channel - mean).square().sum(dim=-2, keepdim=True) / (per_channel.shape[-2] - 1)
    return mean, var.sqrt() + PATCH_STD_EPS


def normalize_patches(patches: torch.Tensor, channels: int) -> torch.Tensor:
    """The MAE's per-patch normalized target: ``[..., N, P]`` -> ``[..., N, P]``."""
    mean, std = patch_stats(patches, channels)
    return ((patches.unflatten(-1, (-1, channels)) - mean) / std).flatten(-2)


def denormalize_patches(normalized: torch.Tensor, reference: torch.Tensor, channels: int) -> torch.Tensor:
    """Invert :func:`normalize_patches` with the statistics of ``reference`` (the true patches).

    A model cannot know a hidden patch's mean, so figures paste its prediction back with the
    true patch's statistics (as VideoMAE's visualization does).

    Args:
        normalized: ``[..., N, P]`` predictions; reference: ``[..., N, P]`` true pixels.
    """
    mean, std = patch_stats(reference, channels)
    return (normalized.unflatten(-1, (-1, channels)) * std + mean).flatten(-2)
