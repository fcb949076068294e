"""Render what a masking policy does to held-out clips: masks, reconstructions, errors, sampler maps.

Everything here works on tensors; the figure and GIF writers live in :mod:`adamae_rl.visualization.figures`.
Pixel tensors are ``[3, T, H, W]`` (one clip) or ``[B, 3, T, H, W]`` in [0, 1]; token maps are
``[B, N]`` in ``(t h w)`` order and are spread to pixels with :func:`tokens_to_pixels`.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import torch
from einops import rearrange
from tensordict import TensorDict
from torch import nn

from adamae_rl.envs.masked_video import observation
from adamae_rl.models.videomae import VideoMAE, gather_tokens
from adamae_rl.pixels import denormalize, denormalize_patches


@dataclass
class Rendering:
    """Per-clip panels of a batch, all pixel tensors in [0, 1].

    Attributes:
        input: ``[B, 3, T, H, W]`` the clips.
        mask: bool ``[B, N]``, True = masked.
        reconstruction: ``[B, 3, T, H, W]``: predictions pasted into the masked tokens, the input
            kept where tokens were visible (as VideoMAE's visualization).
        error: ``[B, T, H, W]`` squared error of the reconstruction, mean over channels (0 where
            visible: those pixels are the input).
        token_error: ``[B, N]`` the MAE's per-token loss (0 where visible), in target units.
        probability: ``[B, N]`` the policy's score map: softmax of a learned sampler's logits
            (the chance of a token being drawn visible), else the ``scores`` entry a policy
            writes (motion and embedding_change: the first draw's probability within each slice;
            loss_predictor: the predicted error), or None for a policy with neither.
        fg_tokens: bool ``[B, N]`` or None: tokens on a moving shape (synthetic clips).
        score_label: what ``probability`` holds, for colour bars (``p(visible)`` for a sampler's
            softmax, ``policy score`` for a policy's ``scores``).
    """

    input: torch.Tensor
    mask: torch.Tensor
    reconstruction: torch.Tensor
    error: torch.Tensor
    token_error: torch.Tensor
    probability: torch.Tensor | None
    fg_tokens: torch.Tensor | None = None
    score_label: str = "policy score"

    def cpu(self) -> Rendering:
        """The same rendering with every tensor on the CPU (figures read them with numpy)."""
        return replace(self, **{f.name: getattr(self, f.name).cpu() for f in fields(self)
                                if isinstance(getattr(self, f.name), torch.Tensor)})


def unpatchify(patches: torch.Tensor, model: VideoMAE) -> torch.Tensor:
    """Inverse of ``model.patchify``: ``[B, N, P]`` in ``(t p p c)`` -> ``[B, C, T, H, W]``."""
    cfg = model.cfg
    tn, hn, wn = cfg.grid
    return rearrange(patches, "b (tn hn wn) (t p1 p2 c) -> b c (tn t) (hn p1) (wn p2)",
                     tn=tn, hn=hn, wn=wn, t=cfg.tubelet_size, p1=cfg.patch_size, p2=cfg.patch_size)


def tokens_to_pixels(values: torch.Tensor, model: VideoMAE) -> torch.Tensor:
    """Spread a per-token map over its tubelet's pixels: ``[B, N]`` -> ``[B, T, H, W]``."""
    cfg = model.cfg
    tn, hn, wn = cfg.grid
    grid = values.reshape(values.shape[0], tn, hn, wn)
    t, p = cfg.tubelet_size, cfg.patch_size
    return grid.repeat_interleave(t, 1).repeat_interleave(p, 2).repeat_interleave(p, 3)


def predictions_to_pixels(pred: torch.Tensor, pixel_patches: torch.Tensor, mask: torch.Tensor, model: VideoMAE) -> torch.Tensor:
    """MAE predictions of the masked tokens as pixels in [0, 1].

    For raw-pixel targets the predictions already are pixels. For per-patch normalized targets
    they are un-normalized with the mean and standard deviation of the true patch, per channel
    (VideoMAE's visualization does the same: the model cannot know a hidden patch's mean).

    Args:
        pred: ``[B, N_m, P]`` predictions, in masked-token order.
        pixel_patches: ``[B, N, P]`` the input's pixels in [0, 1], ``(t p p c)`` layout.
        mask: bool ``[B, N]``.
    Returns:
        ``[B, N_m, P]`` pixels (not clamped).
    """
    if not model.cfg.norm_target:
        return pred
    return denormalize_patches(pred, gather_tokens(pixel_patches, mask), model.cfg.in_chans)


def observe(model: VideoMAE, video: torch.Tensor, fg_tokens: torch.Tensor | None = None) -> TensorDict:
    """The observation a policy reads, built as ``MaskedVideoEnv.reset`` builds it."""
    out = observation(model, video)
    if fg_tokens is not None:
        out["fg_tokens"] = fg_tokens
    return TensorDict(out, batch_size=[video.shape[0]])


@torch.no_grad()
def render(model: VideoMAE, policy: nn.Module, video: torch.Tensor, fg_tokens: torch.Tensor | None = None) -> Rendering:
    """Draw masks with ``policy`` for ``video`` ``[B, C, T, H, W]`` (normalized) and reconstruct.

    Both modules run in eval mode and return to the mode they were in (training calls this too).
    """
    modes = model.training, policy.training
    model.eval(), policy.eval()
    try:
        return _render(model, policy, video, fg_tokens)
    finally:
        model.train(modes[0]), policy.train(modes[1])


def _render(model: VideoMAE, policy: nn.Module, video: torch.Tensor, fg_tokens: torch.Tensor | None) -> Rendering:
    td = policy(observe(model, video, fg_tokens))
    mask = td.get("mask")
    logits = td.get("logits", None)
    scores = td.get("scores", None)
    pixels = denormalize(video.float())  # [B, 3, T, H, W]
    pixel_patches = model.patchify(pixels)  # [B, N, P]
    pred = predictions_to_pixels(model(video, mask).float(), pixel_patches, mask, model)
    recon_patches = pixel_patches.clone()
    recon_patches[mask] = pred.reshape(-1, pred.shape[-1])
    recon = unpatchify(recon_patches, model).clamp(0, 1)
    return Rendering(
        input=pixels.clamp(0, 1),
        mask=mask,
        reconstruction=recon,
        error=(recon - pixels.clamp(0, 1)).pow(2).mean(dim=1),
        token_error=model.token_errors(video, mask).float(),
        probability=score_map(logits, scores),
        fg_tokens=fg_tokens,
        score_label="p(visible)" if logits is not None else "policy score",
    )


def training_snapshot(model: VideoMAE, policy: nn.Module, env, seed: int, clips: int = 2) -> Rendering:
    """A rendering of the first ``clips`` clips of the next batch of ``env`` (a held-out env),
    on the CPU, with the caller's random state left as it was: logging a figure during training
    never changes the training trajectory.
    """
    device = getattr(env, "device", None)
    devices = [device.index or 0] if device is not None and torch.device(device).type == "cuda" else []
    seek = getattr(env, "seek_clips", None)
    if seek is not None:  # the same clips at every call, so that figures of successive steps compare
        seek({"epoch": 0, "start": 0})
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        obs = env.reset()
        video = obs.get("video")[:clips]
        fg = obs.get("fg_tokens", None)
        return render(model, policy, video, None if fg is None else fg[:clips]).cpu()


def score_map(logits: torch.Tensor | None, scores: torch.Tensor | None) -> torch.Tensor | None:
    """``[B, N]`` for the probability column: softmax of ``logits`` where a policy writes them,
    else its ``scores`` (non-negative: shifted by their minimum when a score can be negative,
    such as a predicted error), else None."""
    if logits is not None:
        return logits.float().softmax(dim=-1)
    if scores is None:
        return None
    scores = scores.float()
    low = scores.min(dim=-1, keepdim=True).values
    return torch.where(low < 0, scores - low, scores)


def mask_overlay(pixels: torch.Tensor, masked_pixels: torch.Tensor, dim: float = 0.25) -> torch.Tensor:
    """Masked regions faded to grey, visible ones as they are.

    Args:
        pixels: ``[3, T, H, W]`` in [0, 1].
        masked_pixels: bool ``[T, H, W]``, True where the pixel's token is masked.
        dim: how much of the picture stays visible under the grey (0 = flat grey).
    """
    grey = torch.full_like(pixels, 0.5)
    faded = dim * pixels + (1 - dim) * grey
    return torch.where(masked_pixels.unsqueeze(0), faded, pixels)


def colorize(values: torch.Tensor, cmap: str, vmax: float | None = None) -> torch.Tensor:
    """Map ``values`` ``[...]`` >= 0 through a matplotlib colormap: -> ``[3, ...]`` in [0, 1].

    ``vmax`` (default: the maximum of ``values``) maps to the top colour; 0 to the bottom.
    """
    from matplotlib import colormaps

    top = float(values.max()) if vmax is None else vmax
    scaled = (values / top if top > 0 else torch.zeros_like(values)).clamp(0, 1)
    rgba = torch.from_numpy(colormaps[cmap](scaled.numpy())).float()  # [..., 4]
    return rgba[..., :3].movedim(-1, 0)
