"""A gymnasium view of the masking environment: one clip per episode, one step per episode.

Options (all pass gymnasium's and Stable-Baselines3's environment checkers):

- ``action="mask"`` (default): ``MultiBinary(N)``, 1 = masked, exactly ``N_m`` ones; any other
  count is an error. For agents that emit valid masks (e.g. this package's policies).
  ``action="scores"``: ``Box(-1, 1, (N,))`` per-token scores; the ``N_v`` highest are visible
  (top-k with a random tie-break, see :func:`~adamae_rl.envs.gym_spaces.scores_to_mask` for why
  top-k). This is the form for off-the-shelf agents (PPO, SAC, ...).
- ``observation="patches"`` (default): the clip's pixel patches ``[N * P]``;
  ``"tokens"``: the MAE's patch embeddings ``[N * D]`` (reshape to ``[N, D]``; tokens in
  ``(t h w)`` order); ``"pooled"``: their mean over tokens ``[D]``. 1-D boxes with exact bounds.
- ``reward="hide_hard"`` (default): the mean reconstruction error over the masked tokens (an
  agent maximizing it masks the tokens the MAE finds hardest, the adversarial reading);
  ``"show_hard"``: minus that error (an agent leaves the hard tokens visible, the direction
  AdaMAE's sampler moves; on the synthetic clips this shows the moving shapes).
  ``"hide_hard_relative"`` / ``"show_hard_relative"``: the same directions measured against a
  uniformly random mask of the same clip, ``(e - e_random) / e_random`` and
  ``(e_random - e) / e_random``, where ``e`` is the agent's mean masked error and ``e_random``
  that of a random mask drawn by the environment (one extra clip in the same MAE pass). A
  random agent scores 0 on average whatever the clip. Why: most of the plain reward's spread
  comes from how hard the clip is (how many shapes, how textured), which no mask changes; the
  agent's value function would have to learn it from the observation before the mask's own
  effect shows. Dividing by ``e_random`` puts every clip on the same scale. For each clip the
  best mask is the same as for the plain reward. ``info["random_error"]`` holds ``e_random``.

``info["token_reward"]`` always holds the per-token errors ``[N]`` (0 where visible) and
``info["mask"]`` the applied mask ``[N]`` (True = masked). Reset info carries the clip's dataset
``index``, and its ground truth (``label``, ``fg_tokens``, ...) only with ``ground_truth=True``
(for evaluation): what an agent sees never tells it where the moving shapes are.

Registered as ``gymnasium.make("adamae_rl/MaskedVideo-v0", ...)`` (once ``adamae_rl`` is imported,
or as ``"adamae_rl:adamae_rl/MaskedVideo-v0"``), built by :func:`make_gym_env`. Episodes are one
step long, so a vector env in gymnasium's default ``NEXT_STEP`` autoreset mode would spend every
other step on a reset that returns no reward; ``gymnasium.make_vec("adamae_rl/MaskedVideo-v0", n)``
(:func:`make_gym_vector_env`) sets ``AutoresetMode.SAME_STEP``: each step returns the episode's
reward and already the next clip's observation (the finished one in ``info["final_obs"]``).

The adapter scores masks with the MAE it is given; it does not train it (use ``MaskedVideoEnv``
and the training loop for that). It works in ``gymnasium.vector.SyncVectorEnv`` and
``AsyncVectorEnv``; on Linux, ``context="fork"`` skips re-importing torch in every worker.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium.vector import AutoresetMode
from torch.utils.data import Dataset

from adamae_rl.envs.gym_spaces import (
    ACTIONS,
    OBSERVATIONS,
    FixedCountMultiBinary,
    check_option,
    observation_space,
    observe,
    score_space,
    scores_to_mask,
)
from adamae_rl.envs.masked_video import reconstruction_step
from adamae_rl.models.videomae import VideoMAE
from adamae_rl.policies.distributions import count_masked

REWARDS = ("hide_hard", "show_hard", "hide_hard_relative", "show_hard_relative")

ENV_ID = "adamae_rl/MaskedVideo-v0"

__all__ = [
    "MaskedVideoGymEnv", "FixedCountMultiBinary", "ACTIONS", "OBSERVATIONS", "REWARDS", "ENV_ID",
    "make_gym_env", "make_gym_vector_env", "register_gym_env",
]


class MaskedVideoGymEnv(gym.Env):
    """Gymnasium environment over a clip dataset and an MAE.

    Args:
        model: the MAE that scores masks (put in eval mode; not trained here).
        dataset: map-style clip dataset (items with ``video`` ``[C, T, H, W]``).
        mask_ratio: share of masked tokens in (0, 1).
        device: where the MAE runs.
        action: ``"mask"`` or ``"scores"`` (see the module docstring).
        observation: ``"patches"``, ``"tokens"`` or ``"pooled"``.
        reward: ``"hide_hard"`` (+ mean masked error), ``"show_hard"`` (- mean masked error), or
            either with ``_relative`` (measured against a random mask of the same clip).
        ground_truth: put the clip's ground truth (``label``, ``fg_tokens``) in the reset info
            (for evaluation; off by default, so that an agent never sees it).
    """

    metadata = {"render_modes": [], "autoreset_mode": AutoresetMode.SAME_STEP}

    def __init__(
        self,
        model: VideoMAE,
        dataset: Dataset,
        mask_ratio: float,
        device: str = "cpu",
        action: str = "mask",
        observation: str = "patches",
        reward: str = "hide_hard",
        ground_truth: bool = False,
    ) -> None:
        super().__init__()
        self.ground_truth = bool(ground_truth)
        check_option("action", action, ACTIONS)
        check_option("observation", observation, OBSERVATIONS)
        check_option("reward", reward, REWARDS)
        if len(dataset) < 1:
            raise ValueError("the dataset holds no clips")
        self.model = model.to(device).eval()
        self.dataset = dataset
        self.device = torch.device(device)
        self.action, self.observation, self.reward = action, observation, reward
        cfg = model.cfg
        self.num_tokens, self.patch_dim = cfg.num_tokens, cfg.patch_dim
        self.num_masked = count_masked(cfg.num_tokens, mask_ratio)
        self.num_visible = self.num_tokens - self.num_masked
        self.observation_space = observation_space(model, observation)
        if action == "mask":
            self.action_space = FixedCountMultiBinary(cfg.num_tokens, self.num_masked)
        else:
            self.action_space = score_space(cfg.num_tokens)
        self._video: torch.Tensor | None = None
        self._obs: np.ndarray | None = None

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        index = int(self.np_random.integers(len(self.dataset)))
        item = self.dataset[index]
        cfg = self.model.cfg
        expected = (cfg.in_chans, cfg.num_frames, cfg.img_size, cfg.img_size)
        if tuple(item["video"].shape) != expected:
            raise ValueError(f"clip {index} has shape {tuple(item['video'].shape)}; the MAE takes {expected} [C, T, H, W]")
        self._video = item["video"].unsqueeze(0).to(self.device)
        obs = observe(self.model, self._video, self.observation)
        # Resizing filters can overshoot [0, 1] by a hair; keep observations inside the space.
        self._obs = np.clip(obs, self.observation_space.low, self.observation_space.high)
        info = {"index": index}
        if self.ground_truth:
            for key, value in item.items():
                if key != "video" and isinstance(value, torch.Tensor):
                    info[key] = value.cpu().numpy()
        return self._obs.copy(), info

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict]:
        if self._video is None:
            raise RuntimeError("call reset() before step()")
        mask_np = self._mask_of(np.asarray(action))
        masks = [mask_np]
        relative = self.reward.endswith("_relative")
        if relative:
            masks.append(self.np_random.permutation(self.num_tokens) < self.num_masked)
        mask = torch.as_tensor(np.stack(masks), device=self.device)  # [1 or 2, N]
        video = self._video.expand(len(masks), *self._video.shape[1:])
        with torch.no_grad():
            token_reward, loss = reconstruction_step(self.model, video, mask)
        error = float(loss[0])
        info = {"token_reward": token_reward[0, :, 0].cpu().numpy(), "mask": mask_np}
        if relative:
            random_error = float(loss[1])
            info["random_error"] = random_error
            # Errors are squared pixel differences: positive unless a clip is reproduced exactly.
            gain = (error - random_error) / max(random_error, 1e-12)
        else:
            gain = error
        reward = gain if self.reward.startswith("hide_hard") else -gain
        return self._obs.copy(), reward, True, False, info

    # --- actions -----------------------------------------------------------------------------------
    def _mask_of(self, action: np.ndarray) -> np.ndarray:
        """The bool mask ``[N]`` (True = masked) of one action, or a ValueError saying what is wrong."""
        n = self.num_tokens
        if self.action == "mask":
            if action.shape != (n,):
                raise ValueError(f"action must be a 0/1 vector of shape ({n},), got {action.shape}")
            if not (np.issubdtype(action.dtype, np.integer) or np.issubdtype(action.dtype, np.floating)
                    or action.dtype == np.bool_):
                raise ValueError(f"action must be a 0/1 vector of integers, floats or bools, got dtype {action.dtype}")
            if not np.isin(action, (0, 1)).all():
                raise ValueError("action must hold only 0 and 1 (1 = masked)")
            count = int(action.sum())
            if count != self.num_masked:
                raise ValueError(
                    f"action masks {count} tokens; this environment masks exactly {self.num_masked} "
                    "(agents that sample bits independently need action='scores')"
                )
            return action.astype(bool)
        if action.shape != (n,):
            raise ValueError(f"scores action must have shape ({n},), got {action.shape}")
        if not np.issubdtype(action.dtype, np.number) or np.issubdtype(action.dtype, np.complexfloating):
            raise ValueError(f"scores action must be real numbers, got dtype {action.dtype}")
        bad = np.flatnonzero(~np.isfinite(action))
        if bad.size:
            raise ValueError(f"scores action must be finite; got {action[bad[:5]].tolist()} at tokens {bad[:5].tolist()}")
        return scores_to_mask(action.astype(np.float64), self.num_visible, self.np_random)


def make_gym_env(
    model: str | VideoMAE = "tiny",
    dataset: Dataset | None = None,
    mask_ratio: float = 0.75,
    seed: int = 0,
    split: str = "train",
    device: str = "cpu",
    model_options: dict[str, Any] | None = None,
    **options: Any,
) -> MaskedVideoGymEnv:
    """The registered env's factory: an MAE (a preset name, initialized from ``seed``, or a built
    one) and synthetic clips of its geometry (or ``dataset``); ``options`` go to
    :class:`MaskedVideoGymEnv` (``action``, ``observation``, ``reward``, ``ground_truth``).

    ``split="val"`` draws the clips from the held-out seed family.
    """
    from adamae_rl.data import SyntheticClips
    from adamae_rl.models import build_mae

    if isinstance(model, str):
        torch.manual_seed(seed)
        model = build_mae(model, **(model_options or {}))
    elif model_options:
        raise ValueError("model_options only apply to a preset name")
    if dataset is None:
        if split not in ("train", "val"):
            raise ValueError(f"split must be 'train' or 'val', got {split!r}")
        cfg = model.cfg
        dataset = SyntheticClips(
            num_frames=cfg.num_frames, img_size=cfg.img_size, patch_size=cfg.patch_size,
            tubelet_size=cfg.tubelet_size, seed=seed + (10_000 if split == "val" else 0),
        )
    return MaskedVideoGymEnv(model, dataset, mask_ratio, device=device, **options)


def make_gym_vector_env(
    num_envs: int = 1,
    autoreset_mode: AutoresetMode | str = AutoresetMode.SAME_STEP,
    vectorization: str = "sync",
    **kwargs: Any,
) -> gym.vector.VectorEnv:
    """``num_envs`` copies of :func:`make_gym_env` (one MAE, built once and shared by the copies),
    stepping in ``SAME_STEP`` autoreset mode by default (one-step episodes waste no step).

    ``vectorization``: ``"sync"`` or ``"async"`` (forked workers on Linux).
    """
    kwargs.pop("max_episode_steps", None)  # gymnasium passes the spec's; episodes end on their own
    single = make_gym_env(**kwargs)
    model, dataset = single.model, single.dataset
    options = {k: v for k, v in kwargs.items() if k not in ("model", "dataset", "model_options")}
    fns = [lambda: make_gym_env(model, dataset, **options) for _ in range(num_envs)]
    if vectorization == "sync":
        return gym.vector.SyncVectorEnv(fns, autoreset_mode=autoreset_mode)
    if vectorization == "async":
        import sys

        context = "fork" if sys.platform.startswith("linux") else None
        return gym.vector.AsyncVectorEnv(fns, autoreset_mode=autoreset_mode, context=context)
    raise ValueError(f"vectorization must be 'sync' or 'async', got {vectorization!r}")


def register_gym_env() -> None:
    """Register ``adamae_rl/MaskedVideo-v0`` with gymnasium (once; importing ``adamae_rl.envs`` does it)."""
    if ENV_ID in gym.registry:
        return
    gym.register(
        id=ENV_ID,
        entry_point="adamae_rl.envs.gym_adapter:make_gym_env",
        vector_entry_point="adamae_rl.envs.gym_adapter:make_gym_vector_env",
        disable_env_checker=True,  # the env passes gymnasium's checker (tests); skip it per make
    )
