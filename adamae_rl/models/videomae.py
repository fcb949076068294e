"""VideoMAE-architecture masked autoencoder.

Tokens are tubelets ``(t, p, p)`` over a clip ``[B, C, T, H, W]``; the grid is
``(T/t, H/p, W/p)`` and tokens run in ``(t h w)`` row-major order, the order of
``Conv3d(...).flatten(2)``. Patch pixels are laid out ``(t p p c)``.

``mask``: bool ``[B, N]``, True = masked (hidden from the encoder). Every row masks the same
number ``N_m`` of tokens, so visible tokens gather into a dense ``[B, N_v, D]`` block.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal, get_args

import torch
import torch.nn.functional as F
import torch.utils.checkpoint
from einops import rearrange
from torch import nn

from adamae_rl.geometry import ClipGeometry
from adamae_rl.models.attention import attention
from adamae_rl.models.attention_bias import ATTN_BIASES, AttnBiasKind, distance_bias, grid_coordinates, head_slopes
from adamae_rl.pixels import denormalize, normalize_patches


PosEmbedKind = Literal["sincos_1d", "sincos_3d", "learned"]
POS_EMBEDS: tuple[str, ...] = get_args(PosEmbedKind)


@dataclass
class MAEConfig:
    """Everything that defines an MAE's shape. Presets fill in the widths; clip size is free."""

    img_size: int = 224
    num_frames: int = 16
    patch_size: int = 16
    tubelet_size: int = 2
    in_chans: int = 3
    embed_dim: int = 768
    depth: int = 12
    num_heads: int = 12
    decoder_embed_dim: int = 384
    decoder_depth: int = 4
    decoder_num_heads: int = 6
    mlp_ratio: float = 4.0
    norm_target: bool = True  # per-patch normalized pixels (VideoMAE default) vs raw [0, 1] pixels
    # Position table of encoder and decoder (see position_table): VideoMAE's 1-D table by default.
    pos_embed: PosEmbedKind = "sincos_1d"
    # Attention logits of encoder and decoder: as VideoMAE (none) or with a fixed distance bias per
    # head (distance: over (t, h, w); spatial_distance: over (h, w); see
    # adamae_rl.models.attention_bias). Not part of VideoMAE.
    attn_bias: AttnBiasKind = "none"

    def __post_init__(self) -> None:
        if self.pos_embed not in POS_EMBEDS:
            raise ValueError(f"pos_embed must be one of {', '.join(POS_EMBEDS)}; got {self.pos_embed!r}")
        if self.attn_bias not in ATTN_BIASES:
            raise ValueError(f"attn_bias must be one of {', '.join(ATTN_BIASES)}; got {self.attn_bias!r}")
        ClipGeometry.of(self)  # refuses sizes that do not divide, naming them
        for width, heads, what in (
            (self.embed_dim, self.num_heads, "encoder"),
            (self.decoder_embed_dim, self.decoder_num_heads, "decoder"),
        ):
            if width % heads:
                raise ValueError(f"{what} width {width} is not divisible by its {heads} heads")

    @property
    def grid(self) -> tuple[int, int, int]:
        """Token grid ``(T/t, H/p, W/p)`` (see :class:`adamae_rl.geometry.ClipGeometry`)."""
        return ClipGeometry.of(self).grid

    @property
    def num_tokens(self) -> int:
        return ClipGeometry.of(self).num_tokens

    @property
    def patch_dim(self) -> int:
        """Pixels per token ``P = t * p * p * c``."""
        return self.tubelet_size * self.patch_size**2 * self.in_chans


def sinusoid_table(num_positions: int, dim: int) -> torch.Tensor:
    """Fixed 1-D sine/cosine position table ``[num_positions, dim]`` (VideoMAE's, over all N tokens).

    Even feature indices carry sines, odd ones cosines, at frequencies ``10000^(-2(i//2)/dim)``.
    """
    pos = torch.arange(num_positions, dtype=torch.float64).unsqueeze(1)
    i = torch.arange(dim, dtype=torch.float64)
    angles = pos / torch.pow(10000.0, 2 * torch.div(i, 2, rounding_mode="floor") / dim)
    table = torch.where(i.long() % 2 == 0, torch.sin(angles), torch.cos(angles))
    return table.float()


def separable_sinusoid_table(grid: tuple[int, int, int], dim: int) -> torch.Tensor:
    """Space-time table ``[N, dim]``: 1-D sine/cosine tables of ``t``, ``h`` and ``w``, concatenated.

    Tokens in ``(t h w)`` order. Time and height get ``2 * (dim // 6)`` features each, width the
    rest. Two tokens at the same ``(h, w)`` share two thirds of their features, so "the same place
    in another frame" is a linear function of the table (the 1-D table over flattened positions
    has no such direction: same-place tokens are ``H'W'`` apart).
    """
    t_len, h_len, w_len = grid
    d_t = d_h = 2 * (dim // 6)
    d_w = dim - d_t - d_h
    if min(d_t, d_w) < 2:
        raise ValueError(f"a separable position table needs width >= 6, got {dim}")
    parts = [
        sinusoid_table(t_len, d_t)[:, None, None, :].expand(t_len, h_len, w_len, d_t),
        sinusoid_table(h_len, d_h)[None, :, None, :].expand(t_len, h_len, w_len, d_h),
        sinusoid_table(w_len, d_w)[None, None, :, :].expand(t_len, h_len, w_len, d_w),
    ]
    return torch.cat(parts, dim=-1).reshape(t_len * h_len * w_len, dim)


def position_table(kind: str, grid: tuple[int, int, int], dim: int) -> torch.Tensor:
    """Initial position table ``[N, dim]`` of a kind in :data:`POS_EMBEDS`.

    ``sincos_1d``: VideoMAE's fixed table over the flattened ``(t h w)`` index; ``sincos_3d``:
    :func:`separable_sinusoid_table`; ``learned``: trunc-normal (std 0.02) start of a trained table.
    """
    if kind == "sincos_1d":
        return sinusoid_table(grid[0] * grid[1] * grid[2], dim)
    if kind == "sincos_3d":
        return separable_sinusoid_table(grid, dim)
    if kind == "learned":
        return nn.init.trunc_normal_(torch.empty(grid[0] * grid[1] * grid[2], dim), std=0.02)
    raise ValueError(f"pos_embed must be one of {', '.join(POS_EMBEDS)}; got {kind!r}")


class Attention(nn.Module):
    """Multi-head self-attention with VideoMAE's qkv layout: one weight, bias on q and v only.

    Args:
        dim: width; num_heads: heads (``dim`` must divide evenly).
        qkv_bias: learn the q and v biases (VideoMAE); off, the qkv projection has no bias at all
            (AdaMAE's sampler block) and the module has no ``q_bias``/``v_bias`` parameters.
        proj_drop: dropout after the output projection (0 = none, the MAE's default).
    """

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = True, proj_drop: float = 0.0) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, dim * 3, bias=False)
        if qkv_bias:
            self.q_bias = nn.Parameter(torch.zeros(dim))
            self.v_bias = nn.Parameter(torch.zeros(dim))
        else:
            self.q_bias = self.v_bias = None
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop) if proj_drop > 0 else nn.Identity()

    def forward(self, x: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
        """x: ``[B, L, D]`` (, additive logit bias broadcastable to ``[B, H, L, L]``) -> ``[B, L, D]``."""
        # k has no bias: a bias on k adds the same score to every key and cancels in softmax.
        qkv_bias = None
        if self.q_bias is not None:
            qkv_bias = torch.cat([self.q_bias, torch.zeros_like(self.v_bias), self.v_bias])
        qkv = F.linear(x, self.qkv.weight, qkv_bias)
        q, k, v = rearrange(qkv, "b l (three h d) -> three b h l d", three=3, h=self.num_heads)
        out = attention(q, k, v, bias)
        return self.proj_drop(self.proj(rearrange(out, "b h l d -> b l (h d)")))


class Block(nn.Module):
    """Pre-norm transformer block (LayerNorm eps 1e-6, GELU MLP).

    The defaults are the MAE's. AdaMAE's sampler block differs in ways a reproduction sets here:
    ``qkv_bias=False``, ``dropout=0.1`` (after the attention projection and after the MLP's second
    linear, as VideoMAE's code places it) and ``norm_eps=1e-5``.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        dropout: float = 0.0,
        norm_eps: float = 1e-6,
    ) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=norm_eps)
        self.attn = Attention(dim, num_heads, qkv_bias=qkv_bias, proj_drop=dropout)
        self.norm2 = nn.LayerNorm(dim, eps=norm_eps)
        hidden = int(dim * mlp_ratio)
        layers = [nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim)]
        if dropout > 0:  # appended last, so parameter names (mlp.0, mlp.2) do not depend on it
            layers.append(nn.Dropout(dropout))
        self.mlp = nn.Sequential(*layers)
        # Stochastic depth (fine-tuning's drop path): in training, each sample skips each residual
        # branch with this probability (the kept ones scaled up). Not a parameter; 0 = off.
        self.drop_path = 0.0

    def forward(self, x: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
        """x: ``[B, L, D]`` (, attention logit bias ``[B or 1, H, L, L]``) -> ``[B, L, D]``."""
        x = x + self._dropped(self.attn(self.norm1(x), bias))
        return x + self._dropped(self.mlp(self.norm2(x)))

    def _dropped(self, branch: torch.Tensor) -> torch.Tensor:
        """``branch`` ``[B, ...]`` with whole samples zeroed at rate :attr:`drop_path` in training."""
        if not self.training or self.drop_path <= 0:
            return branch
        keep = 1.0 - self.drop_path
        shape = (branch.shape[0],) + (1,) * (branch.dim() - 1)
        return branch * branch.new_empty(shape).bernoulli_(keep).div_(keep)


def _compute_dtype(device: torch.device) -> torch.dtype:
    """The dtype matmuls run in on ``device`` here: autocast's when it is on, else fp32."""
    if torch.is_autocast_enabled(device.type):
        return torch.get_autocast_dtype(device.type)
    return torch.float32


def gather_tokens(x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """Select the same number of tokens from every row, in ascending token order.

    Args:
        x: ``[B, N, D]``; keep: bool ``[B, N]`` with the same count ``K`` of True per row.
    Returns:
        ``[B, K, D]``.
    """
    batch, _, dim = x.shape
    return x[keep].reshape(batch, -1, dim)


def check_mask(mask: torch.Tensor, batch: int, num_tokens: int) -> int:
    """Validate a mask and return its per-row masked count ``N_m``.

    mask: bool ``[B, N]``, True = masked; every row masks the same number, at least one token
    stays visible and at least one is masked.
    """
    if mask.dtype != torch.bool:
        raise ValueError(f"mask must be bool [B, N] (True = masked), got dtype {mask.dtype}")
    if tuple(mask.shape) != (batch, num_tokens):
        raise ValueError(f"mask shape {tuple(mask.shape)} does not match [B, N] = [{batch}, {num_tokens}]")
    counts = mask.sum(dim=1)
    num_masked = int(counts[0])
    if bool((counts != num_masked).any()):
        raise ValueError(
            f"every mask row must hide the same number of tokens; got counts {sorted(set(counts.tolist()))}"
        )
    if not 0 < num_masked < num_tokens:
        raise ValueError(f"mask hides {num_masked} of {num_tokens} tokens; need between 1 and {num_tokens - 1}")
    return num_masked


class VideoMAE(nn.Module):
    """Encoder over visible tokens + light decoder that predicts the masked tokens' pixels.

    Args:
        cfg: an :class:`MAEConfig` (see :func:`build_mae` and the presets).
    """

    def __init__(self, cfg: MAEConfig) -> None:
        super().__init__()
        self.cfg = cfg
        # Activation checkpointing of the transformer blocks (model.grad_checkpointing): a way to
        # run, not a property of the weights, so it is no MAEConfig field.
        self.grad_checkpointing = False
        t, p = cfg.tubelet_size, cfg.patch_size
        self.patch_embed = nn.Conv3d(cfg.in_chans, cfg.embed_dim, kernel_size=(t, p, p), stride=(t, p, p))
        self._add_position_table("pos_embed", cfg.embed_dim)
        self.blocks = nn.ModuleList(Block(cfg.embed_dim, cfg.num_heads, cfg.mlp_ratio) for _ in range(cfg.depth))
        self.norm = nn.LayerNorm(cfg.embed_dim, eps=1e-6)

        self.encoder_to_decoder = nn.Linear(cfg.embed_dim, cfg.decoder_embed_dim, bias=False)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, cfg.decoder_embed_dim))
        self._add_position_table("decoder_pos_embed", cfg.decoder_embed_dim)
        self.decoder_blocks = nn.ModuleList(
            Block(cfg.decoder_embed_dim, cfg.decoder_num_heads, cfg.mlp_ratio) for _ in range(cfg.decoder_depth)
        )
        self.decoder_norm = nn.LayerNorm(cfg.decoder_embed_dim, eps=1e-6)
        self.head = nn.Linear(cfg.decoder_embed_dim, cfg.patch_dim)
        if cfg.attn_bias != "none":  # fixed, rebuilt from the config: never stored in a state dict
            self.register_buffer("token_coords", grid_coordinates(cfg.grid, cfg.attn_bias), persistent=False)
            self.register_buffer("encoder_slopes", head_slopes(cfg.num_heads), persistent=False)
            self.register_buffer("decoder_slopes", head_slopes(cfg.decoder_num_heads), persistent=False)
        # Biases over all N tokens (fixed): (part, device, dtype) -> [1, H, N, N]; not module state.
        self._bias_cache: dict[tuple[str, torch.device, torch.dtype], torch.Tensor] = {}
        self._init_weights()

    def _add_position_table(self, name: str, dim: int) -> None:
        # Fixed tables are non-persistent buffers (rebuilt, never stored); a learned one is a parameter.
        table = position_table(self.cfg.pos_embed, self.cfg.grid, dim)
        if self.cfg.pos_embed == "learned":
            self.register_parameter(name, nn.Parameter(table))
        else:
            self.register_buffer(name, table, persistent=False)

    def _init_weights(self) -> None:
        # Xavier-uniform linears, zero biases, unit LayerNorms, small-normal mask token (as VideoMAE).
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.LayerNorm):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        nn.init.trunc_normal_(self.mask_token, std=0.02)

    # --- tokens and targets -------------------------------------------------------------------
    def embed(self, video: torch.Tensor) -> torch.Tensor:
        """Patch embeddings without position: video ``[B, C, T, H, W]`` -> ``[B, N, D]``."""
        self._check_video(video)
        return self.patch_embed(video).flatten(2).transpose(1, 2)

    def embed_patches(self, patches: torch.Tensor) -> torch.Tensor:
        """Patch embeddings from pixel patches: ``[B, K, P]`` in ``(t p p c)`` layout -> ``[B, K, D]``.

        The same map as :meth:`embed` (the Conv3d's weights, reordered to the patch layout), for
        any subset of tokens: the encoder embeds only the visible ones, so neither its forward
        nor its weight gradient touches the masked 90-95% of the clip.
        """
        weight = self.patch_embed.weight  # [D, C, t, p, p]
        weight = weight.permute(0, 2, 3, 4, 1).reshape(weight.shape[0], -1)  # [D, P], (t p p c)
        return F.linear(patches, weight, self.patch_embed.bias)

    def patchify(self, video: torch.Tensor) -> torch.Tensor:
        """Pixel patches: video ``[B, C, T, H, W]`` -> ``[B, N, P]`` in ``(t p p c)`` layout."""
        t, p = self.cfg.tubelet_size, self.cfg.patch_size
        batch, chans, frames, height, width = video.shape
        # Channels last first, then whole rows of (p c) pixels move together: two cache-friendly
        # copies are faster than one that gathers every output value from three distant planes.
        x = video.permute(0, 2, 3, 4, 1).contiguous()  # [B, T, H, W, C]
        x = x.reshape(batch, frames // t, t, height // p, p, width // p, p * chans)
        x = x.permute(0, 1, 3, 5, 2, 4, 6)  # [B, T/t, H/p, W/p, t, p, p*c]
        return x.reshape(batch, -1, t * p * p * chans)

    def targets(self, video: torch.Tensor, patches: torch.Tensor | None = None) -> torch.Tensor:
        """Reconstruction targets ``[B, N, P]`` from a normalized clip.

        Per-patch normalized pixels (each channel's mean/variance over the patch's pixels, as
        VideoMAE's ``normlize_target``), or raw pixels in [0, 1] when ``norm_target`` is off.
        ``patches``: ``self.patchify(video)`` when the caller has it already (the same values).
        """
        if patches is None:
            pixels = self.patchify(denormalize(video.float()))
        else:  # the same per-channel arithmetic on the (t p p c) layout: bit-identical
            channels = self.cfg.in_chans
            pixels = denormalize(patches.float().unflatten(-1, (-1, channels)), channel_dim=-1).flatten(-2)
        return normalize_patches(pixels, self.cfg.in_chans) if self.cfg.norm_target else pixels

    # --- encoder / decoder ------------------------------------------------------------------------
    def attention_bias(self, part: str, *keeps: torch.Tensor | None) -> torch.Tensor | None:
        """The attention bias for one sequence, or None when ``attn_bias`` is ``none``.

        Args:
            part: ``encoder`` or ``decoder`` (whose heads' slopes).
            keeps: the sequence's parts in order, each bool ``[B, N]`` (its tokens in ascending
                order, the same count per row) or None for all N tokens.
        Returns:
            ``[B, H, L, L]`` (``[1, H, N, N]`` when the sequence is every token in token order:
            cached, do not modify it), in the autocast dtype under autocast, else fp32.
        """
        if self.cfg.attn_bias == "none":
            return None
        dtype = _compute_dtype(self.token_coords.device)
        if len(keeps) == 1 and keeps[0] is None:
            return self._all_token_bias(part, dtype)
        coords = self.token_coords.unsqueeze(0)  # [1, N, 3]
        parts = [coords if keep is None else gather_tokens(coords.expand(keep.shape[0], -1, -1), keep) for keep in keeps]
        batch = max(p.shape[0] for p in parts)
        return distance_bias(torch.cat([p.expand(batch, -1, -1) for p in parts], dim=1), self._slopes(part)).to(dtype)

    def _slopes(self, part: str) -> torch.Tensor:
        return self.encoder_slopes if part == "encoder" else self.decoder_slopes

    def _all_token_bias(self, part: str, dtype: torch.dtype) -> torch.Tensor:
        """``[1, H, N, N]`` bias over every token in token order, built once per part, device and dtype."""
        key = (part, self.token_coords.device, dtype)
        cached = self._bias_cache.get(key)
        if cached is None:
            # A plain tensor even when first asked for under inference mode: training reuses it.
            with torch.inference_mode(False), torch.no_grad(), torch.autocast(self.token_coords.device.type, enabled=False):
                cached = distance_bias(self.token_coords.unsqueeze(0), self._slopes(part)).to(dtype)
            self._bias_cache[key] = cached
        return cached

    def run_blocks(self, blocks: nn.ModuleList, x: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        """``x`` ``[B, L, D]`` through ``blocks``; with :attr:`grad_checkpointing` (and gradients
        on), each block's activations are recomputed in the backward pass instead of kept."""
        checkpointed = self.grad_checkpointing and torch.is_grad_enabled()
        for block in blocks:
            if checkpointed:
                x = torch.utils.checkpoint.checkpoint(block, x, bias, use_reentrant=False)
            else:
                x = block(x, bias)
        return x

    def forward_encoder(
        self, video: torch.Tensor, mask: torch.Tensor | None = None, patches: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Encode visible tokens only: ``[B, C, T, H, W]``, mask ``[B, N]`` -> ``[B, N_v, D]``.

        ``mask=None`` encodes every token (``[B, N, D]``), as fine-tuning and probing do.
        ``patches``: ``self.patchify(video)`` ``[B, N, P]`` when the caller has it already.
        """
        if mask is None:
            x = self.embed(video) + self.pos_embed.to(video.dtype)
        else:
            self._check_video(video)
            check_mask(mask, video.shape[0], self.cfg.num_tokens)
            visible = ~mask
            pos = self.pos_embed.to(video.dtype).expand(video.shape[0], -1, -1)
            patches = self.patchify(video) if patches is None else patches
            x = self.embed_patches(gather_tokens(patches, visible)) + gather_tokens(pos, visible)
        bias = self.attention_bias("encoder", None if mask is None else ~mask)
        x = self.run_blocks(self.blocks, x, bias)
        return self.norm(x)

    def forward_decoder(self, latent: torch.Tensor, mask: torch.Tensor, decode: torch.Tensor | None = None) -> torch.Tensor:
        """Predict masked tokens: latent ``[B, N_v, D]``, mask ``[B, N]`` -> ``[B, N_d, P]``.

        ``decode``: bool ``[B, N]``, True = reconstructed, a subset of ``mask`` with the same
        count ``N_d`` in every row (VideoMAE V2's dual masking: the decoder sees the visible
        tokens plus mask tokens at these positions only). None reconstructs every masked token
        (``N_d = N_m``). Predictions follow ascending token order (``target[decode]``).
        """
        x_vis = self.encoder_to_decoder(latent)
        batch, num_vis, dim = x_vis.shape
        pos = self.decoder_pos_embed.to(x_vis.dtype).expand(batch, -1, -1)
        mask_token = self.mask_token.to(x_vis.dtype)
        if decode is None and self.cfg.attn_bias != "none":
            # Every token is in the sequence: keep token order, so that the distance bias is one
            # cached [1, H, N, N] table shared by the batch rather than a [B, H, N, N] one built per
            # step (attention is permutation-equivariant: the same result up to round-off).
            visible = ~mask
            x = (mask_token + pos).masked_scatter(visible.unsqueeze(-1), x_vis + gather_tokens(pos, visible))
            bias = self.attention_bias("decoder", None)
            x = self.run_blocks(self.decoder_blocks, x, bias)
            return self.head(self.decoder_norm(gather_tokens(x, mask)))
        decode = mask if decode is None else decode
        pos_vis = gather_tokens(pos, ~mask)
        pos_decoded = gather_tokens(pos, decode)
        x = torch.cat([x_vis + pos_vis, mask_token + pos_decoded], dim=1)
        bias = self.attention_bias("decoder", ~mask, decode)
        x = self.run_blocks(self.decoder_blocks, x, bias)
        # Only the reconstructed tokens go through the final norm and head: visible ones are not scored.
        return self.head(self.decoder_norm(x[:, num_vis:]))

    def forward(
        self, video: torch.Tensor, mask: torch.Tensor, decode: torch.Tensor | None = None, patches: torch.Tensor | None = None
    ) -> torch.Tensor:
        """video ``[B, C, T, H, W]``, mask ``[B, N]`` (, decode ``[B, N]``) -> predictions ``[B, N_d, P]``.

        ``patches``: ``self.patchify(video)`` ``[B, N, P]`` when the caller has it already.
        """
        return self.forward_decoder(self.forward_encoder(video, mask, patches), mask, decode)

    def token_errors(
        self,
        video: torch.Tensor,
        mask: torch.Tensor,
        forward: nn.Module | None = None,
        decode: torch.Tensor | None = None,
        patches: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Per-token mean squared error ``[B, N]``: the reconstructed tokens' error, 0 elsewhere.

        ``decode`` (bool ``[B, N]``, a subset of ``mask``) picks the tokens the decoder
        reconstructs; None means every masked token. Carries gradient into the model; callers
        detach it for rewards. ``forward`` runs the prediction instead of ``self`` (a
        DistributedDataParallel wrapper of this model). ``patches``: ``self.patchify(video)``
        ``[B, N, P]`` when the caller has it already (the env does): the clip is then cut into
        patches once per step instead of three times.
        """
        run = forward or self
        args = (video, mask) if decode is None else (video, mask, decode)
        pred = run(*args) if patches is None else run(*args, patches=patches)
        decode = mask if decode is None else decode
        target = gather_tokens(self.targets(video, patches), decode)
        err_decoded = (pred.float() - target).pow(2).mean(dim=-1)  # [B, N_d]
        errors = torch.zeros(mask.shape, dtype=err_decoded.dtype, device=err_decoded.device)
        return errors.masked_scatter(decode, err_decoded)

    def _check_video(self, video: torch.Tensor) -> None:
        cfg = self.cfg
        expected = (cfg.in_chans, cfg.num_frames, cfg.img_size, cfg.img_size)
        if video.dim() != 5 or tuple(video.shape[1:]) != expected:
            raise ValueError(f"video must be [B, {', '.join(map(str, expected))}], got {tuple(video.shape)}")

    def config_dict(self) -> dict:
        return asdict(self.cfg)
