"""Shared fixtures: a small, seeded masking environment (grid 4x4x4 = 64 tokens)."""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest
import torch

import adamae_rl
from adamae_rl.envs import MaskedVideoEnv

# The test models are tiny: a second intra-op thread gains little, and on a busy 2-core machine
# OpenMP threads that wait on each other made single tests 10-20x slower.
if "OMP_NUM_THREADS" not in os.environ:
    torch.set_num_threads(1)
    # Entry points that tests start as subprocesses (trainer, ablation cells) inherit this.
    os.environ["OMP_NUM_THREADS"] = "1"

# `tiny` MAE on 8-frame 32x32 clips: tubelet 2, patch 8 -> grid (4, 4, 4), N = 64 tokens.
SMALL_CLIPS = dict(img_size=32, num_frames=8)


@pytest.fixture
def make_small_env() -> Callable[..., MaskedVideoEnv]:
    """``make_small_env(batch_size=2, mask_ratio=0.9, **make_env_kwargs)``; seeds torch first."""

    def make(batch_size: int = 2, mask_ratio: float = 0.9, seed: int = 0, **kwargs) -> MaskedVideoEnv:
        torch.manual_seed(seed)
        return adamae_rl.make_env(
            model="tiny", data="synthetic", batch_size=batch_size, mask_ratio=mask_ratio, seed=seed,
            **{**SMALL_CLIPS, **kwargs},
        )

    return make
