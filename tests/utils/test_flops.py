"""FLOP counting with the CPU flash-attention kernels counted, and the matmul peak."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from adamae_rl.models.attention import chunked_attention
from adamae_rl.utils.flops import attention_backward_flops, attention_forward_flops, count_flops, matmul_peak

B, H, L, D = 2, 3, 40, 16


def qkv(dtype=torch.float32):
    torch.manual_seed(0)
    return [torch.randn(B, H, L, D, dtype=dtype, requires_grad=True) for _ in range(3)]


def test_cpu_flash_attention_forward_and_backward_are_counted() -> None:
    q, k, v = qkv()
    total, by_op = count_flops(lambda: F.scaled_dot_product_attention(q, k, v).sum().backward())
    forward = 4 * B * H * L * L * D
    assert by_op["aten._scaled_dot_product_flash_attention_for_cpu"] == forward
    assert by_op["aten._scaled_dot_product_flash_attention_for_cpu_backward"] == 2 * forward
    assert total == 3 * forward


def test_formulas_match_the_matmul_count_of_plain_attention() -> None:
    """The chunked bf16 path is counted through its matmuls: the same total as the flash formulas."""
    q, k, v = qkv(torch.bfloat16)
    total, by_op = count_flops(lambda: chunked_attention(q, k, v, chunk_bytes=L * L * 2).float().sum().backward())
    shape = (B, H, L, D)
    assert set(by_op) == {"aten.bmm"}
    assert total == attention_forward_flops(shape, shape, shape) + attention_backward_flops(shape, shape, shape)


def test_matmul_peak_is_a_positive_rate_and_bad_sizes_are_named() -> None:
    rate = matmul_peak(torch.float32, "cpu", size=128, repeats=2)
    assert math.isfinite(rate) and rate > 1e6  # any CPU multiplies faster than 1 MFLOP/s
    with pytest.raises(ValueError, match="size >= 1 and repeats >= 1, got size=128, repeats=0"):
        matmul_peak(torch.float32, "cpu", size=128, repeats=0)
