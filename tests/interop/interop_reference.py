"""Official-layout checkpoints with random weights, and a reference forward pass over them.

The key scheme and the forward pass are written here from the VideoMAE / AdaMAE model
descriptions, independently of ``adamae_rl.interop``: a converted model is right when it
computes what this reference computes on the official names.
"""

from __future__ import annotations

import argparse
import math

import torch
import torch.nn.functional as F

# Small geometry: 32 px, 4 frames, patch 8, tubelet 2 -> grid (2, 4, 4), N = 32 tokens.
GEO = dict(img_size=32, num_frames=4, patch_size=8, tubelet_size=2, in_chans=3)
# "small" in an official model name means 6 encoder heads and 3 decoder heads.
WIDTHS = dict(embed_dim=48, depth=2, num_heads=6, decoder_embed_dim=24, decoder_depth=1, decoder_num_heads=3, mlp_ratio=4.0)
MODEL_NAME = "pretrain_videomae_small_patch8_32"
NUM_TOKENS = 32


def _block(prefix: str, dim: int, gen: torch.Generator, qkv_bias: bool = True) -> dict[str, torch.Tensor]:
    def r(*shape: int, scale: float = 0.1) -> torch.Tensor:
        return torch.randn(*shape, generator=gen) * scale

    out = {
        f"{prefix}norm1.weight": 1 + r(dim), f"{prefix}norm1.bias": r(dim),
        f"{prefix}attn.qkv.weight": r(3 * dim, dim, scale=dim**-0.5),
        f"{prefix}attn.proj.weight": r(dim, dim, scale=dim**-0.5), f"{prefix}attn.proj.bias": r(dim),
        f"{prefix}norm2.weight": 1 + r(dim), f"{prefix}norm2.bias": r(dim),
        f"{prefix}mlp.fc1.weight": r(4 * dim, dim, scale=dim**-0.5), f"{prefix}mlp.fc1.bias": r(4 * dim),
        f"{prefix}mlp.fc2.weight": r(dim, 4 * dim, scale=(4 * dim) ** -0.5), f"{prefix}mlp.fc2.bias": r(dim),
    }
    if qkv_bias:
        out[f"{prefix}attn.q_bias"] = r(dim)
        out[f"{prefix}attn.v_bias"] = r(dim)
    return out


def encoder_state(prefix: str, gen: torch.Generator) -> dict[str, torch.Tensor]:
    d, t, p, c = WIDTHS["embed_dim"], GEO["tubelet_size"], GEO["patch_size"], GEO["in_chans"]
    state = {
        f"{prefix}patch_embed.proj.weight": torch.randn(d, c, t, p, p, generator=gen) * 0.05,
        f"{prefix}patch_embed.proj.bias": torch.randn(d, generator=gen) * 0.1,
    }
    for i in range(WIDTHS["depth"]):
        state.update(_block(f"{prefix}blocks.{i}.", d, gen))
    return state


def pretrain_state(gen: torch.Generator, sampler: bool = False) -> dict[str, torch.Tensor]:
    """VideoMAE pre-training names (AdaMAE's sampler too when ``sampler``)."""
    d, dd = WIDTHS["embed_dim"], WIDTHS["decoder_embed_dim"]
    pixels = GEO["tubelet_size"] * GEO["patch_size"] ** 2 * GEO["in_chans"]
    state = encoder_state("encoder.", gen)
    state.update({
        "encoder.norm.weight": 1 + 0.1 * torch.randn(d, generator=gen), "encoder.norm.bias": 0.1 * torch.randn(d, generator=gen),
        "encoder_to_decoder.weight": torch.randn(dd, d, generator=gen) * d**-0.5,
        "mask_token": torch.randn(1, 1, dd, generator=gen) * 0.02,
        "decoder.norm.weight": 1 + 0.1 * torch.randn(dd, generator=gen), "decoder.norm.bias": 0.1 * torch.randn(dd, generator=gen),
        "decoder.head.weight": torch.randn(pixels, dd, generator=gen) * dd**-0.5, "decoder.head.bias": 0.1 * torch.randn(pixels, generator=gen),
    })
    for i in range(WIDTHS["decoder_depth"]):
        state.update(_block(f"decoder.blocks.{i}.", dd, gen))
    if sampler:
        state["encoder.pos_embed_probs"] = torch.randn(1, NUM_TOKENS, d, generator=gen) * 0.02
        state.update(_block("encoder.get_token_probs.0.", d, gen, qkv_bias=False))
        state["encoder.get_token_probs.1.weight"] = torch.randn(1, d, generator=gen) * d**-0.5
        state["encoder.get_token_probs.1.bias"] = torch.randn(1, generator=gen)
    return state


def finetuned_state(gen: torch.Generator, num_classes: int = 5) -> dict[str, torch.Tensor]:
    """Fine-tuned names: no ``encoder.`` prefix, mean pooling (``fc_norm``, no ``norm``), ``head``."""
    d = WIDTHS["embed_dim"]
    state = encoder_state("", gen)
    state.update({
        "fc_norm.weight": 1 + 0.1 * torch.randn(d, generator=gen), "fc_norm.bias": 0.1 * torch.randn(d, generator=gen),
        "head.weight": torch.randn(num_classes, d, generator=gen) * 0.1, "head.bias": torch.randn(num_classes, generator=gen) * 0.1,
    })
    return state


def run_args() -> argparse.Namespace:
    """The ``args`` an official run stores (a subset of its options)."""
    return argparse.Namespace(
        model=MODEL_NAME, input_size=GEO["img_size"], num_frames=GEO["num_frames"], mask_ratio=0.9,
        decoder_depth=WIDTHS["decoder_depth"], normlize_target=True, lr=1.5e-4, batch_size=8, output_dir="out",
    )


# --------------------------------------------------------------------------------------------------
# Reference forward pass on official names
# --------------------------------------------------------------------------------------------------
def sinusoid(n: int, dim: int) -> torch.Tensor:
    table = torch.tensor([[pos / math.pow(10000, 2 * (j // 2) / dim) for j in range(dim)] for pos in range(n)], dtype=torch.float64)
    table[:, 0::2] = table[:, 0::2].sin()
    table[:, 1::2] = table[:, 1::2].cos()
    return table.float()


def ref_block(s: dict, prefix: str, x: torch.Tensor, heads: int, eps: float) -> torch.Tensor:
    b, n, d = x.shape
    h = F.layer_norm(x, (d,), s[f"{prefix}norm1.weight"], s[f"{prefix}norm1.bias"], eps)
    bias = None
    if f"{prefix}attn.q_bias" in s:
        bias = torch.cat([s[f"{prefix}attn.q_bias"], torch.zeros(d), s[f"{prefix}attn.v_bias"]])
    qkv = F.linear(h, s[f"{prefix}attn.qkv.weight"], bias).reshape(b, n, 3, heads, d // heads).permute(2, 0, 3, 1, 4)
    q, k, v = qkv[0], qkv[1], qkv[2]
    attn = ((q * (d // heads) ** -0.5) @ k.transpose(-2, -1)).softmax(-1)
    h = (attn @ v).transpose(1, 2).reshape(b, n, d)
    x = x + F.linear(h, s[f"{prefix}attn.proj.weight"], s[f"{prefix}attn.proj.bias"])
    h = F.layer_norm(x, (d,), s[f"{prefix}norm2.weight"], s[f"{prefix}norm2.bias"], eps)
    h = F.gelu(F.linear(h, s[f"{prefix}mlp.fc1.weight"], s[f"{prefix}mlp.fc1.bias"]))
    return x + F.linear(h, s[f"{prefix}mlp.fc2.weight"], s[f"{prefix}mlp.fc2.bias"])


def ref_embed(s: dict, prefix: str, video: torch.Tensor) -> torch.Tensor:
    t, p = GEO["tubelet_size"], GEO["patch_size"]
    x = F.conv3d(video, s[f"{prefix}patch_embed.proj.weight"], s[f"{prefix}patch_embed.proj.bias"], stride=(t, p, p))
    return x.flatten(2).transpose(1, 2)


def ref_pretrain(s: dict, video: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Official pre-training forward: predictions ``[B, N_m, P]`` for mask ``[B, N]`` (True = masked)."""
    d, dd = WIDTHS["embed_dim"], WIDTHS["decoder_embed_dim"]
    x = ref_embed(s, "encoder.", video) + sinusoid(NUM_TOKENS, d)
    b = x.shape[0]
    x = x[~mask].reshape(b, -1, d)
    for i in range(WIDTHS["depth"]):
        x = ref_block(s, f"encoder.blocks.{i}.", x, WIDTHS["num_heads"], 1e-6)
    x = F.layer_norm(x, (d,), s["encoder.norm.weight"], s["encoder.norm.bias"], 1e-6)
    x = F.linear(x, s["encoder_to_decoder.weight"])
    pos = sinusoid(NUM_TOKENS, dd).expand(b, -1, -1)
    x = torch.cat([x + pos[~mask].reshape(b, -1, dd), s["mask_token"] + pos[mask].reshape(b, -1, dd)], dim=1)
    for i in range(WIDTHS["decoder_depth"]):
        x = ref_block(s, f"decoder.blocks.{i}.", x, WIDTHS["decoder_num_heads"], 1e-6)
    n_masked = int(mask[0].sum())
    x = F.layer_norm(x[:, -n_masked:], (dd,), s["decoder.norm.weight"], s["decoder.norm.bias"], 1e-6)
    return F.linear(x, s["decoder.head.weight"], s["decoder.head.bias"])


def ref_sampler_logits(s: dict, video: torch.Tensor) -> torch.Tensor:
    """AdaMAE's sampler on the patch embeddings: logits ``[B, N]`` (evaluation mode: no dropout)."""
    x = ref_embed(s, "encoder.", video) + s["encoder.pos_embed_probs"]
    x = ref_block(s, "encoder.get_token_probs.0.", x, 8, 1e-5)
    return F.linear(x, s["encoder.get_token_probs.1.weight"], s["encoder.get_token_probs.1.bias"]).squeeze(-1)


def ref_finetuned(s: dict, video: torch.Tensor) -> torch.Tensor:
    """Official fine-tuned forward (mean pooling): class logits ``[B, K]``."""
    d = WIDTHS["embed_dim"]
    x = ref_embed(s, "", video) + sinusoid(NUM_TOKENS, d)
    for i in range(WIDTHS["depth"]):
        x = ref_block(s, f"blocks.{i}.", x, WIDTHS["num_heads"], 1e-6)
    x = F.layer_norm(x.mean(1), (d,), s["fc_norm.weight"], s["fc_norm.bias"], 1e-6)
    return F.linear(x, s["head.weight"], s["head.bias"])


def random_mask(batch: int, num_masked: int, gen: torch.Generator) -> torch.Tensor:
    """bool ``[B, N]``, True = masked, ``num_masked`` per row."""
    mask = torch.zeros(batch, NUM_TOKENS, dtype=torch.bool)
    for row in mask:
        row[torch.randperm(NUM_TOKENS, generator=gen)[:num_masked]] = True
    return mask
