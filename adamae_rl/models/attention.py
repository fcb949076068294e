"""Softmax attention for the MAE's blocks: SDPA, or cache-sized chunks of matmuls for bf16 on CPU.

q, k, v are ``[B, H, L, d]`` (batch, heads, sequence, head width); an optional additive logit
bias broadcasts to ``[B, H, L, L]``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


# Score memory per chunk of the CPU bf16 attention: small enough that a chunk's scores stay in the
# last-level cache between the matmul, the softmax and the next matmul (and their backward).
ATTENTION_CHUNK_BYTES = 8 << 20


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """Softmax attention, ``softmax(q k^T / sqrt(d) + bias) v``: q, k, v ``[B, H, L, d]`` -> ``[B, H, L, d]``.

    ``bias``: None or an additive logit bias broadcastable to ``[B, H, L, L]``.

    ``F.scaled_dot_product_attention`` (flash kernels on CUDA and for fp32 on CPU), except for
    bf16 on CPU: there the flash kernel runs far below the bf16 matmul rate, forward and
    backward, so plain bf16 matmuls with a softmax per cache-sized chunk of heads are faster
    (:func:`chunked_attention`; ``python -m adamae_rl.bench --precision bf16`` times the step).
    """
    if q.device.type == "cpu" and q.dtype == torch.bfloat16:
        return chunked_attention(q, k, v, bias=bias)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=None if bias is None else bias.to(q.dtype))


@torch.compiler.disable  # keep it eager: inductor would rewrite it into the slower flash kernel
def chunked_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, chunk_bytes: int = ATTENTION_CHUNK_BYTES, bias: torch.Tensor | None = None
) -> torch.Tensor:
    """Softmax attention over groups of (batch, head) pairs whose ``[L, L]`` scores fit ``chunk_bytes``.

    q, k, v ``[B, H, L, d]`` -> ``[B, H, L, d]``, in the inputs' dtype (the softmax accumulates in
    fp32 inside the kernel). ``bias``: None or ``[B or 1, H or 1, L, L]``; a bias shared by the
    clips or the heads is added by broadcasting, never copied out to ``[B, H, L, L]``. Each group's
    scores are produced, normalized and consumed while they are still in cache; autograd keeps one
    group's probabilities per group for the backward.
    """
    batch, heads, length, dim = q.shape
    per_chunk = max(1, chunk_bytes // (length * length * q.element_size()))
    q = (q * dim**-0.5).reshape(batch * heads, length, dim)
    k = k.reshape(batch * heads, length, dim)
    v = v.reshape(batch * heads, length, dim)
    if bias is not None:
        bias = bias.to(q.dtype)
        bias = bias.view((1,) * (4 - bias.dim()) + tuple(bias.shape))  # [B or 1, H or 1, L, L]
        # Chunks within one clip: the bias slice is then [h or 1, L, L] and its add fuses into the
        # matmul (baddbmm: the add happens inside the matmul, not as another pass over the scores).
        per_chunk = min(per_chunk, heads)
    with torch.autocast(q.device.type, enabled=False):  # inputs are already in the compute dtype
        out = []
        for (b0, b1), (h0, h1) in _attention_groups(batch, heads, per_chunk):
            rows = slice(b0 * heads + h0, (b1 - 1) * heads + h1)  # whole clips, or heads of one
            keys = k[rows].transpose(1, 2)
            if bias is None:
                scores = q[rows] @ keys  # [n, L, L]
            else:
                part = bias[b0 if bias.shape[0] > 1 else 0]  # [H or 1, L, L]
                scores = torch.baddbmm(part[h0:h1] if part.shape[0] > 1 else part, q[rows], keys)
            out.append(torch.softmax(scores, dim=-1) @ v[rows])
    return torch.cat(out).reshape(batch, heads, length, dim)


def _attention_groups(batch: int, heads: int, per_chunk: int) -> list[tuple[tuple[int, int], tuple[int, int]]]:
    """(batch range, head range) per chunk of at most ``per_chunk`` (batch, head) pairs: whole
    batches when all heads fit, else runs of heads within one batch; in row-major order."""
    if per_chunk >= heads:
        step = per_chunk // heads
        return [((b, min(b + step, batch)), (0, heads)) for b in range(0, batch, step)]
    return [((b, b + 1), (h, min(h + per_chunk, heads))) for b in range(batch) for h in range(0, heads, per_chunk)]
