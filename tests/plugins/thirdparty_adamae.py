"""A third-party package as a user would write it: a model preset, an objective and a data source,
published through entry points (see ``thirdparty_adamae-0.1.dist-info/entry_points.txt``)."""

from __future__ import annotations

import torch
from tensordict import TensorDict
from torch.utils.data import Dataset

from adamae_rl.data.transforms import normalize
from adamae_rl.models import VideoMAE, mae_config
from adamae_rl.objectives import AdaMAELoss


def narrow_tiny(**overrides) -> VideoMAE:
    """``tiny`` at half its width."""
    return VideoMAE(mae_config("tiny", **{"embed_dim": 64, "num_heads": 2, **overrides}))


class ScaledAdaMAE(AdaMAELoss):
    """AdaMAE's sampling loss times ``scale``; reports the scale it used."""

    def __init__(self, policy=None, coef: float = 1e-4, scale: float = 2.0) -> None:
        super().__init__(policy, coef=coef * scale)
        self.scale = scale

    def forward(self, tensordict):
        out = super().forward(tensordict)
        return TensorDict({**out.to_dict(), "scale": torch.tensor(self.scale)}, batch_size=[])


class NoiseClips(Dataset):
    """Uniform noise clips, deterministic per index."""

    def __init__(self, count: int, geometry, seed: int) -> None:
        self.count, self.geometry, self.seed = count, geometry, seed

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, key):
        index = key[0] if isinstance(key, tuple) else key
        g = self.geometry
        gen = torch.Generator().manual_seed(self.seed * 100_000 + int(index))
        return {"video": normalize(torch.rand(3, g.num_frames, g.img_size, g.img_size, generator=gen))}


def noise_source(split: str, geometry, seed: int, num_clips: int = 64, val_clips: int = 8) -> NoiseClips:
    return NoiseClips(num_clips if split == "train" else val_clips, geometry, seed if split == "train" else seed + 1)
