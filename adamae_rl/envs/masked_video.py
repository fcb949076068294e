"""The MAE as a TorchRL environment: a contextual bandit whose action is a token mask."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import nullcontext

import torch
from tensordict import TensorDict, TensorDictBase
from torchrl.data import Binary, Categorical, Composite, Unbounded
from torchrl.envs import EnvBase

from adamae_rl.envs.decoder_masks import DecoderMask, make_decoder_mask
from adamae_rl.envs.specs import FixedCountMaskSpec
from adamae_rl.geometry import policy_geometry
from adamae_rl.models.videomae import VideoMAE, check_mask
from adamae_rl.policies.distributions import count_masked

# Keys the env itself writes; everything else in a data batch rides along as an observation.
OWN_KEYS = ("video", "tokens", "patches", "loss_recon", "reward_mask", "token_reward")
REWARD_REDUCTIONS = ("none", "mean")
REWARD_DIRECTIONS = {"show_hard": -1.0, "hide_hard": 1.0}


def reconstruction_step(
    model: VideoMAE,
    video: torch.Tensor,
    mask: torch.Tensor,
    forward: torch.nn.Module | None = None,
    decode: torch.Tensor | None = None,
    patches: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Run the MAE on one masked batch.

    Args:
        video: ``[B, C, T, H, W]``; mask: bool ``[B, N]``, True = masked.
        forward: runs the MAE's forward instead of ``model`` (e.g. its DDP wrapper).
        decode: bool ``[B, N]``, True = reconstructed (a subset of ``mask``, equal count per
            row; decoder masking); None reconstructs every masked token.
        patches: ``model.patchify(video)`` ``[B, N, P]`` when the caller has it already.
    Returns:
        reward ``[B, N, 1]``: detached per-token squared error where reconstructed, 0 elsewhere;
        loss_recon ``[B]``: each clip's mean error over its reconstructed tokens, with gradient.
    """
    num_masked = check_mask(mask, video.shape[0], model.cfg.num_tokens)
    if decode is None:
        errors = model.token_errors(video, mask, forward, patches=patches).float()  # [B, N]
        return errors.detach().unsqueeze(-1), errors.sum(dim=1) / num_masked
    num_decoded = int(decode[0].sum())
    if bool((decode & ~mask).any()) or bool((decode.sum(dim=1) != num_decoded).any()) or num_decoded < 1:
        raise ValueError("decode must be a non-empty subset of mask with the same count in every row")
    errors = model.token_errors(video, mask, forward, decode, patches).float()
    return errors.detach().unsqueeze(-1), errors.sum(dim=1) / num_decoded


def clip_reward(token_reward: torch.Tensor, rewarded: torch.Tensor, sign: float) -> torch.Tensor:
    """``sign`` times the mean per-token reward over the rewarded tokens: ``[B, N, 1]``, ``[B, N]`` -> ``[B, 1]``."""
    total = token_reward.squeeze(-1).masked_fill(~rewarded, 0.0).sum(-1, keepdim=True)
    return sign * total / rewarded.sum(-1, keepdim=True).clamp(min=1)


def observation(model: VideoMAE, video: torch.Tensor, token_grad: bool = False) -> dict[str, torch.Tensor]:
    """What a policy observes of a clip batch ``video`` ``[B, C, T, H, W]``.

    Returns:
        ``video``; ``tokens`` ``[B, N, D]``, the MAE's patch embeddings, detached unless
        ``token_grad`` (the sampler's input then carries its loss into the patch embedding, as
        AdaMAE's own code does); ``patches`` ``[B, N, P]``, the raw pixel patches.
    """
    with nullcontext() if token_grad else torch.no_grad():
        tokens = model.embed(video)
    return {"video": video, "tokens": tokens, "patches": model.patchify(video)}


class MaskedVideoEnv(EnvBase):
    """One episode = one step: observe a batch of clips, choose masks, get per-token errors.

    ``reset()`` draws the next batch of clips and writes ``video`` ``[B, C, T, H, W]``,
    ``tokens`` ``[B, N, D]`` (the MAE's patch embeddings, detached unless ``token_grad``) and
    ``patches`` ``[B, N, P]``, plus whatever else the clip source provides (``label``, ``fg_tokens``, ...).
    ``step(td)`` reads ``mask`` bool ``[B, N]`` (True = masked) and writes under ``"next"``:
    ``reward`` ``[B, N, 1]`` (detached per-token error where masked, 0 where visible) and
    ``loss_recon`` ``[B]`` (per-clip mean masked error, with gradient into the MAE; the trainer
    takes its mean), ``reward_mask`` bool ``[B, N]`` (True = the token was reconstructed and its
    reward is known; the masked tokens, or their decoder-masked subset) and ``done``/``terminated``
    True.

    With a decoder mask (``decoder_mask``, VideoMAE V2's dual masking, see
    :mod:`adamae_rl.envs.decoder_masks`) the decoder rebuilds only a subset of the masked tokens:
    the reward of a masked token left out is unknown, not zero, so objectives read ``reward_mask``.

    Masks with any count ``N_m`` in ``[1, N-1]`` are accepted as long as every row has the same
    count (tube/frame policies round to whole units); the action spec samples the nominal
    ``num_masked = round(mask_ratio * N)``.

    Args:
        model: the MAE (trained by the caller through ``loss_recon``).
        clips: endless iterator of batches ``{"video": [B, C, T, H, W], ...}``.
        batch_size: ``B``.
        mask_ratio: nominal share of masked tokens in (0, 1).
        device: where the MAE and observations live.
        autocast_dtype: e.g. ``torch.bfloat16`` to run the MAE under autocast in ``step``.
        token_grad: False (default): ``tokens`` are detached, so a policy loss never reaches the
            MAE (this toolkit's gradient separation). True reproduces the official AdaMAE code,
            whose sampler reads the patch embeddings undetached: the policy loss then also
            reaches ``patch_embed`` (and nothing else of the MAE; ``loss_recon`` still never
            reaches the policy). A departure from the separation contract, for reproductions.
        forward_module: a wrapper that runs ``model``'s forward in ``step`` (e.g.
            ``DistributedDataParallel(model)``, which synchronizes the MAE's gradients).
        decoder_mask: None / ``"none"`` (reconstruct every masked token), a name
            (``"running_cell"``, ``"random"``) or ``{"name": ..., "ratio": ...}``.
        reward_reduce: ``"none"`` (default): ``reward`` is the per-token error ``[B, N, 1]``.
            ``"mean"``: ``reward`` is one number per clip ``[B, 1]``, the mean error over the
            reconstructed tokens signed by ``reward_direction``, for TorchRL's losses and value
            estimators (``ReinforceLoss``, ``A2CLoss``, ``ClipPPOLoss``), and the per-token
            error moves to ``token_reward`` ``[B, N, 1]`` (which this package's objectives read).
        reward_direction: with ``reward_reduce="mean"``: ``"show_hard"`` (default; reward =
            minus the error: an agent learns to leave hard tokens visible, the direction AdaMAE's
            sampler moves) or ``"hide_hard"`` (plus the error: the adversarial reading).
        masks_per_clip: ``K`` masks of every clip per step: each clip the source gives is repeated
            ``K`` times in consecutive rows (``batch_size`` counts rows, a multiple of ``K``; the
            source gives ``batch_size / K`` clips), for leave-one-out baselines
            (``plackett_luce`` with ``baseline="rloo", group_size=K``).
    """

    batch_locked = True

    def __init__(
        self,
        model: VideoMAE,
        clips: Iterator[Mapping[str, torch.Tensor]],
        batch_size: int,
        mask_ratio: float,
        device: torch.device | str | None = None,
        autocast_dtype: torch.dtype | None = None,
        token_grad: bool = False,
        forward_module: torch.nn.Module | None = None,
        decoder_mask: str | Mapping | DecoderMask | None = None,
        reward_reduce: str = "none",
        reward_direction: str = "show_hard",
        masks_per_clip: int = 1,
    ) -> None:
        device = torch.device(device or "cpu")
        if reward_reduce not in REWARD_REDUCTIONS:
            raise ValueError(f"reward_reduce must be one of {', '.join(REWARD_REDUCTIONS)}, got {reward_reduce!r}")
        if reward_direction not in REWARD_DIRECTIONS:
            raise ValueError(f"reward_direction must be one of {', '.join(REWARD_DIRECTIONS)}, got {reward_direction!r}")
        if int(masks_per_clip) < 1 or batch_size % int(masks_per_clip):
            raise ValueError(f"masks_per_clip={masks_per_clip} must be >= 1 and divide batch_size={batch_size}")
        self.reward_reduce, self.reward_direction = reward_reduce, reward_direction
        self.masks_per_clip = int(masks_per_clip)
        super().__init__(device=device, batch_size=torch.Size([batch_size]))
        self.model = model.to(device)
        self.clips = clips
        self.mask_ratio = float(mask_ratio)
        self.num_masked = count_masked(model.cfg.num_tokens, mask_ratio)
        self.autocast_dtype = autocast_dtype
        self.token_grad = bool(token_grad)
        self.forward_module = forward_module  # runs the MAE's forward instead of model (its DDP wrapper)
        self.decoder_mask = (
            decoder_mask if isinstance(decoder_mask, DecoderMask) else make_decoder_mask(decoder_mask, model.cfg.grid, self.num_masked)
        )
        self._pending = self._next_batch()  # peek once to learn the extra keys; served first
        # (video, patches) of the last observation: a step on that same video tensor reuses the
        # patches instead of cutting the clip again (its own copy, whatever a policy did to the td).
        self._observed: tuple[torch.Tensor, torch.Tensor] | None = None
        self._make_specs(self._pending)

    # --- geometry that policies need --------------------------------------------------------------
    @property
    def grid(self) -> tuple[int, int, int]:
        return self.model.cfg.grid

    @property
    def num_tokens(self) -> int:
        return self.model.cfg.num_tokens

    @property
    def geometry(self) -> dict:
        """Keyword arguments a policy factory may take (see ``adamae_rl.policies.registry``)."""
        return policy_geometry(self.model.cfg, self.mask_ratio)

    # --- specs ---------------------------------------------------------------------------------------
    def _make_specs(self, batch: Mapping[str, torch.Tensor]) -> None:
        cfg, b, dev = self.model.cfg, self.batch_size, self.device
        n = cfg.num_tokens
        obs = {
            "video": Unbounded(shape=(*b, cfg.in_chans, cfg.num_frames, cfg.img_size, cfg.img_size), device=dev),
            "tokens": Unbounded(shape=(*b, n, cfg.embed_dim), device=dev),
            "patches": Unbounded(shape=(*b, n, cfg.patch_dim), device=dev),
            "loss_recon": Unbounded(shape=b, device=dev),
            "reward_mask": Binary(shape=(*b, n), device=dev, dtype=torch.bool),
        }
        for key, value in batch.items():
            if key in OWN_KEYS:
                continue
            if value.dtype == torch.bool:
                obs[key] = Binary(shape=value.shape, device=dev, dtype=torch.bool)
            else:
                obs[key] = Unbounded(shape=value.shape, device=dev, dtype=value.dtype)
        self.observation_spec = Composite(obs, shape=b)
        # The action is written under "mask" (not TorchRL's default "action").
        self.full_action_spec = Composite(mask=FixedCountMaskSpec.make(n, self.num_masked, b, dev), shape=b)
        if self.reward_reduce == "mean":
            obs["token_reward"] = Unbounded(shape=(*b, n, 1), device=dev)
            self.observation_spec = Composite(obs, shape=b)
            self.reward_spec = Unbounded(shape=(*b, 1), device=dev)
        else:
            self.reward_spec = Unbounded(shape=(*b, n, 1), device=dev)
        flag = Categorical(2, shape=(*b, 1), dtype=torch.bool, device=dev)
        self.done_spec = Composite(done=flag, terminated=flag.clone(), shape=b)

    # --- data ---------------------------------------------------------------------------------------
    def _next_batch(self) -> dict[str, torch.Tensor]:
        batch = dict(next(self.clips))
        if "video" not in batch:
            raise KeyError(f"a clip batch needs a 'video' entry; got keys {sorted(batch)}")
        size, clips = batch["video"].shape[0], self.batch_size[0] // self.masks_per_clip
        if size != clips:
            raise ValueError(f"clip source gave a batch of {size} clips, the env expects {clips}")
        nonblocking = self.device.type == "cuda"
        k = self.masks_per_clip
        return {
            key: (v if k == 1 else v.repeat_interleave(k, dim=0)).to(self.device, non_blocking=nonblocking)
            for key, v in batch.items()
            if isinstance(v, torch.Tensor)
        }

    def seek_clips(self, state: Mapping[str, int]) -> None:
        """Move the clip source to a saved position (``ClipStream.state_dict()``).

        The batch peeked at construction is dropped, so the next ``reset()`` draws from ``state``.
        """
        self.clips.load_state_dict(state)
        self._pending = None

    def _reset(self, tensordict: TensorDictBase | None = None, **kwargs) -> TensorDictBase:
        batch = self._pending if self._pending is not None else self._next_batch()
        self._pending = None
        out = {k: v for k, v in batch.items() if k not in OWN_KEYS}
        seen = observation(self.model, batch["video"], self.token_grad)
        self._observed = (seen["video"], seen["patches"])
        if self.reward_reduce == "mean":
            out["token_reward"] = torch.zeros((*self.batch_size, self.num_tokens, 1), device=self.device)
        out.update(
            **seen,
            loss_recon=torch.zeros(self.batch_size, device=self.device),
            reward_mask=torch.zeros((*self.batch_size, self.num_tokens), dtype=torch.bool, device=self.device),
            done=torch.zeros((*self.batch_size, 1), dtype=torch.bool, device=self.device),
            terminated=torch.zeros((*self.batch_size, 1), dtype=torch.bool, device=self.device),
        )
        return TensorDict(out, batch_size=self.batch_size, device=self.device)

    def _step(self, tensordict: TensorDictBase) -> TensorDictBase:
        for key in ("video", "mask"):
            if key not in tensordict.keys():
                raise KeyError(
                    f"env.step needs {key!r} in the tensordict (got keys {sorted(map(str, tensordict.keys()))}); "
                    "run a policy on env.reset()'s output first: env.step(policy(env.reset()))"
                )
        video, mask = tensordict.get("video"), tensordict.get("mask")
        autocast = (
            torch.autocast(self.device.type, dtype=self.autocast_dtype)
            if self.autocast_dtype is not None
            else nullcontext()
        )
        decode = None if self.decoder_mask is None else self.decoder_mask.select(mask)
        patches = self._observed[1] if self._observed is not None and self._observed[0] is video else None
        self._observed = None  # one step per observation: do not keep the clip alive
        with autocast:
            reward, loss_recon = reconstruction_step(self.model, video, mask, self.forward_module, decode, patches)
        # A one-step episode: the next observation is the terminal copy of the current one.
        nxt = tensordict.select(*self.observation_spec.keys(), strict=False).exclude("loss_recon", "reward_mask", "token_reward")
        rewarded = mask.clone() if decode is None else decode
        if self.reward_reduce == "mean":
            nxt.set("token_reward", reward)
            reward = clip_reward(reward, rewarded, REWARD_DIRECTIONS[self.reward_direction])
        nxt.set("reward", reward)
        nxt.set("reward_mask", rewarded)
        nxt.set("loss_recon", loss_recon)
        done = torch.ones((*self.batch_size, 1), dtype=torch.bool, device=self.device)
        nxt.set("done", done)
        nxt.set("terminated", done.clone())
        return nxt

    def _set_seed(self, seed: int | None) -> None:
        # Policies draw masks from torch's global RNG; clip order is seeded by the clip source.
        if seed is not None:
            torch.manual_seed(seed)
