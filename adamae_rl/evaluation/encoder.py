"""The pre-trained encoder as a feature extractor and as a classifier backbone.

Evaluation shows the encoder *every* token (no mask), as VideoMAE's fine-tuning does:
``VideoMAE.forward_encoder(video)`` without a mask.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from adamae_rl.models.videomae import VideoMAE


def encode_all_tokens(model: VideoMAE, video: torch.Tensor) -> torch.Tensor:
    """Encode every token: video ``[B, C, T, H, W]`` -> ``[B, N, D]`` (final norm applied)."""
    return model.forward_encoder(video)


POOLINGS = ("mean", "time", "grid")
# pool="grid": means over this many space-time cells (t, h, w); a token grid smaller than this on an
# axis keeps its own size there.
GRID_CELLS = (4, 4, 4)


@torch.no_grad()
def pooled_features(model: VideoMAE, video: torch.Tensor, pool: str = "mean") -> torch.Tensor:
    """Frozen encoder output over all tokens, pooled.

    Args:
        video: ``[B, C, T, H, W]``.
        pool: ``mean`` -- the mean over all tokens, ``[B, D]`` (VideoMAE's pooling); ``time`` --
            the spatial mean of each temporal slice, concatenated, ``[B, T' * D]``: keeps *when*
            things are, which motion direction needs (a diagnostic, not a VideoMAE protocol); ``grid``
            -- the mean over each cell of a :data:`GRID_CELLS` space-time grid, concatenated,
            ``[B, 64 * D]``: keeps where *and* when, coarsely (on the tiny model's 8x8x8 tokens a
            cell is 2x2x2 tokens). Motion direction is where a shape is when; a spatial mean per
            slice erases the where.
    """
    if pool not in POOLINGS:
        raise ValueError(f"pool must be one of {POOLINGS}, got {pool!r}")
    tokens = encode_all_tokens(model, video)  # [B, N, D]
    if pool == "mean":
        return tokens.mean(dim=1)
    if pool == "time":
        t_slices = model.cfg.grid[0]
        return tokens.reshape(tokens.shape[0], t_slices, -1, tokens.shape[-1]).mean(dim=2).flatten(1)
    grid = model.cfg.grid
    volume = tokens.transpose(1, 2).reshape(tokens.shape[0], tokens.shape[-1], *grid)  # [B, D, T', H', W']
    cells = tuple(min(c, g) for c, g in zip(GRID_CELLS, grid))
    return F.adaptive_avg_pool3d(volume, cells).flatten(2).transpose(1, 2).flatten(1)  # cell-major: [B, cells * D]


class VideoClassifier(nn.Module):
    """VideoMAE's fine-tuning model: encoder over all tokens -> mean pool -> LayerNorm -> linear.

    The MAE's decoder is dropped. As VideoMAE with mean pooling, the pooled features go through a
    fresh ``fc_norm`` (the encoder's last norm is kept too: it was trained, and it is cheap), and
    the head starts near zero so that the first updates do not wreck the pre-trained features.

    Args:
        mae: a (pre-trained or freshly initialised) :class:`VideoMAE`; its encoder is copied.
        num_classes: size of the output layer.
        head_init_scale: scale of the head's initial weights (VideoMAE: 1e-3 times trunc-normal 0.02).
    """

    def __init__(self, mae: VideoMAE, num_classes: int, head_init_scale: float = 1e-3) -> None:
        super().__init__()
        self.cfg = mae.cfg
        self.patch_embed = copy.deepcopy(mae.patch_embed)
        table = mae.pos_embed.detach().clone()
        if isinstance(mae.pos_embed, nn.Parameter):  # a learned table (model.pos_embed=learned) keeps training
            self.pos_embed = nn.Parameter(table)
        else:
            self.register_buffer("pos_embed", table, persistent=False)
        self.blocks = copy.deepcopy(mae.blocks)
        self.norm = copy.deepcopy(mae.norm)
        # A distance bias (model.attn_bias != none) over all N tokens is fixed: taken once here.
        bias = mae.attention_bias("encoder", None)
        self.register_buffer("attn_bias", None if bias is None else bias.clone(), persistent=False)
        dim = mae.cfg.embed_dim
        self.fc_norm = nn.LayerNorm(dim, eps=1e-6)
        self.head = nn.Linear(dim, num_classes)
        nn.init.trunc_normal_(self.head.weight, std=0.02)
        with torch.no_grad():
            self.head.weight.mul_(head_init_scale)
        nn.init.zeros_(self.head.bias)

    @property
    def depth(self) -> int:
        return len(self.blocks)

    def features(self, video: torch.Tensor) -> torch.Tensor:
        """video ``[B, C, T, H, W]`` -> pooled features ``[B, D]``."""
        cfg = self.cfg
        expected = (cfg.in_chans, cfg.num_frames, cfg.img_size, cfg.img_size)
        if video.dim() != 5 or tuple(video.shape[1:]) != expected:
            raise ValueError(f"video must be [B, {', '.join(map(str, expected))}], got {tuple(video.shape)}")
        x = self.patch_embed(video).flatten(2).transpose(1, 2) + self.pos_embed.to(video.dtype)
        for block in self.blocks:
            x = block(x, self.attn_bias)
        return self.fc_norm(self.norm(x).mean(dim=1))

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        """video ``[B, C, T, H, W]`` -> logits ``[B, num_classes]``."""
        return self.head(self.features(video))
