"""Gymnasium spaces and action/observation mappings of the masking environment.

Two action forms:

- ``"mask"``: :class:`FixedCountMultiBinary` ``(N,)``, 1 = masked, exactly ``N_m`` ones. Exact,
  but only for agents that emit valid masks: a standard policy over ``MultiBinary`` samples every
  bit independently and almost never hits the count.
- ``"scores"``: ``Box(-1, 1, (N,))`` per-token scores; the ``N_v`` highest-scoring tokens are
  visible, the rest masked (:func:`scores_to_mask`). Any agent with a continuous action head can
  emit it.

Three observation forms (:func:`observation_space`): ``"patches"`` (raw pixel patches
``[N * P]``), ``"tokens"`` (the MAE's patch embeddings ``[N * D]``, what ``MaskedVideoEnv``
calls ``tokens``) and ``"pooled"`` (their mean over tokens, ``[D]``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from gymnasium import spaces

from adamae_rl.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from adamae_rl.models.videomae import VideoMAE

ACTIONS = ("mask", "scores")
OBSERVATIONS = ("patches", "tokens", "pooled")


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


def score_space(num_tokens: int) -> spaces.Box:
    """``Box(-1, 1, (N,))``: symmetric and normalized, as Gaussian and squashed policies expect."""
    return spaces.Box(-1.0, 1.0, shape=(num_tokens,), dtype=np.float32)


def scores_to_mask(scores: np.ndarray, num_visible: int, rng: np.random.Generator) -> np.ndarray:
    """Top-k: the ``num_visible`` highest scores are visible; ties are broken uniformly at random.

    Why top-k and not a Plackett-Luce draw with the scores as logits: the agent's policy is
    already a distribution over scores (e.g. PPO's Gaussian), so a deterministic map leaves the
    mask distribution entirely in the agent's hands and its likelihood-ratio gradient stays
    exact; a draw inside the environment would add noise the agent cannot see in its own
    log-probability (the gradient stays unbiased but noisier) and a greedy agent
    (``deterministic=True``) could never pin a mask. Top-k of i.i.d. scores is a uniform random
    subset, so an agent that has learned nothing masks like ``random`` (no bias toward any
    position). That needs the random tie-break: agents clip actions to the box, so many scores
    sit exactly at -1 or 1, and ``argsort``'s stable order would then always show the
    lowest-index tokens.

    Args:
        scores: float ``[N]``, finite; only their order matters.
        num_visible: ``N_v`` in ``[1, N-1]``.
        rng: the environment's generator (keeps seeded episodes reproducible).
    Returns:
        bool ``[N]``, True = masked, exactly ``N - num_visible`` True.
    """
    tie_break = rng.random(scores.shape[0])
    order = np.lexsort((tie_break, -scores))  # last key is primary: descending score
    mask = np.ones(scores.shape[0], dtype=bool)
    mask[order[:num_visible]] = False
    return mask


def _pixel_bounds(channels: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel bounds ``[C]`` of ImageNet-normalized pixels in [0, 1]."""
    mean, std = np.array(IMAGENET_MEAN[:channels]), np.array(IMAGENET_STD[:channels])
    return -mean / std, (1 - mean) / std


def _patch_box(model: VideoMAE) -> spaces.Box:
    """Bounds of normalized pixels, per channel, tiled over the ``(t p p c)`` patch layout."""
    cfg = model.cfg
    low, high = _pixel_bounds(cfg.in_chans)
    reps = cfg.num_tokens * cfg.patch_dim // cfg.in_chans
    return spaces.Box(np.tile(low, reps).astype(np.float32), np.tile(high, reps).astype(np.float32), dtype=np.float32)


def embedding_bounds(model: VideoMAE) -> tuple[np.ndarray, np.ndarray]:
    """Exact range ``[D]`` of each patch-embedding channel over all clips with pixels in [0, 1].

    The embedding is affine in the pixels (``b + sum w * x``), so each channel's extreme values
    take every pixel at the end of its range that the weight's sign favours. The bounds follow
    the MAE's weights at the time of the call; a small margin absorbs float32 summation order.
    """
    weight = model.patch_embed.weight.detach().double().cpu()  # [D, C, t, p, p]
    bias = model.patch_embed.bias.detach().double().cpu()
    low, high = (torch.tensor(v).view(1, -1, 1, 1, 1) for v in _pixel_bounds(model.cfg.in_chans))
    at_low, at_high = weight * low, weight * high
    upper = bias + torch.maximum(at_low, at_high).sum(dim=(1, 2, 3, 4))
    lower = bias + torch.minimum(at_low, at_high).sum(dim=(1, 2, 3, 4))
    margin = 1e-4 * (1 + torch.maximum(upper.abs(), lower.abs()))
    return (lower - margin).numpy(), (upper + margin).numpy()


def observation_space(model: VideoMAE, observation: str) -> spaces.Box:
    """The 1-D ``Box`` of one observation form (reshape ``tokens`` to ``[N, D]``)."""
    if observation == "patches":
        return _patch_box(model)
    low, high = embedding_bounds(model)
    if observation == "tokens":
        low, high = np.tile(low, model.cfg.num_tokens), np.tile(high, model.cfg.num_tokens)
    # "pooled": a mean of tokens that each lie in the box lies in the same box.
    return spaces.Box(low.astype(np.float32), high.astype(np.float32), dtype=np.float32)


def observe(model: VideoMAE, video: torch.Tensor, observation: str) -> np.ndarray:
    """The observation of one clip ``video`` ``[1, C, T, H, W]`` as float32 ``[dim]``."""
    with torch.no_grad():
        if observation == "patches":
            out = model.patchify(video)[0]  # [N, P]
        else:
            tokens = model.embed(video)[0]  # [N, D]
            out = tokens.mean(dim=0) if observation == "pooled" else tokens
    return out.reshape(-1).float().cpu().numpy()


def check_option(kind: str, value: str, known: tuple[str, ...]) -> None:
    if value not in known:
        raise ValueError(f"unknown {kind} option {value!r}; expected one of: {', '.join(known)}")
