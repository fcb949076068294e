"""Attention: the CPU bf16 path (chunks of matmuls) computes what SDPA computes, with and without a bias."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from adamae_rl.models.attention import attention, chunked_attention
from adamae_rl.models.attention_bias import distance_bias, grid_coordinates, head_slopes


def qkv(dtype: torch.dtype, shape=(2, 3, 50, 16)) -> list[torch.Tensor]:
    torch.manual_seed(0)
    return [torch.randn(shape, dtype=dtype, requires_grad=True) for _ in range(3)]


def forward_backward(fn, q, k, v) -> list[torch.Tensor]:
    out = fn(q, k, v)
    grads = torch.autograd.grad(out.float().square().sum(), (q, k, v))
    return [out, *grads]


@pytest.mark.parametrize("chunk_bytes", [50 * 50 * 4, 3 * 50 * 50 * 4, 1 << 30])  # one, three, all pairs per chunk
def test_chunked_attention_matches_sdpa_in_fp32(chunk_bytes: int) -> None:
    q, k, v = qkv(torch.float32)
    ours = forward_backward(lambda *t: chunked_attention(*t, chunk_bytes=chunk_bytes), q, k, v)
    ref = forward_backward(F.scaled_dot_product_attention, q, k, v)
    for a, b in zip(ours, ref):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


def test_bf16_attention_on_cpu_is_close_to_fp32() -> None:
    """The bf16 CPU path (chunked) stays within bf16 rounding of the fp32 result, output and grads."""
    q, k, v = qkv(torch.float32)
    ref = forward_backward(F.scaled_dot_product_attention, q, k, v)
    low = [t.detach().bfloat16().requires_grad_() for t in (q, k, v)]
    ours = forward_backward(attention, *low)
    assert ours[0].dtype == torch.bfloat16
    for a, b in zip(ours, ref):
        assert ((a.float() - b).norm() / b.norm()).item() < 2e-2


def test_cpu_bf16_chunked_attention_adds_the_bias_like_sdpa() -> None:
    gen = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 3, 40, 16, generator=gen) for _ in range(3))
    bias = distance_bias(grid_coordinates((2, 4, 5)).unsqueeze(0), head_slopes(3))
    reference = attention(q, k, v, bias)
    chunked = chunked_attention(q.bfloat16(), k.bfloat16(), v.bfloat16(), chunk_bytes=40 * 40 * 2 * 2, bias=bias)
    assert torch.allclose(chunked.float(), reference, atol=3e-2)
    assert not torch.allclose(attention(q, k, v), reference, atol=3e-2)


@pytest.mark.parametrize("bias_shape", [(2, 3), (1, 3), (2, 1), (1, 1)])
@pytest.mark.parametrize("chunk_pairs", [1, 2, 3, 5])
def test_chunked_attention_broadcasts_any_bias_like_sdpa(bias_shape: tuple[int, int], chunk_pairs: int) -> None:
    """A bias shared by the clips and/or the heads, chunks of one head up to several clips: the
    same outputs and gradients as SDPA with the bias expanded (fp32, so the match is tight)."""
    gen = torch.Generator().manual_seed(1)
    q, k, v = (torch.randn(2, 3, 24, 8, generator=gen, requires_grad=True) for _ in range(3))
    bias = torch.randn(*bias_shape, 24, 24, generator=gen)

    def run(fn):
        out = fn(q, k, v)
        grads = torch.autograd.grad((out * torch.linspace(-1, 1, out.numel()).view_as(out)).sum(), (q, k, v))
        return out, grads

    reference = run(lambda *t: attention(*t, bias.expand(2, 3, 24, 24)))
    chunked = run(lambda *t: chunked_attention(*t, chunk_bytes=chunk_pairs * 24 * 24 * 4, bias=bias))
    assert torch.allclose(chunked[0], reference[0], atol=1e-5)
    for ours, theirs in zip(chunked[1], reference[1]):
        assert torch.allclose(ours, theirs, atol=1e-5)
