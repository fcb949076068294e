"""Pixel normalization for clip sources (defined in :mod:`adamae_rl.pixels`, shared with the MAE)."""

from adamae_rl.pixels import IMAGENET_MEAN, IMAGENET_STD, denormalize, normalize

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "normalize", "denormalize"]
