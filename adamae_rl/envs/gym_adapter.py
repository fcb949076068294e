"""A gymnasium view of the masking environment: one clip per episode, one step per episode.

Observation: the clip's pixel patches, flattened ``[N * P]`` (reshape to ``[N, P]``; a 1-D Box
is what gymnasium's checker expects of a non-image observation). Action: ``MultiBinary(N)``,
1 = masked, exactly ``N_m`` ones. Reward: the mean reconstruction error over the masked tokens;
``info["token_reward"]`` holds the per-token errors ``[N]`` (0 where visible).

The adapter scores masks with the MAE it is given; it does not train it (use ``MaskedVideoEnv``
and the training loop for that).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces
from torch.utils.data import Dataset

from adamae_rl.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from adamae_rl.envs.masked_video import reconstruction_step
from adamae_rl.models.videomae import VideoMAE
from adamae_rl.policies.distributions import count_masked


class FixedCountMultiBinary(spaces.MultiBinary):
    """``MultiBinary(n)`` whose samples and members have exactly ``num_ones`` ones."""

    def __init__(self, n: int, num_ones: int, seed: int | None = None) -> None:
        super().__init__(n, seed=seed)
        self.num_ones = num_ones

    def sample(self, mask: Any = None, probability: Any = None) -> np.ndarray:
        keys = self.np_random.random(self.n)
        out = np.zeros(self.n, dtype=self.dtype)
        out[np.argsort(keys)[: self.num_ones]] = 1
        return out

    def contains(self, x: Any) -> bool:
        return bool(super().contains(x)) and int(np.asarray(x).sum()) == self.num_ones

    def __repr__(self) -> str:
        return f"FixedCountMultiBinary({self.n}, num_ones={self.num_ones})"


def _patch_box(num_tokens: int, patch_dim: int, channels: int) -> spaces.Box:
    """Bounds of normalized pixels in [0, 1], per channel, tiled over the ``(t p p c)`` layout."""
    mean, std = np.array(IMAGENET_MEAN[:channels]), np.array(IMAGENET_STD[:channels])
    reps = num_tokens * patch_dim // channels
    low = np.tile(-mean / std, reps).astype(np.float32)
    high = np.tile((1 - mean) / std, reps).astype(np.float32)
    return spaces.Box(low, high, dtype=np.float32)


class MaskedVideoGymEnv(gym.Env):
    """Gymnasium environment over a clip dataset and an MAE.

    Args:
        model: the MAE that scores masks.
        dataset: map-style clip dataset (items with ``video`` ``[C, T, H, W]``).
        mask_ratio: share of masked tokens in (0, 1).
        device: where the MAE runs.
    """

    metadata = {"render_modes": []}

    def __init__(self, model: VideoMAE, dataset: Dataset, mask_ratio: float, device: str = "cpu") -> None:
        super().__init__()
        self.model = model.to(device).eval()
        self.dataset = dataset
        self.device = torch.device(device)
        cfg = model.cfg
        self.num_tokens, self.patch_dim = cfg.num_tokens, cfg.patch_dim
        self.num_masked = count_masked(cfg.num_tokens, mask_ratio)
        self.observation_space = _patch_box(cfg.num_tokens, cfg.patch_dim, cfg.in_chans)
        self.action_space = FixedCountMultiBinary(cfg.num_tokens, self.num_masked)
        self._video: torch.Tensor | None = None
        self._obs: np.ndarray | None = None

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        index = int(self.np_random.integers(len(self.dataset)))
        item = self.dataset[index]
        self._video = item["video"].unsqueeze(0).to(self.device)
        patches = self.model.patchify(self._video)[0]
        obs = patches.reshape(-1).cpu().numpy().astype(np.float32)
        # Resizing filters can overshoot [0, 1] by a hair; keep observations inside the space.
        self._obs = np.clip(obs, self.observation_space.low, self.observation_space.high)
        info = {"index": index}
        for key, value in item.items():
            if key != "video" and isinstance(value, torch.Tensor):
                info[key] = value.cpu().numpy()
        return self._obs.copy(), info

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict]:
        if self._video is None:
            raise RuntimeError("call reset() before step()")
        action = np.asarray(action)
        if action.shape != (self.num_tokens,):
            raise ValueError(f"action must be a 0/1 vector of shape ({self.num_tokens},), got {action.shape}")
        if not np.isin(action, (0, 1)).all():
            raise ValueError("action must hold only 0 and 1 (1 = masked)")
        if int(action.sum()) != self.num_masked:
            raise ValueError(f"action masks {int(action.sum())} tokens; this environment masks exactly {self.num_masked}")
        mask = torch.as_tensor(action.astype(bool), device=self.device).unsqueeze(0)
        with torch.no_grad():
            reward, loss = reconstruction_step(self.model, self._video, mask)
        token_reward = reward[0, :, 0].cpu().numpy()
        return self._obs.copy(), float(loss[0]), True, False, {"token_reward": token_reward}
