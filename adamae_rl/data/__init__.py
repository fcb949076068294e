"""Clip sources: built-in synthetic clips, video datasets (decord, torchcodec or PyAV), normalization, batch streams."""

from adamae_rl.data.loader import ClipStream
from adamae_rl.data.synthetic import SyntheticClips
from adamae_rl.data.transforms import IMAGENET_MEAN, IMAGENET_STD, denormalize, normalize

__all__ = ["ClipStream", "SyntheticClips", "IMAGENET_MEAN", "IMAGENET_STD", "normalize", "denormalize"]
